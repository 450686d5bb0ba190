"""Outcome ingestion on a real (embedded) Redis stream and a real registry: once per signal, always.

Entries are appended as the bot client writes them (:meth:`trainfarm_client.live.LiveModel.report_outcome`
fields, the contract in :mod:`trainfarm_client.contract`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from trainfarm.shared.registry import Registry
from trainfarm.workers.checks.outcome_ingest import CURSOR_KEY, ingest, parse_entry
from trainfarm_client.contract import OUTCOMES_STREAM

BAR = datetime(2026, 12, 1, 10, tzinfo=UTC)


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


def test_each_signal_counts_once_and_its_return_fills_in_later(
    registry_and_redis: tuple[Registry, redis.Redis],
) -> None:
    registry, client = registry_and_redis
    _report(client, BAR)
    _report(client, BAR + timedelta(hours=1))
    _report(client, BAR)  # the same signal reported twice (a bot retrying its XADD)
    first = ingest(client, registry)
    assert (first.read, first.inserted, first.duplicates, first.malformed) == (3, 2, 1, 0)
    assert registry.outcomes.realised_returns("BTC_USDT", "1h", "v1") == []
    _report(client, BAR, realised=0.012)  # the horizon passed: the realised return
    second = ingest(client, registry)
    assert (second.read, second.updated) == (1, 1)
    assert registry.outcomes.realised_returns("BTC_USDT", "1h", "v1") == [0.012]
    assert ingest(client, registry).read == 0  # nothing new after the cursor


def test_a_replayed_stream_changes_nothing(registry_and_redis: tuple[Registry, redis.Redis]) -> None:
    """A crash between the commit and the cursor update re-reads entries: all duplicates by then."""
    registry, client = registry_and_redis
    for hour in range(5):
        _report(client, BAR + timedelta(hours=hour), realised=0.001 * hour)
    ingest(client, registry)
    client.delete(CURSOR_KEY)  # as if the cursor had never been written
    replay = ingest(client, registry)
    assert (replay.read, replay.inserted, replay.updated, replay.duplicates) == (5, 0, 0, 5)
    assert registry.outcomes.realised_returns("BTC_USDT", "1h", "v1") == [0.0, 0.001, 0.002, 0.003, 0.004]


def test_a_malformed_entry_is_skipped_naming_itself_and_never_blocks(
    registry_and_redis: tuple[Registry, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    registry, client = registry_and_redis
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


def _fields(**change: str) -> dict[str, str]:
    return {
        "bot_id": "b",
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": "v1",
        "signal": "up",
        "probability": "0.7",
        "realised_return": "",
        "at": BAR.isoformat(),
    } | change


def test_features_are_optional_and_parsed_as_finite_numbers() -> None:
    assert parse_entry("1-0", _fields()).features is None  # an older bot's entry stays valid
    assert parse_entry("1-0", _fields(features="")).features is None
    parsed = parse_entry("1-0", _fields(features="[0.5, -1, 2e-3]"))
    assert parsed.features == (0.5, -1.0, 0.002)


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        ("[0.1, ", "features is not JSON"),
        ('{"ret_1": 0.1}', "not a list of 1 to"),
        ("[]", "not a list of 1 to"),
        ('[0.1, "x"]', "features[1] = 'x' is not a finite number"),
        ("[0.1, NaN]", "features[1] = nan is not a finite number"),
        ("[Infinity]", "features[0] = inf"),
        ("[true]", "features[0] = True"),
    ],
)
def test_a_malformed_features_field_is_a_malformed_entry(features: str, problem: str) -> None:
    with pytest.raises(ValueError, match="outcome 7-1") as info:
        parse_entry("7-1", _fields(features=features))
    assert problem in str(info.value)


def test_features_are_stored_and_a_later_report_fills_them_in(
    registry_and_redis: tuple[Registry, redis.Redis],
) -> None:
    registry, client = registry_and_redis
    _report(client, BAR, features="[1.5, 2.5]")
    _report(client, BAR + timedelta(hours=1))  # reported without features first ...
    _report(client, BAR + timedelta(hours=2), features="[oops")  # malformed: skipped, named
    first = ingest(client, registry)
    assert (first.inserted, first.malformed) == (2, 1)
    _report(client, BAR + timedelta(hours=1), realised=0.01, features="[3.0, 4.0]")  # ... then with them
    _report(client, BAR, realised=-0.01, features="[9.0, 9.0]")  # stored features are never replaced
    second = ingest(client, registry)
    assert (second.updated, second.duplicates) == (2, 0)
    assert registry.outcomes.live_features("BTC_USDT", "1h", "v1", limit=10) == [
        (BAR, (1.5, 2.5)),
        (BAR + timedelta(hours=1), (3.0, 4.0)),
    ]
    assert registry.outcomes.live_features("BTC_USDT", "1h", "v1", limit=1) == [
        (BAR + timedelta(hours=1), (3.0, 4.0))
    ]
    assert registry.outcomes.realised_returns("BTC_USDT", "1h", "v1") == [-0.01, 0.01]
