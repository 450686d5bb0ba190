"""What `farm status` shows: workers, queues, runs under way, every market's champion, and the bots.

:func:`farm_status` gathers it from the registry, Redis (queue depths, the bots' heartbeat hashes, see
:mod:`trainfarm_client.contract`) and what the workers answered to a Celery inspect (passed in, so this
module stays Celery-free). Flags, each with its reason: a champion older than its timeframe's freshness
limit is ``stale``; a bot whose heartbeat is older than ``STALE_BOT_S`` is ``stale``; a bot serving
another version than its market's champion is ``lagging``; a bot with a ``last_error`` says so. A market
whose bots reported live features that the farm's recomputation contradicts is flagged ``skew``
(:mod:`trainfarm.workers.checks.skew`: rows checked, mismatching, not checked, the worst feature and bar).
Each market shows its symbol's newest bar and its age (:mod:`trainfarm.shared.data.freshness`), and
``held`` with the reason when its retrains are held back (:mod:`trainfarm.workers.holds`: ``stale_data``,
``cannot_train``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import redis

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.freshness import Freshness, freshness
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.registry import Registry
from trainfarm.shared.registry.models import VersionRecord
from trainfarm.shared.timeframes import Timeframe, parse_timeframe
from trainfarm.workers.checks.live_window import PackLoader, load_champion
from trainfarm.workers.checks.skew import skew_report
from trainfarm.workers.holds import hold_of
from trainfarm.workers.runs import queue_depths
from trainfarm_client.contract import BOT_KEY_PATTERN

#: A heartbeat older than this (seconds) marks a bot stale (bots beat every 10 s by default).
STALE_BOT_S = 60.0


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: list[str]
    concurrency: int | None


@dataclass(frozen=True)
class MarketInfo:
    symbol: str
    timeframe: str
    champion: str | None
    age_h: float | None
    freshness_limit_h: float
    stale: bool
    last_version: str | None
    last_verdict: str | None  #: "passed", "failed", or None (no gate report)
    #: train/serve skew of the champion's reported live features (:meth:`SkewReport.to_json` plus
    #: ``flagged`` and ``note``); None without a champion or with the check off
    skew: dict[str, object] | None = None
    #: when the symbol's newest stored bar closed, and how long ago (None: no bars stored)
    data_newest: datetime | None = None
    data_age_s: float | None = None
    #: the symbol has a source and its newest bar is older than its limit
    data_stale: bool = False
    #: why the market's retrains are held back ("stale_data: ...", "cannot_train: ..."), or None
    held: str | None = None
    #: the active challenger (shadow mode): version, champion, started_at, started_by, bars (scored by both,
    #: labelled or not yet), min_bars; None without one
    challenger: dict[str, object] | None = None
    #: the market's last ended challenger: version, outcome, reason, ended_at; None before any
    last_challenger: dict[str, object] | None = None


@dataclass(frozen=True)
class BotInfo:
    bot_id: str
    symbol: str
    timeframe: str
    version: str | None
    seen_s_ago: float | None
    last_error: str | None
    flags: list[str] = field(default_factory=list)
    #: seconds since its market's champion was promoted while the bot still serves another version (0:
    #: it serves the champion; None: its market has no champion)
    lag_s: float | None = None


@dataclass(frozen=True)
class FarmStatus:
    workers: list[WorkerInfo]
    queues: dict[str, int]
    runs: list[dict[str, object]]
    markets: list[MarketInfo]
    bots: list[BotInfo]

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (what `farm status --json` prints)."""
        data = asdict(self)
        for market in data["markets"]:
            newest = market["data_newest"]
            market["data_newest"] = newest.isoformat() if newest is not None else None
        return data


def _age_s(text: str | None, now: datetime) -> float | None:
    if not text:
        return None
    try:
        return (now - datetime.fromisoformat(text)).total_seconds()
    except ValueError:
        return None


