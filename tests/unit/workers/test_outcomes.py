"""Outcome ingestion on a real (embedded) Redis stream and a real registry: once per signal, always.

Entries are appended as the bot client writes them (:meth:`trainfarm_client.live.LiveModel.report_outcome`
fields, the contract in :mod:`trainfarm_client.contract`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.packs import farm_settings
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.registry import Registry
from trainfarm.workers.outcomes import CURSOR_KEY, ingest, parse_entry
from trainfarm_client.contract import OUTCOMES_STREAM

BAR = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[Registry, redis.Redis]]:
    with farm_settings(tmp_path / "home") as settings:
        client = redis_client(settings)
        try:
            yield Registry.open(), client
        finally:
            client.close()
            embedded_redis(settings).stop()


def _report(
    client: redis.Redis, bar: datetime, *, bot: str = "bot-1", realised: float | None = None, **extra: str
) -> None:
    fields = {
        "bot_id": bot,
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": "v1",
        "signal": "up",
        "probability": "0.61",
        "realised_return": "" if realised is None else repr(realised),
        "at": bar.isoformat(),
    } | extra
    client.xadd(OUTCOMES_STREAM, fields)


def test_each_signal_counts_once_and_its_return_fills_in_later(farm: tuple[Registry, redis.Redis]) -> None:
    registry, client = farm
    _report(client, BAR)
    _report(client, BAR + timedelta(hours=1))
    _report(client, BAR)  # the same signal reported twice (a bot retrying its XADD)
    first = ingest(client, registry)
    assert (first.read, first.inserted, first.duplicates, first.malformed) == (3, 2, 1, 0)
    assert registry.realised_returns("BTC_USDT", "1h", "v1") == []
    _report(client, BAR, realised=0.012)  # the horizon passed: the realised return
    second = ingest(client, registry)
    assert (second.read, second.updated) == (1, 1)
    assert registry.realised_returns("BTC_USDT", "1h", "v1") == [0.012]
    assert ingest(client, registry).read == 0  # nothing new after the cursor


def test_a_replayed_stream_changes_nothing(farm: tuple[Registry, redis.Redis]) -> None:
    """A crash between the commit and the cursor update re-reads entries: all duplicates by then."""
    registry, client = farm
    for hour in range(5):
        _report(client, BAR + timedelta(hours=hour), realised=0.001 * hour)
    ingest(client, registry)
    client.delete(CURSOR_KEY)  # as if the cursor had never been written
    replay = ingest(client, registry)
    assert (replay.read, replay.inserted, replay.updated, replay.duplicates) == (5, 0, 0, 5)
    assert registry.realised_returns("BTC_USDT", "1h", "v1") == [0.0, 0.001, 0.002, 0.003, 0.004]


def test_a_malformed_entry_is_skipped_naming_itself_and_never_blocks(
    farm: tuple[Registry, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    registry, client = farm
    _report(client, BAR, signal="sideways")
    _report(client, BAR + timedelta(hours=1))
    report = ingest(client, registry)
    assert (report.read, report.inserted, report.malformed) == (2, 1, 1)
    assert "signal 'sideways'" in caplog.text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"version": ""}, "field 'version' is missing"),
        ({"symbol": "../etc"}, "outcome 1-0"),
        ({"timeframe": "7m"}, "outcome 1-0"),
        ({"probability": "1.5"}, "not in [0, 1]"),
        ({"probability": "abc"}, "could not convert"),
        ({"realised_return": "nan"}, "not a finite number"),
        ({"at": "2026-12-01T10:00:00"}, "no time zone"),
        ({"at": "yesterday"}, "Invalid isoformat"),
    ],
)
def test_every_malformed_field_is_named(change: dict[str, str], problem: str) -> None:
    fields = {
        "bot_id": "b",
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": "v1",
        "signal": "down",
        "probability": "0.7",
        "realised_return": "",
        "at": BAR.isoformat(),
    } | change
    with pytest.raises(ValueError, match="outcome 1-0") as info:
        parse_entry("1-0", fields)
    assert problem in str(info.value)
