"""Redis restarts in the middle of a run: workers reconnect, nothing is promoted twice, later runs complete.

docs/RELIABILITY.md, "Redis restart mid-run", on a `redis-server` the test starts itself (append-only file on,
as the farm's own configuration has it: infra/redis.conf and the embedded server) and real `celery worker`
processes:

* Redis is stopped while the run's base models train (SIGTERM: Redis writes its append-only file and
  exits, as on a restart), stays down for a few seconds, and comes back on the same port with its data;
* a second worker is started while Redis is down: it keeps trying and connects once Redis is back;
* the interrupted run completes or fails loudly, never stays stuck. What happens today: each worker
  cancels its running tasks when it loses Redis (``worker_cancel_long_running_tasks_on_connection_loss``,
  so that the message Redis hands out again is not run twice at once); Celery records the cancelled
  task as revoked and fails the chord, and the run fails naming the model, the reason and the command to
  retrain (``farm.run_failed``). The visibility timeout is 25 s in this test's config
  (``training.visibility_timeout``);
* a run submitted after the restart completes, both workers answer, and no version is promoted twice.

The embedded Redis is not used here on purpose: every farm process restarts it on demand (that is its
job), so it could not stay down while a worker starts.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import SYMBOL, TF, Farm, start_farm
from tests.support.services import RedisServer
from tests.support.waiting import wait_until
from trainfarm.cli.processes import WorkerProcess

#: Joins [training] (tests/support/farm.py TEST_CONFIG): redelivery after 25 s, not an hour.
SHORT_VISIBILITY = 'visibility_timeout = "25s"\n'
DOWN_FOR_S = 4.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "everysec").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restart_farm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path, redis_server: RedisServer
) -> Iterator[Farm]:
    yield from start_farm(
        tmp_path, monkeypatch, sample_dir, redis_server.url, SHORT_VISIBILITY, time_limit="20s"
    )


def _ping(expected: set[str]) -> set[str]:
    """The workers among ``expected`` that answer a broadcast ping (over Redis), asked a few times."""
    from trainfarm.workers.celery_app import app, rebind

    rebind()
    answered: set[str] = set()
    for _ in range(5):
        for reply in app.control.ping(timeout=2.0) or []:
            answered |= {name.split("@")[0] for name in reply}
        if expected <= answered:
            break
    return answered


def test_a_redis_restart_mid_run_loses_nothing_and_promotes_nothing_twice(
    restart_farm: Farm, redis_server: RedisServer, tmp_path: Path
) -> None:
    from trainfarm.workers.tasks import submit_retrain

    farm = restart_farm
    first = farm.workers[0]
    reg = farm.registry()
    interrupted = submit_retrain(SYMBOL, TF, "before the restart").run_id
    wait_until(
        lambda: any(r.status == "running" for r in reg.runs.base_results(interrupted)),
        120,
        "training",
        process=first,
        every=0.25,
    )
    redis_server.stop()
    # A worker started while Redis is down: it keeps retrying instead of exiting or claiming to be up.
    late = WorkerProcess(f"late{uuid.uuid4().hex[:4]}", farm.env, tmp_path, concurrency=2)
    farm.workers.append(late)
    late.launch()
    time.sleep(DOWN_FOR_S)
    assert late.alive() and not late.ready(), late.log()[-2000:]
    assert first.alive()
    redis_server.start()
    late.wait_ready(90)
    assert _ping({first.name, late.name}) >= {first.name, late.name}

    # The interrupted run ends, one way or the other, and says so when it failed.
    status = farm.wait_run(interrupted, timeout=240)
    run = reg.runs.get(interrupted)
    if status == "failed":  # loudly: the model and the reason, no bare task id
        assert run.failed_model is not None and run.error, run
        assert run.failed_model in run.error and f"{interrupted}-" not in run.error, run.error
    # Later runs complete.
    later = submit_retrain(SYMBOL, TF, "after the restart").run_id
    assert farm.wait_run(later, timeout=240) == "succeeded", reg.runs.get(later).error
    workers = {(r.worker or "").split("@")[0] for r in reg.runs.base_results(later)}
    assert workers <= {first.name, late.name}

    # Never two promotions: each version is promoted at most once, one version per run.
    promoted = Counter(p.to_version for p in reg.champions.history(SYMBOL, TF))
    assert all(n == 1 for n in promoted.values()), promoted
    per_run = Counter(v.run_id for v in reg.versions.of_market(SYMBOL, TF))
    assert all(n == 1 for n in per_run.values()), per_run
    champion = reg.champions.get(SYMBOL, TF)
    if promoted:
        assert champion is not None and champion.version in promoted
    for worker in (first, late):
        assert worker.alive(), worker.log()[-2000:]
