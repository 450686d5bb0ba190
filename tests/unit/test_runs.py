"""Run coordination on a real embedded Redis: run slots, meta guard, delivery counters, header results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.errors import FarmError
from trainfarm.workers.runs import (
    HeaderResultError,
    SlotClaim,
    claim_meta,
    claim_slot,
    count_delivery,
    one_result_per_model,
    release_slot,
    slot_age_s,
    slot_holder,
    slot_key,
)
from trainfarm.shared.zoo import MODEL_NAMES

SYMBOL, TF = "BTC_USDT", "12h"
RUN_A, RUN_B = "a" * 32, "b" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One embedded server for the module (a real redis-server on a Unix socket), always stopped."""
    srv = EmbeddedRedis(tmp_path_factory.mktemp("runs") / "home")
    srv.ensure_running()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=[True, False], ids=["str", "bytes"])
def client(request: pytest.FixtureRequest, server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A flushed client, decoding replies or not (the functions must work with either)."""
    conn: redis.Redis = redis.Redis.from_url(server.url, decode_responses=request.param)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()


@pytest.fixture
def str_client(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """One decoding client, for the tests that wait for a real expiry (run once, not per reply type)."""
    conn: redis.Redis = redis.Redis.from_url(server.url, decode_responses=True)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()


def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- run slots -----------------------------------------------------------------------------------------


def test_first_claim_takes_the_slot_with_a_ttl(client: redis.Redis) -> None:
    assert slot_holder(client, SYMBOL, TF) is None
    assert claim_slot(client, SYMBOL, TF, RUN_A, ttl_s=120) == SlotClaim(RUN_A, acquired=True)
    assert slot_holder(client, SYMBOL, TF) == RUN_A
    assert 0 < int(client.ttl(slot_key(SYMBOL, TF))) <= 120  # a crashed run cannot block forever


def test_second_claim_merges_into_the_first_run(client: redis.Redis) -> None:
    claim_slot(client, SYMBOL, TF, RUN_A, ttl_s=100)
    second = claim_slot(client, SYMBOL, TF, RUN_B, ttl_s=10_000)
    assert second == SlotClaim(RUN_A, acquired=False)
    assert slot_holder(client, SYMBOL, TF) == RUN_A
    assert int(client.ttl(slot_key(SYMBOL, TF))) <= 100  # merging does not extend the holder's lease


def test_slots_are_per_symbol_and_timeframe(client: redis.Redis) -> None:
    claim_slot(client, SYMBOL, TF, RUN_A, ttl_s=60)
    assert claim_slot(client, SYMBOL, "1h", RUN_B, ttl_s=60).acquired
    assert claim_slot(client, "ETH_USDT", TF, RUN_B, ttl_s=60).acquired
    assert slot_holder(client, SYMBOL, TF) == RUN_A


def test_only_the_holder_releases_the_slot(client: redis.Redis) -> None:
    claim_slot(client, SYMBOL, TF, RUN_A, ttl_s=60)
    assert release_slot(client, SYMBOL, TF, RUN_B) is False
    assert slot_holder(client, SYMBOL, TF) == RUN_A
    assert release_slot(client, SYMBOL, TF, RUN_A) is True
    assert slot_holder(client, SYMBOL, TF) is None
    assert release_slot(client, SYMBOL, TF, RUN_A) is False  # releasing twice is harmless
    assert claim_slot(client, SYMBOL, TF, RUN_B, ttl_s=60) == SlotClaim(RUN_B, acquired=True)
    # A finished run releasing late never frees the newer run's slot.
    assert release_slot(client, SYMBOL, TF, RUN_A) is False
    assert slot_holder(client, SYMBOL, TF) == RUN_B


def test_slot_expires_after_its_ttl(str_client: redis.Redis) -> None:
    claim_slot(str_client, SYMBOL, TF, RUN_A, ttl_s=1)
    assert _wait_until(lambda: slot_holder(str_client, SYMBOL, TF) is None)
    assert claim_slot(str_client, SYMBOL, TF, RUN_B, ttl_s=60).acquired


def test_slot_age_from_the_remaining_ttl(client: redis.Redis) -> None:
    assert slot_age_s(client, SYMBOL, TF, ttl_s=100) is None  # free
    claim_slot(client, SYMBOL, TF, RUN_A, ttl_s=100)
    age = slot_age_s(client, SYMBOL, TF, ttl_s=100)
    assert age is not None and 0 <= age < 5
    client.pexpire(slot_key(SYMBOL, TF), 40_000)  # as if claimed 60 s ago
    age = slot_age_s(client, SYMBOL, TF, ttl_s=100)
    assert age is not None and 59 <= age <= 61
    client.persist(slot_key(SYMBOL, TF))  # not written by claim_slot: its age is unknown
    assert slot_age_s(client, SYMBOL, TF, ttl_s=100) is None


# --- meta guard and delivery counter -------------------------------------------------------------------


def test_first_meta_task_wins_and_may_be_redelivered(client: redis.Redis) -> None:
    assert claim_meta(client, RUN_A, "task-1", ttl_s=300) is True
    assert claim_meta(client, RUN_A, "task-1", ttl_s=300) is True  # a redelivery of the same task
    assert claim_meta(client, RUN_A, "task-2", ttl_s=300) is False  # a duplicate chord body
    assert claim_meta(client, RUN_B, "task-2", ttl_s=300) is True  # another run has its own guard
    assert 0 < int(client.ttl(f"farm:run:{RUN_A}:meta")) <= 300


def test_delivery_counter_increments_per_task(client: redis.Redis) -> None:
    assert [count_delivery(client, "task-1", ttl_s=60) for _ in range(3)] == [1, 2, 3]
    assert count_delivery(client, "task-2", ttl_s=60) == 1
    assert 0 < int(client.ttl("farm:deliveries:task-1")) <= 60
    assert count_delivery(client, "task-1", ttl_s=60) == 4


def test_delivery_counter_expires(str_client: redis.Redis) -> None:
    assert count_delivery(str_client, "task-3", ttl_s=1) == 1
    assert count_delivery(str_client, "task-3", ttl_s=1) == 2
    assert _wait_until(lambda: str_client.exists("farm:deliveries:task-3") == 0)
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


def test_every_missing_model_is_named() -> None:
    with pytest.raises(HeaderResultError) as info:
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