def _workers(
    queues: Mapping[str, Sequence[Mapping[str, object]]], stats: Mapping[str, Mapping[str, object]]
) -> list[WorkerInfo]:
    out = []
    for name in sorted(set(queues) | set(stats)):
        pool = stats.get(name, {}).get("pool")
        concurrency = pool.get("max-concurrency") if isinstance(pool, Mapping) else None
        names = [str(q.get("name")) for q in queues.get(name, [])]
        out.append(WorkerInfo(name, names, int(concurrency) if isinstance(concurrency, int) else None))
    return out


def _skew(
    registry: Registry,
    store: BarStore,
    champion: VersionRecord,
    tf: Timeframe,
    config: FarmConfig,
    load: PackLoader,
) -> dict[str, object] | None:
    params = config.params(tf)
    if not params.triggers.train_serve_skew:
        return None
    report, problem = skew_report(registry, store, champion, tf, params, load)
    if report is None:
        return {"flagged": False, "note": problem}
    note = None if report.checked + report.not_checked else "no live features reported yet"
    return report.to_json() | {"flagged": report.mismatched > 0, "note": note}


def market_infos(
    registry: Registry,
    config: FarmConfig,
    now: datetime,
    store: BarStore | None,
    load: PackLoader,
    extra: Sequence[tuple[str, str]] = (),
) -> list[MarketInfo]:
    """Every market of the universe: its champion against the freshness limit, last verdict, and (with a
    ``store`` to recompute features from) the train/serve skew check, which loads packs: a page that
    refreshes every few seconds passes None. ``extra`` markets (e.g. champions the universe no longer
    lists) follow the universe's."""
    out = []
    bars = store or open_store()  # freshness is read on every page; only the skew check needs ``store``
    fresh: dict[str, Freshness] = {}
    markets = [(symbol, tf) for tf in config.universe.timeframes for symbol in config.universe.symbols]
    markets += [
        (symbol, parse_timeframe(tf)) for symbol, tf in extra if (symbol, parse_timeframe(tf)) not in markets
    ]
    for symbol, tf in markets:
        limit_h = config.params(tf).freshness_limit.total_seconds() / 3600.0
        champion = registry.champions.get(symbol, tf)
        age_h = (now - champion.created_at).total_seconds() / 3600.0 if champion else None
        versions = registry.versions.of_market(symbol, tf)
        last = versions[0] if versions else None
        verdict = None
        if last is not None and last.gate_report is not None:
            verdict = "passed" if last.gate_report.get("passed") else "failed"
        if symbol not in fresh:
            fresh[symbol] = freshness(bars, config, symbol)
        data = fresh[symbol]
        age = data.age(now)
        hold = hold_of(registry, bars, config, symbol, tf, now, fresh=data)
        out.append(
            MarketInfo(
                symbol,
                tf.value,
                champion.version if champion else None,
                age_h,
                limit_h,
                age_h is not None and age_h > limit_h,
                last.version if last else None,
                verdict,
                _skew(registry, store, champion, tf, config, load) if champion and store else None,
                data.newest,
                age.total_seconds() if age is not None else None,
                data.stale(now),
                hold.line() if hold else None,
                *challenger_infos(registry, config, symbol, tf),
            )
        )
    return out


def challenger_infos(
    registry: Registry, config: FarmConfig, symbol: str, tf: Timeframe
) -> tuple[dict[str, object] | None, dict[str, object] | None]:
    """The market's active challenger and its last ended one, as :class:`MarketInfo` shows them."""
    history = registry.shadows.history(symbol, tf.value, limit=5)
    active = next((c for c in history if c.active), None)
    ended = next((c for c in history if not c.active), None)
    shown: dict[str, object] | None = None
    if active is not None:
        shown = {
            "version": active.version,
            "champion": active.champion_version,
            "started_at": active.started_at.isoformat(),
            "started_by": active.started_by,
            "bars": registry.shadows.count(active.version, active.champion_version),
            "min_bars": config.params(tf).promotion.shadow_min_bars,
        }
    last: dict[str, object] | None = None
    if ended is not None:
        last = {
            "version": ended.version,
            "outcome": ended.outcome.value if ended.outcome else None,
            "reason": ended.reason,
            "ended_at": ended.ended_at.isoformat() if ended.ended_at else None,
        }
    return shown, last


