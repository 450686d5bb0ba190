"""A market's history gathered from a real registry (web/history.py), without the web app."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.history import HOSTILE_REASON, SetClock, gate_report, metrics, seed_history
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.errors import ConfigError, SymbolError, UnknownMarketError
from trainfarm.shared.registry import PromotionReason, Registry, Signal
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.web.history import (
    ChampionPeriod,
    Move,
    gate_verdict,
    live_figures,
    market_history,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def clocked(settings: FarmSettings) -> tuple[Registry, SetClock]:
    clock = SetClock(T0)
    return Registry.open(settings.database, clock=clock), clock


def _version(
    registry: Registry,
    clock: SetClock,
    name: str,
    at: datetime,
    figures: dict[str, object],
    report: dict[str, object] | None = None,
    reason: str = "schedule",
) -> str:
    """Version ``name`` of BTC_USDT 1h, built at ``at`` by a run started for ``reason``."""
    clock.at = at
    run = registry.runs.create("BTC_USDT", "1h", reason)
    registry.versions.add(
        name, "BTC_USDT", "1h", run.id, metrics=figures, path=f"/p/{name}", manifest_sha256="0" * 64,
        gate_report=report,
    )  # fmt: skip
    return name


def test_each_version_has_its_log_losses_gate_verdict_and_run_reasons(
    clocked: tuple[Registry, SetClock],
) -> None:
    registry, clock = clocked
    _version(registry, clock, "a", T0, metrics(1.01, 1.09, 1.03), gate_report([]))
    failing = gate_report(["sharpe", "signals"])
    _version(registry, clock, "b", T0 + HOUR, metrics(1.12, 1.08, 1.05), failing, HOSTILE_REASON)
    # Flat metric keys (older packs), no best base model name, no gate report stored.
    _version(registry, clock, "c", T0 + 2 * HOUR, {"meta_logloss": 1.0, "prior_logloss": 1.1})

    h = market_history(registry, FarmConfig(), "BTC_USDT", "1h")

    assert [v.version for v in h.versions] == ["a", "b", "c"]  # oldest first
    a, b, c = h.versions
    assert (a.logloss, a.prior_logloss, a.best_base_logloss, a.best_base_model) == (
        1.01,
        1.09,
        1.03,
        "lightgbm",
    )
    assert (a.verdict, a.failed_checks, a.reasons) == ("passed", (), ("schedule",))
    assert (b.verdict, b.failed_checks, b.reasons) == ("failed", ("sharpe", "signals"), (HOSTILE_REASON,))
    assert (c.logloss, c.prior_logloss, c.best_base_logloss, c.best_base_model) == (1.0, 1.1, None, None)
    assert c.verdict == "none" and c.created_at == T0 + 2 * HOUR
    assert h.moves == () and h.periods == () and h.champion is None and not h.truncated


def test_promotions_a_rollback_and_each_champion_periods_live_figures(
    clocked: tuple[Registry, SetClock],
) -> None:
    registry, clock = clocked
    for name, at in (("v1", T0), ("v2", T0 + 10 * HOUR)):
        _version(registry, clock, name, at, {}, gate_report([]))
    clock.at = T0 + HOUR
    registry.champions.promote("v1", reason="gate")
    clock.at = T0 + 11 * HOUR
    registry.champions.promote("v2", reason="manual")
    clock.at = T0 + 20 * HOUR
    registry.champions.rollback("BTC_USDT", "1h")  # back to v1
    bar = T0 + 12 * HOUR
    registry.outcomes.record(
        # v1 before its promotion (a bot that switched early) and during its first period; then after the
        # rollback; v2 in its period, one signal of it still without a realised return.
        [Signal("b", "BTC_USDT", "1h", "v1", T0, "up", 0.6, 0.01)]
        + [Signal("b", "BTC_USDT", "1h", "v1", T0 + 2 * HOUR, "up", 0.6, 0.01)]
        + [Signal("b", "BTC_USDT", "1h", "v1", T0 + 21 * HOUR, "up", 0.6, -0.02)]
        + [
            Signal("b", "BTC_USDT", "1h", "v2", bar + i * HOUR, "up", 0.6, ret)
            for i, ret in enumerate((0.02, -0.01, 0.03, 0.0))
        ]
        + [Signal("b", "BTC_USDT", "1h", "v2", bar + 4 * HOUR, "up", 0.6, None)]
    )

    h = market_history(registry, FarmConfig(), "BTC_USDT", "1h")

    assert [(m.to_version, m.from_version, m.reason, m.rollback) for m in h.moves] == [
        ("v1", None, "gate", False),
        ("v2", "v1", "manual", False),
        ("v1", "v2", "rollback", True),
    ]
    assert [m.at for m in h.moves] == [T0 + HOUR, T0 + 11 * HOUR, T0 + 20 * HOUR]
    first, second, third = h.periods
    assert (first.version, first.start, first.end) == ("v1", T0 + HOUR, T0 + 11 * HOUR)
    assert (third.version, third.end, h.champion) == ("v1", None, "v1")
    # v1's first period: two returns of 0.01 (the early one counts): every one won, zero spread -> Sharpe 0.
    assert (first.outcomes, first.win_rate, first.sharpe) == (2, 1.0, 0.0)
    # v2: 0.02, -0.01, 0.03, 0.0 over 3 hours: 2 of 4 won (0.0 did not); mean 0.01, sample std
    # sqrt(0.001 / 3), 4 signals in 3 h = 11680 a year: Sharpe sqrt(0.3) * sqrt(11680) = sqrt(3504).
    assert (second.outcomes, second.win_rate) == (4, 0.5)
    assert second.sharpe == pytest.approx(math.sqrt(3504.0))
    # After the rollback: one loss, too few outcomes for a Sharpe.
    assert (third.outcomes, third.win_rate, third.sharpe) == (1, 0.0, None)
    cfg = FarmConfig().params(Timeframe.H1).triggers
    assert (h.min_win_rate, h.min_live_sharpe) == (cfg.min_win_rate, cfg.min_live_sharpe)


def test_a_long_history_keeps_the_newest_versions_and_the_period_then_in_force(
    clocked: tuple[Registry, SetClock],
) -> None:
    registry, clock = clocked
    names = [_version(registry, clock, f"v{i}", T0 + i * HOUR, {}) for i in range(4)]
    clock.at = T0 + timedelta(minutes=30)
    registry.champions.promote("v0", reason="gate")  # long before the versions shown

    h = market_history(registry, FarmConfig(), "BTC_USDT", "1h", limit=2)

    assert [v.version for v in h.versions] == names[2:] and h.truncated
    assert h.moves == ()  # the promotion is older than the oldest version shown
    assert [(p.version, p.end) for p in h.periods] == [("v0", None)]  # but v0 is still the champion
    assert not market_history(registry, FarmConfig(), "BTC_USDT", "1h", limit=4).truncated


def test_a_market_without_versions_is_empty_and_an_unknown_one_is_refused(
    clocked: tuple[Registry, SetClock],
) -> None:
    registry, _ = clocked
    empty = market_history(registry, FarmConfig(), "eth/usdt", "1H")  # any spelling of a universe market
    assert (empty.symbol, empty.timeframe, empty.versions, empty.periods) == ("ETH_USDT", "1h", (), ())
    with pytest.raises(UnknownMarketError, match="FOO_BAR 1h"):
        market_history(registry, FarmConfig(), "FOO_BAR", "1h")
    with pytest.raises(SymbolError, match="'BTC<x>'"):
        market_history(registry, FarmConfig(), "BTC<x>", "1h")
    with pytest.raises(ConfigError, match="'7m'"):
        market_history(registry, FarmConfig(), "BTC_USDT", "7m")


def test_a_seeded_history_has_every_move_and_all_its_outcomes(clocked: tuple[Registry, SetClock]) -> None:
    registry, clock = clocked
    seeded = seed_history(registry, clock)
    h = market_history(registry, FarmConfig(), "BTC_USDT", "1h")
    assert [v.version for v in h.versions] == seeded.versions
    assert [(m.to_version, m.reason) for m in h.moves] == seeded.promoted
    per_version: dict[str, int] = {}
    for p in h.periods:
        per_version[p.version] = per_version.get(p.version, 0) + p.outcomes
    assert per_version == seeded.outcomes  # shared out over the periods, none lost or counted twice
    assert {v.version: list(v.failed_checks) for v in h.versions} == seeded.failed


def test_the_gate_verdict_is_read_from_the_checks() -> None:
    assert gate_verdict(None) == ("none", ())
    assert gate_verdict(gate_report([])) == ("passed", ())
    assert gate_verdict(gate_report(["sharpe"])) == ("failed", ("sharpe",))
    # A report whose verdict disagrees with its checks is read by its checks (promotion would refuse it).
    lying = {**gate_report(["signals"]), "passed": True}
    assert gate_verdict(lying) == ("failed", ("signals",))
    assert gate_verdict({"passed": False, "checks": []}) == ("failed", ())


def test_an_outcome_goes_to_its_versions_period_that_began_last_before_it() -> None:
    moves = [Move(T0, "a", None, "gate"), Move(T0 + 5 * HOUR, "b", "a", "gate")]
    moves.append(Move(T0 + 10 * HOUR, "a", "b", PromotionReason.ROLLBACK.value))
    periods = [
        ChampionPeriod(moves[0], moves[1].at),
        ChampionPeriod(moves[1], moves[2].at),
        ChampionPeriod(moves[2], None),
    ]
    live = {
        "a": [(T0 + HOUR, 0.01), (T0 + 6 * HOUR, -0.01), (T0 + 11 * HOUR, 0.02), (T0 + 12 * HOUR, 0.02)],
        "b": [],
        "c": [(T0, 0.5)],  # never champion: ignored
    }
    filled = live_figures(periods, live, Timeframe.H1)
    # a's loss at 6 h came after b took over (a bot still on a): it stays with a's first period.
    assert [(p.outcomes, p.win_rate) for p in filled] == [(2, 0.5), (0, None), (2, 1.0)]
    assert filled[1].sharpe is None and filled[2].sharpe == 0.0
