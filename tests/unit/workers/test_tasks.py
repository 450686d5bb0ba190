"""The farm's task base class, run in-process: which errors are retried, and how often."""

from __future__ import annotations

import pytest
from celery import Celery

from trainfarm.shared.errors import DataError, RedisUnavailableError
from trainfarm.workers.tasks import FarmTask


@pytest.fixture
def app() -> Celery:
    """A private app (nothing registered on the farm's own), run in-process by ``apply()``."""
    return Celery("farm-task-test", set_as_current=False, broker="memory://", backend="cache+memory://")


def test_a_transient_error_is_retried_up_to_the_cap_and_then_raised(app: Celery) -> None:
    calls: list[int] = []

    @app.task(bind=True, base=FarmTask, name="t.flaky", max_retries=3)
    def flaky(self: FarmTask) -> None:
        calls.append(self.request.retries)
        raise RedisUnavailableError("redis is restarting")

    result = flaky.apply()
    assert isinstance(result.result, RedisUnavailableError)
    assert calls == [0, 1, 2, 3]  # the first try and max_retries retries


def test_a_transient_error_that_goes_away_succeeds_on_retry(app: Celery) -> None:
    calls: list[int] = []

    @app.task(bind=True, base=FarmTask, name="t.recovers")
    def recovers(self: FarmTask) -> str:
        calls.append(self.request.retries)
        if len(calls) < 3:
            raise RedisUnavailableError("not yet")
        return "done"

    assert recovers.apply().get() == "done"
    assert calls == [0, 1, 2]


def test_any_other_error_fails_at_once(app: Celery) -> None:
    calls: list[int] = []

    @app.task(bind=True, base=FarmTask, name="t.bad_input")
    def bad_input(self: FarmTask) -> None:
        calls.append(self.request.retries)
        raise DataError("high below low", file="x.parquet", column="high", row=3)

    result = bad_input.apply()
    assert isinstance(result.result, DataError)
    assert calls == [0]


def test_a_base_model_cancelled_by_its_worker_is_named_with_what_to_do() -> None:
    from celery.exceptions import ChordError

    from trainfarm.workers.payloads import SnapshotRef, StageJob
    from trainfarm.workers.tasks import _cancelled_base_model

    ref = SnapshotRef(path="datasets/x.json", file_sha256="a" * 64, content_hash="b" * 64)
    job = StageJob(run_id="e" * 32, symbol="BTC_USDT", timeframe="12h", snapshot=ref, config_hash="c" * 64)
    # What Celery's Redis backend raised in the Redis-restart test (tests/reliability/test_redis_restart.py).
    exc = ChordError(f"Dependency {job.run_id}-lgbm_gbdt raised TaskRevokedError('terminated')")
    found = _cancelled_base_model(job, exc)
    assert found is not None
    model, error = found
    assert model == "lgbm_gbdt"
    assert "terminated" in error and "Redis" in error and "farm retrain BTC_USDT -t 12h --force" in error
    # Another run's task, or another error, is left as Celery said it.
    other_run = ChordError("Dependency other-lgbm_gbdt raised TaskRevokedError()")
    other_error = ChordError(f"Dependency {job.run_id}-x raised ValueError('no')")
    assert _cancelled_base_model(job, other_run) is None and _cancelled_base_model(job, other_error) is None
