"""One market's history, as plain data for the dashboard's history page: gathered from the registry.

Every version (newest ``limit``, shown oldest first) with its test log-loss next to the prior's and the best
base model's and its gate verdict; every move of the champion pointer (promotions and rollbacks); and each
champion period (from the move that made a version champion to the next move) with the live win rate and
Sharpe of the bots' outcomes, computed as the live trigger policies compute them
(:func:`trainfarm.shared.monitoring.policies.live_win_rate_of` and ``live_sharpe_of``), so the page and
the retrain triggers never disagree about a figure.

Read-only and Celery-free: the registry is all it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.errors import UnknownMarketError
from trainfarm.shared.monitoring.policies import live_sharpe_of, live_win_rate_of
from trainfarm.shared.registry import PromotionReason, Registry, VersionRecord, metric
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe

#: Versions the page shows at most: a market retrained hourly has thousands, each with its metrics and
#: gate report, and a chart of thousands of points says no more than one of the newest few hundred.
DEFAULT_LIMIT = 200
#: Where the best base model's test log-loss sits in a version's metrics (flat, or as evaluate() nests it).
BEST_BASE_LOGLOSS = ("best_base_logloss", ("best_base", "logloss"))


@dataclass(frozen=True)
class VersionPoint:
    """One version as the history shows it."""

    version: str
    created_at: datetime
    status: str
    logloss: float | None  #: the final (stacked, calibrated) model's test log-loss
    prior_logloss: float | None  #: the class-share prior's on the same test split
    best_base_logloss: float | None
    best_base_model: str | None
    verdict: str  #: "passed", "failed" or "none" (no gate report stored)
    failed_checks: tuple[str, ...]
    reasons: tuple[str, ...]  #: why its run was started (schedule, a trigger, an operator's text)


@dataclass(frozen=True)
class Move:
    """One move of the champion pointer: a promotion (by the gates or by hand) or a rollback."""

    at: datetime
    to_version: str
    from_version: str | None
    reason: str  #: "gate", "manual" or "rollback"

    @property
    def rollback(self) -> bool:
        """Whether this move went back to the previous champion."""
        return self.reason == PromotionReason.ROLLBACK.value


@dataclass(frozen=True)
class ChampionPeriod:
    """A version's time as champion (from ``move`` on), and what the bots' outcomes of it say."""

    move: Move  #: the promotion or rollback that began it
    end: datetime | None  #: None: still the champion
    outcomes: int = 0  #: outcomes with a realised return this period's figures rest on
    win_rate: float | None = None  #: None without outcomes
    sharpe: float | None = None  #: annualised, per signal; None with fewer than two outcomes

    @property
    def version(self) -> str:
        """The champion of the period."""
        return self.move.to_version

    @property
    def start(self) -> datetime:
        """When it became champion."""
        return self.move.at


@dataclass(frozen=True)
class MarketHistory:
    """Everything the history page shows of one (symbol, timeframe); every sequence oldest first."""

    symbol: str
    timeframe: str
    versions: tuple[VersionPoint, ...]
    moves: tuple[Move, ...]
    periods: tuple[ChampionPeriod, ...]
    truncated: bool  #: True when older versions exist than the ones shown
    #: the live policies' thresholds for the timeframe (None when the config has no parameters for it)
    min_win_rate: float | None = None
    min_live_sharpe: float | None = None

    @property
    def champion(self) -> str | None:
        """The current champion (the last move's version), or None."""
        return self.moves[-1].to_version if self.moves else None


def parse_market(symbol: str, timeframe: str) -> tuple[str, Timeframe]:
    """The canonical (symbol, timeframe) of a URL's spelling; raises the domain's SymbolError or
    ConfigError naming what is wrong."""
    return canonical_symbol(symbol), parse_timeframe(timeframe)


def market_history(
    registry: Registry, config: FarmConfig, symbol: str, timeframe: str, *, limit: int = DEFAULT_LIMIT
) -> MarketHistory:
    """The history of one market: its ``limit`` newest versions, and the moves and champion periods from
    the oldest of them on (with the period in force when it was built).

    Raises SymbolError / ConfigError for a malformed symbol or timeframe, :class:`UnknownMarketError` for
    a market outside the universe that has no version either.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    sym, tf = parse_market(symbol, timeframe)
    records = registry.versions.of_market(sym, tf, limit=limit + 1)  # one more: are there older ones?
    truncated = len(records) > limit
    records = records[:limit]
    in_universe = sym in config.universe.symbols and tf in config.universe.timeframes
    if not records and not in_universe:
        raise UnknownMarketError(f"no market {sym} {tf.value}: not in the universe, and no version of it")
    runs = registry.runs.get_many(r.run_id for r in records)
    versions = tuple(
        version_point(r, runs[r.run_id].reasons if r.run_id in runs else ()) for r in reversed(records)
    )
    since = versions[0].created_at if truncated else None
    moves = [
        Move(p.at, p.to_version, p.from_version, p.reason.value)
        for p in reversed(registry.champions.history(sym, tf))
    ]
    # Every period takes part in sharing out the outcomes (a version rolled back to has several), but only
    # the shown ones' versions are read and kept.
    periods = champion_periods(moves)
    shown = {(p.version, p.start) for p in periods if since is None or p.end is None or p.end > since}
    live = {v: registry.outcomes.live_results(sym, tf.value, v) for v in sorted({v for v, _ in shown})}
    params = config.timeframes.get(tf)
    return MarketHistory(
        sym,
        tf.value,
        versions,
        tuple(m for m in moves if since is None or m.at >= since),
        tuple(p for p in live_figures(periods, live, tf) if (p.version, p.start) in shown),
        truncated,
        params.triggers.min_win_rate if params else None,
        params.triggers.min_live_sharpe if params else None,
    )


def version_point(record: VersionRecord, reasons: Sequence[str] = ()) -> VersionPoint:
    """A version's figures and gate verdict, from its stored metrics and gate report (a missing or oddly
    typed figure is None, never an error: the metrics were written by other stages and other releases)."""
    best_base = record.metrics.get("best_base")
    model = best_base.get("model") if isinstance(best_base, Mapping) else None
    verdict, failed = gate_verdict(record.gate_report)
    return VersionPoint(
        version=record.version,
        created_at=record.created_at,
        status=record.status.value,
        logloss=record.meta_logloss,
        prior_logloss=record.prior_logloss,
        best_base_logloss=metric(record.metrics, *BEST_BASE_LOGLOSS),
        best_base_model=str(model) if model is not None else None,
        verdict=verdict,
        failed_checks=failed,
        reasons=tuple(reasons),
    )


def gate_verdict(report: Mapping[str, object] | None) -> tuple[str, tuple[str, ...]]:
    """("passed" | "failed" | "none", the failed checks' names) of a stored gate report.

    The checks decide (a report whose ``passed`` disagrees with them is read by its checks, as
    :meth:`trainfarm.shared.evaluation.gate_report.GateReport.from_json` refuses such a report).
    """
    if not report:
        return "none", ()
    raw = report.get("checks")
    checks = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []
    if not checks:
        return ("passed" if report.get("passed") is True else "failed"), ()
    failed = tuple(str(c.get("name", "?")) for c in checks if c.get("passed") is not True)
    return ("failed" if failed else "passed"), failed


def champion_periods(moves: Sequence[Move]) -> list[ChampionPeriod]:
    """Each move's period (until the next move; the last one still open), oldest first, without figures."""
    periods = []
    for i, move in enumerate(moves):
        end = moves[i + 1].at if i + 1 < len(moves) else None
        periods.append(ChampionPeriod(move, end))
    return periods


def live_figures(
    periods: Sequence[ChampionPeriod],
    live: Mapping[str, Sequence[tuple[datetime, float]]],
    timeframe: Timeframe,
) -> list[ChampionPeriod]:
    """``periods`` with the live win rate and Sharpe of their versions' outcomes (``live``: version ->
    (bar, realised return), oldest first).

    An outcome counts toward the period of its version that began last at or before its bar: outcomes are
    recorded per version, not per period, and a version rolled back to has two periods. One scored before
    the version's first period (a bot that switched early) counts toward that first period; none is lost.
    """
    starts: dict[str, list[datetime]] = {}
    for period in periods:
        starts.setdefault(period.version, []).append(period.start)
    shares: dict[tuple[str, datetime], list[tuple[datetime, float]]] = {}
    for version, outcomes in live.items():
        own = starts.get(version)
        if not own:
            continue
        for at, ret in outcomes:
            start = max((s for s in own if s <= at), default=own[0])
            shares.setdefault((version, start), []).append((at, ret))
    filled = []
    for period in periods:
        mine = shares.get((period.version, period.start), [])
        rate, sharpe = live_win_rate_of(mine), live_sharpe_of(mine, timeframe)
        filled.append(ChampionPeriod(period.move, period.end, len(mine), rate, sharpe))
    return filled


__all__ = [
    "DEFAULT_LIMIT",
    "ChampionPeriod",
    "MarketHistory",
    "Move",
    "VersionPoint",
    "champion_periods",
    "gate_verdict",
    "live_figures",
    "market_history",
    "parse_market",
    "version_point",
]