def bot_infos(
    client: redis.Redis, champions: Mapping[tuple[str, str], Champion], now: datetime
) -> list[BotInfo]:
    """Every bot with a live heartbeat hash, flagged stale / lagging / error, with its lag."""
    out = []
    for key in sorted(client.scan_iter(match=BOT_KEY_PATTERN, count=500)):
        fields = {str(k): str(v) for k, v in client.hgetall(key).items()}
        if not fields:
            continue  # expired between the scan and the read
        bot_id = str(key).split(":", 2)[-1]
        seen = _age_s(fields.get("seen_at"), now)
        version = fields.get("version") or None
        flags = []
        if seen is None or seen > STALE_BOT_S:
            flags.append("stale")
        champion = champions.get((fields.get("symbol", ""), fields.get("timeframe", "")))
        lag = None
        if champion is not None and champion.version is not None:
            lag = 0.0
            if version != champion.version:
                flags.append("lagging")
                lag = (now - champion.promoted_at).total_seconds() if champion.promoted_at else None
        if fields.get("last_error"):
            flags.append("error")
        out.append(
            BotInfo(
                bot_id,
                fields.get("symbol", ""),
                fields.get("timeframe", ""),
                version,
                seen,
                fields.get("last_error") or None,
                flags,
                lag,
            )
        )
    return out


@dataclass(frozen=True)
class Champion:
    """A market's champion as the bot listing needs it: the version, and since when."""

    version: str | None
    promoted_at: datetime | None


def champions_of(registry: Registry, markets: Sequence[MarketInfo]) -> dict[tuple[str, str], Champion]:
    """Each market's champion and when it was promoted (the latest promotion to it)."""
    out = {}
    for m in markets:
        promoted = None
        if m.champion is not None:
            moves = [
                p for p in registry.champions.history(m.symbol, m.timeframe) if p.to_version == m.champion
            ]
            promoted = moves[0].at if moves else None
        out[(m.symbol, m.timeframe)] = Champion(m.champion, promoted)
    return out


def farm_status(
    registry: Registry,
    config: FarmConfig,
    client: redis.Redis,
    *,
    active_queues: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
    stats: Mapping[str, Mapping[str, object]] | None = None,
    now: datetime | None = None,
    store: BarStore | None = None,
    load: PackLoader = load_champion,
) -> FarmStatus:
    """Everything `farm status` shows; ``active_queues``/``stats`` are Celery inspect's answers, ``store``
    the bar store the skew check recomputes features from (default: the settings'), ``load`` loads a
    champion's pack (default: verified and cached)."""
    now = now or datetime.now(UTC)
    markets = market_infos(registry, config, now, store or open_store(), load)
    champions = champions_of(registry, markets)
    runs: list[dict[str, object]] = [
        {
            "id": r.id,
            "symbol": r.symbol,
            "timeframe": r.timeframe,
            "stage": r.status.value,
            "reasons": r.reasons,
            "age_s": (now - r.created_at).total_seconds(),
        }
        for r in registry.runs.all_active()
    ]
    return FarmStatus(
        _workers(active_queues or {}, stats or {}),
        queue_depths(client),
        runs,
        markets,
        bot_infos(client, champions, now),
    )


__all__ = [
    "STALE_BOT_S",
    "BotInfo",
    "Champion",
    "FarmStatus",
    "MarketInfo",
    "WorkerInfo",
    "bot_infos",
    "champions_of",
    "farm_status",
    "market_infos",
]
