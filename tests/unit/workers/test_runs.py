"""Run coordination on real servers: one active run per market, the reaper, meta guard, delivery counters.

The broker checks publish real Celery messages into a real (embedded) Redis and take them the way a worker
does (kombu, without acknowledging), so they prove where kombu keeps a run's messages, not what we assume.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from kombu import Connection

from tests.support.waiting import wait_until
from trainfarm.shared.connections import EmbeddedRedis, celery_url, redis_client
from trainfarm.shared.errors import FarmError, HeaderResultError, MissingHeaderResultError
from trainfarm.shared.registry import Registry, dispose_engine, utc_now
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.workers.runs import (
    REAP_GRACE,
    broker_holds_run,
    claim_meta,
    claim_run,
    count_delivery,
    deliveries,
    one_result_per_model,
    reap_abandoned_runs,
)

SYMBOL, TF = "BTC_USDT", "12h"
RUN_A, RUN_B = "a" * 32, "b" * 32


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One embedded server for the Redis-only tests (a real redis-server on a Unix socket), always stopped."""
    srv = EmbeddedRedis(tmp_path_factory.mktemp("runs") / "home")
    srv.ensure_running()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=[True, False], ids=["str", "bytes"])
def client(request: pytest.FixtureRequest, module_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A flushed client, decoding replies or not (the functions must work with either)."""
    conn: redis.Redis = redis.Redis.from_url(module_server.url, decode_responses=request.param)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()


@pytest.fixture
def str_client(module_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """One decoding client, for the tests that wait for a real expiry (run once, not per reply type)."""
    conn: redis.Redis = redis.Redis.from_url(module_server.url, decode_responses=True)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()


# --- one active run per market, the reaper -------------------------------------------------------------


@pytest.fixture
def celery_registry(server: EmbeddedRedis, settings: FarmSettings) -> Iterator[Registry]:
    """The test home's registry, with the home's Celery app pointed at its embedded Redis (no worker)."""
    from trainfarm.workers.celery_app import rebind

    rebind()
    registry = Registry.open()
    try:
        yield registry
    finally:
        dispose_engine(settings.database)


def _enqueue_prepare(run_id: str) -> None:
    """Publish the run's prepare message exactly as `farm retrain` does; no worker consumes it."""
    from trainfarm.workers.payloads import RunJob
    from trainfarm.workers.tasks import prepare_run

    job = RunJob(run_id=run_id, symbol=SYMBOL, timeframe=TF)
    prepare_run.apply_async(
        args=(job.model_dump(mode="json"),), task_id=f"{run_id}-prepare", ignore_result=True
    )


def _old_run(settings: FarmSettings, age: timedelta) -> str:
    """A queued run of the market created ``age`` ago (a registry whose clock is that far behind)."""
    past = Registry.open(settings.database, clock=lambda: utc_now() - age)
    return past.runs.create(SYMBOL, TF, "scheduled long ago").id


def test_a_queued_run_is_found_in_its_queue_and_while_a_worker_holds_it(celery_registry: Registry) -> None:
    run = celery_registry.runs.create(SYMBOL, TF, "test")
    client = redis_client(decode_responses=False)
    assert not broker_holds_run(client, run.id)
    _enqueue_prepare(run.id)
    assert broker_holds_run(client, run.id)
    assert not broker_holds_run(client, RUN_B)
    # Taken the way a worker with acks_late takes it: delivered, not acknowledged (kombu's "unacked").
    with Connection(celery_url()) as conn:
        queue = conn.SimpleQueue("control")
        message = queue.get(timeout=5)
        assert message.headers["id"] == f"{run.id}-prepare"
        assert broker_holds_run(client, run.id)  # out of the list, in the unacknowledged set
        message.ack()
        queue.close()
    assert not broker_holds_run(client, run.id)
    client.close()


def test_a_run_queued_behind_a_long_backlog_still_blocks_a_second_one(
    celery_registry: Registry, settings: FarmSettings
) -> None:
    """Queued three days ago (longer than any time-to-live could have been), its message still waiting."""
    waiting = _old_run(settings, timedelta(days=3))
    _enqueue_prepare(waiting)
    second = claim_run(SYMBOL, TF, "a trigger during the backlog", registry=celery_registry)
    assert second.merged and second.run_id == waiting
    assert [r.id for r in celery_registry.runs.newest(SYMBOL, TF)] == [waiting]
    assert reap_abandoned_runs(registry=celery_registry) == []


def test_a_run_whose_messages_are_gone_is_reaped_once_and_a_new_run_starts(
    celery_registry: Registry, settings: FarmSettings, rds: redis.Redis
) -> None:
    lost = _old_run(settings, REAP_GRACE * 2)  # its prepare message never reached (or left) the broker
    fresh = claim_run(SYMBOL, TF, "forced", registry=celery_registry)
    assert not fresh.merged and fresh.run_id != lost
    reaped = celery_registry.runs.get(lost)
    assert reaped.status == "failed" and reaped.error is not None and "abandoned" in reaped.error
    assert "forced" in reaped.error
    failures = [f for _, f in rds.xrange("farm:events") if f.get("event") == "failed"]
    assert [json.loads(f["data"])["run_id"] for f in failures] == [lost]
    # The new run is young: never reaped, even though no message of it was published in this test.
    assert claim_run(SYMBOL, TF, "another trigger", registry=celery_registry).run_id == fresh.run_id
    assert reap_abandoned_runs(registry=celery_registry) == []


def test_the_periodic_reaper_fails_only_abandoned_runs(
    celery_registry: Registry, settings: FarmSettings
) -> None:
    alive = _old_run(settings, timedelta(hours=2))
    _enqueue_prepare(alive)
    past = Registry.open(settings.database, clock=lambda: utc_now() - timedelta(hours=2))
    gone = past.runs.create("ETH_USDT", TF, "lost").id
    assert reap_abandoned_runs(registry=celery_registry) == [gone]
    assert (
        celery_registry.runs.get(alive).status == "queued"
        and celery_registry.runs.get(gone).status == "failed"
    )
    assert reap_abandoned_runs(registry=celery_registry) == []  # once


def test_concurrent_claims_create_exactly_one_run(celery_registry: Registry, settings: FarmSettings) -> None:
    outcomes: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def claim() -> None:
        submitted = claim_run(SYMBOL, TF, "race", registry=Registry.open(settings.database))
        with lock:
            outcomes.append((submitted.run_id, submitted.merged))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 6 and len({rid for rid, _ in outcomes}) == 1
    assert sorted(merged for _, merged in outcomes) == [False] + [True] * 5


def test_claims_after_the_run_ended_start_a_new_run(celery_registry: Registry) -> None:
    first = claim_run(SYMBOL, TF, "first", registry=celery_registry)
    celery_registry.runs.fail(first.run_id, "ended")
    second = claim_run(SYMBOL, TF, "second", registry=celery_registry)
    assert not second.merged and second.run_id != first.run_id


# --- meta guard and delivery counter -------------------------------------------------------------------


def test_first_meta_task_wins_and_may_be_redelivered(client: redis.Redis) -> None:
    assert claim_meta(client, RUN_A, "task-1", ttl_s=300) is True
    assert claim_meta(client, RUN_A, "task-1", ttl_s=300) is True  # a redelivery of the same task
    assert claim_meta(client, RUN_A, "task-2", ttl_s=300) is False  # a duplicate chord body
    assert claim_meta(client, RUN_B, "task-2", ttl_s=300) is True  # another run has its own guard
    assert 0 < int(client.ttl(f"farm:run:{RUN_A}:meta")) <= 300


def test_delivery_counter_increments_per_task(client: redis.Redis) -> None:
    assert deliveries(client, "task-1") == 0
    assert [count_delivery(client, "task-1", ttl_s=60) for _ in range(3)] == [1, 2, 3]
    assert deliveries(client, "task-1") == 3
    assert count_delivery(client, "task-2", ttl_s=60) == 1
    assert 0 < int(client.ttl("farm:deliveries:task-1")) <= 60
    assert count_delivery(client, "task-1", ttl_s=60) == 4


def test_delivery_counter_expires(str_client: redis.Redis) -> None:
    assert count_delivery(str_client, "task-3", ttl_s=1) == 1
    assert count_delivery(str_client, "task-3", ttl_s=1) == 2
    wait_until(
        lambda: str_client.exists("farm:deliveries:task-3") == 0,
        5.0,
        "the delivery counter to expire",
        every=0.05,
    )
    assert count_delivery(str_client, "task-3", ttl_s=1) == 1  # counting starts afresh after expiry


# --- chord header results ------------------------------------------------------------------------------


def _result(model: str, digest: str = "0" * 64) -> dict[str, object]:
    return {"model": model, "model_sha256": digest, "metrics": {"test_logloss": 1.0}}


def test_one_result_per_model_indexes_each_model_once() -> None:
    results = [_result(m) for m in reversed(MODEL_NAMES)]
    indexed = one_result_per_model(results, MODEL_NAMES)
    assert sorted(indexed) == sorted(MODEL_NAMES)
    assert all(indexed[m] == _result(m) for m in MODEL_NAMES)


def test_identical_duplicates_are_folded() -> None:
    results = [_result(m) for m in MODEL_NAMES] + [_result(MODEL_NAMES[0]), _result(MODEL_NAMES[3])]
    indexed = one_result_per_model(results, MODEL_NAMES)
    assert len(indexed) == len(MODEL_NAMES)


@pytest.mark.parametrize(
    ("results", "named"),
    [
        pytest.param(
            [_result(m) for m in MODEL_NAMES] + [_result(MODEL_NAMES[2], "f" * 64)],
            MODEL_NAMES[2],
            id="conflicting-duplicate",
        ),
        pytest.param([_result(m) for m in MODEL_NAMES] + [_result("rf_mystery")], "rf_mystery", id="unknown"),
        pytest.param([_result(m) for m in MODEL_NAMES[1:]], MODEL_NAMES[0], id="missing"),
    ],
)
def test_bad_header_results_raise_naming_the_model(results: list[dict[str, object]], named: str) -> None:
    with pytest.raises(HeaderResultError, match=named) as info:
        one_result_per_model(results, MODEL_NAMES)
    assert isinstance(info.value, FarmError)


def test_every_missing_model_is_named_by_its_own_error_type() -> None:
    with pytest.raises(MissingHeaderResultError) as info:
        one_result_per_model([_result(MODEL_NAMES[0])], MODEL_NAMES)
    assert all(m in str(info.value) for m in MODEL_NAMES[1:])
    assert MODEL_NAMES[0] not in str(info.value).split(":", 1)[1]


@pytest.mark.parametrize(
    "bad", [{"metrics": {}}, {"model": 3}, None, "lgbm_gbdt"], ids=["no-key", "number", "none", "string"]
)
def test_a_result_without_a_model_name_is_refused(bad: object) -> None:
    results: list[object] = [_result(m) for m in MODEL_NAMES] + [bad]
    with pytest.raises(HeaderResultError, match="no model name"):
        one_result_per_model(results, MODEL_NAMES)  # type: ignore[arg-type]
