"""registry.shadows: challengers (one active per market, decided once) and paired scores, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from tests.support.concurrency import on_own_engine
from trainfarm.shared.registry import ChallengerOutcome, PairedScore, Registry
from trainfarm.shared.registry.shadow_models import Challenger

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def versions(registry: Registry, new_run: Callable[..., str], *names: str) -> None:
    for name in names:
        registry.versions.add(name, "BTC_USDT", "1h", new_run(), metrics={}, path=f"/p/{name}",
                              manifest_sha256="a" * 64)  # fmt: skip


def score(at: datetime, bot: str = "bot-a", challenger: str = "v2", champion: str = "v1") -> PairedScore:
    return PairedScore("BTC_USDT", "1h", at, bot, champion, challenger, (0.2, 0.3, 0.5), (0.1, 0.6, 0.3),
                       "up", None)  # fmt: skip


def test_a_start_supersedes_the_active_challenger_and_repeating_it_changes_nothing(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    versions(registry, new_run, "v1", "v2", "v3")
    first, replaced = registry.shadows.start("BTC_USDT", "1h", "v2", "v1", started_by="gate")
    assert replaced is None and first.active and first.started_by == "gate"
    again, replaced = registry.shadows.start("BTC_USDT", "1h", "v2", "v1", started_by="gate")
    assert (again.id, replaced) == (first.id, None)
    second, replaced = registry.shadows.start("BTC_USDT", "1h", "v3", "v1", started_by="manual")
    assert replaced is not None and replaced.outcome is ChallengerOutcome.SUPERSEDED
    assert registry.shadows.active("BTC_USDT", "1h") == second
    assert [c.version for c in registry.shadows.history("BTC_USDT", "1h")] == ["v3", "v2"]


def test_a_challenger_is_decided_once(registry: Registry, new_run: Callable[..., str]) -> None:
    versions(registry, new_run, "v1", "v2")
    record, _ = registry.shadows.start("BTC_USDT", "1h", "v2", "v1", started_by="gate")
    ended = registry.shadows.end(
        record.id, ChallengerOutcome.RETIRED, "worse", {"bars": 200, "diff": float("nan")}
    )
    assert (ended.outcome, ended.reason, ended.verdict) == (
        ChallengerOutcome.RETIRED,
        "worse",
        {"bars": 200, "diff": None},
    )
    later = registry.shadows.end(record.id, ChallengerOutcome.PROMOTED, "better")
    assert later.outcome is ChallengerOutcome.RETIRED and registry.shadows.active("BTC_USDT", "1h") is None


def test_the_database_keeps_one_active_challenger_per_market(
    registry: Registry, new_run: Callable[..., str], db_url: str
) -> None:
    versions(registry, new_run, "v1", "v2", "v3")
    registry.shadows.start("BTC_USDT", "1h", "v2", "v1", started_by="gate")

    def insert_second(reg: Registry) -> None:
        with reg.database.write() as s:
            s.add(Challenger(symbol="BTC_USDT", timeframe="1h", version="v3", champion_version="v1",
                             started_by="manual", started_at=T0))  # fmt: skip

    with pytest.raises(IntegrityError):
        on_own_engine(db_url, insert_second)


def test_paired_scores_count_each_bar_once_whoever_reports_it(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    bars = [T0 + timedelta(hours=i) for i in range(3)]
    counts = registry.shadows.record([score(at) for at in bars])
    assert (counts.inserted, counts.duplicates) == (3, 0)
    counts = registry.shadows.record([score(at, bot="bot-b") for at in reversed(bars)] + [score(bars[0])])
    assert (counts.inserted, counts.duplicates) == (0, 4)
    other = registry.shadows.record([score(bars[0], champion="v0")])  # another champion: another pair
    assert other.inserted == 1
    paired = registry.shadows.paired("v2", "v1")
    assert [p.at for p in paired] == bars and {p.bot_id for p in paired} == {"bot-a"}
    assert paired[0].champion_probabilities == (0.2, 0.3, 0.5) and paired[0].challenger_signal is None
    assert registry.shadows.count("v2", "v0") == 1
