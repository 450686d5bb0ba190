"""The shadow check's ingestion on a real (embedded) Redis stream and a real registry: each bar once.

Entries are written as the bot client writes them (:func:`trainfarm_client.contract.shadow_fields`). The
decisions themselves, with real packs and real bots, are tests/integration/test_shadow.py's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from trainfarm.shared.monitoring.alerts import alert_from_event
from trainfarm.shared.registry import Registry
from trainfarm.workers.checks.shadow_check import CURSOR_KEY, ingest, parse_entry
from trainfarm_client.contract import SHADOW_STREAM, shadow_fields

BAR = datetime(2026, 12, 1, 10, tzinfo=UTC)


def entry(bar: datetime, bot: str = "bot-1", **override: str) -> dict[str, str]:
    fields = shadow_fields(
        bot_id=bot, symbol="BTC/USDT", timeframe="1h", at=bar.isoformat(),
        champion=("v1", [0.2, 0.3, 0.5], "up"), challenger=("v2", [0.5, 0.3, 0.2], None),
    )  # fmt: skip
    return fields | override


def test_two_bots_and_a_replayed_stream_count_each_bar_once(
    registry_and_redis: tuple[Registry, redis.Redis],
) -> None:
    registry, client = registry_and_redis
    for bot in ("bot-1", "bot-2"):
        for i in range(3):
            client.xadd(SHADOW_STREAM, entry(BAR + timedelta(hours=i), bot))  # type: ignore[arg-type]
    client.xadd(SHADOW_STREAM, entry(BAR, champion_probabilities="[0.5, 0.6]"))  # type: ignore[arg-type]
    report = ingest(client, registry)
    assert (report.read, report.inserted, report.duplicates, report.malformed) == (7, 3, 3, 1)
    client.delete(CURSOR_KEY)  # the stream read again from the start: nothing new
    again = ingest(client, registry)
    assert (again.inserted, again.duplicates) == (0, 6)
    (first, *_) = registry.shadows.paired("v2", "v1")
    assert (first.symbol, first.at, first.champion_signal, first.challenger_signal) == (
        "BTC_USDT",
        BAR,
        "up",
        None,
    )


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"at": "2026-12-01T10:00:00"}, "no time zone"),
        ({"challenger": "v1"}, "the same version"),
        ({"champion_signal": "long"}, "not up, down or empty"),
        ({"challenger_probabilities": "[0.2, 0.3, 1.5]"}, "three probabilities"),
        ({"symbol": ""}, "'symbol' is missing"),
        ({"timeframe": "7m"}, "shadow 1-0"),
    ],
)
def test_a_malformed_entry_is_named(override: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_entry("1-0", entry(BAR, **override))


def test_a_challenger_event_becomes_an_alert() -> None:
    start = alert_from_event("1-0", "challenger", {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2",
                                                     "champion": "v1", "active": True})  # fmt: skip
    end = alert_from_event("2-0", "challenger", {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2",
                                                   "active": False, "outcome": "retired",
                                                   "reason": "not better"})  # fmt: skip
    assert start is not None and start.kind == "challenger" and "scored live beside v1" in start.title
    assert end is not None and "v2 retired: not better" in end.title
