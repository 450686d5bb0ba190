"""What the dashboard's pages show, as plain data gathered from the registry, Redis and the packs.

Read-only: nothing here writes anywhere. The grid, the run history and the bot fleet are cheap enough to
gather on every refresh (the pages refresh themselves every few seconds); the version page reads one
pack's manifest. Celery-free (the dashboard never talks to workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.monitoring.policies import live_win_rate_of
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.packs.attributions import Attributions
from trainfarm.shared.registry import Registry, ReplayRecord, RunRecord, VersionRecord
from trainfarm.shared.replay.clock import replay_dir
from trainfarm.shared.replay.metrics import POLICIES
from trainfarm.shared.timeframes import Timeframe
from trainfarm.workers.checks.live_window import load_champion
from trainfarm.workers.status import BotInfo, MarketInfo, bot_infos, champions_of, market_infos


@dataclass(frozen=True)
class MarketCell:
    """One (symbol, timeframe) of the grid."""

    info: MarketInfo
    live_signals: int  #: the champion's live signals with a realised return
    live_win_rate: float | None  #: share of them that made money (None: none yet)


@dataclass(frozen=True)
class Grid:
    """The market grid: symbols down, timeframes across."""

    symbols: list[str]
    timeframes: list[str]
    cells: dict[tuple[str, str], MarketCell]
    #: each symbol's data freshness, as one of its markets reports it (newest bar, age, stale)
    data: dict[str, MarketInfo]


def grid(registry: Registry, config: FarmConfig, now: datetime | None = None) -> Grid:
    """Every market of the universe, and every other market that has a champion (the universe may have
    dropped it), with its champion, age against the limit, last verdict, hold and live win rate, and each
    symbol's newest bar."""
    now = now or datetime.now(UTC)
    cells = {}
    data: dict[str, MarketInfo] = {}
    extra = registry.champions.markets()
    for info in market_infos(registry, config, now, None, load_champion, extra=extra):
        live = (
            registry.outcomes.live_results(info.symbol, info.timeframe, info.champion)
            if info.champion
            else []
        )
        cells[(info.symbol, info.timeframe)] = MarketCell(info, len(live), live_win_rate_of(live))
        data.setdefault(info.symbol, info)
    symbols = list(dict.fromkeys([*config.universe.symbols, *(s for s, _ in extra)]))
    shown = {tf.value for tf in config.universe.timeframes} | {tf for _, tf in extra}
    timeframes: list[str] = [str(tf.value) for tf in Timeframe if tf.value in shown]
    return Grid(symbols, timeframes, cells, data)


def runs(registry: Registry, limit: int = 100) -> list[RunRecord]:
    """The newest runs, newest first."""
    return registry.runs.newest(limit=limit)


def bots(
    registry: Registry, config: FarmConfig, client: redis.Redis, now: datetime | None = None
) -> list[BotInfo]:
    """The bot fleet from the heartbeats: version served, last heartbeat, lag, last error."""
    now = now or datetime.now(UTC)
    markets = market_infos(registry, config, now, None, load_champion, extra=registry.champions.markets())
    return bot_infos(client, champions_of(registry, markets), now)


@dataclass(frozen=True)
class VersionPage:
    """One version: its record, gate checks, stacker choice, metrics and the pack's plots."""

    record: VersionRecord
    checks: list[dict[str, Any]]
    stacker: dict[str, Any]
    metrics: dict[str, Any]
    plots: list[str]  #: pack-relative paths of the PNGs the manifest lists
    pack_problem: str | None  #: why the pack could not be read (pruned, tampered), or None
    p_star: float | None
    #: what the models relied on (None: the pack records none, or could not be read)
    attributions: Attributions | None = None


def version_page(registry: Registry, version_id: str) -> VersionPage:
    """The version page's data; a pack that is gone or fails verification is reported, not raised."""
    record = registry.versions.get(version_id)
    report = record.gate_report or {}
    checks = [c for c in report.get("checks", []) if isinstance(c, dict)]
    manifest: dict[str, Any] = {}
    problem = None
    try:
        manifest = dict(read_manifest(Path(record.path), expected_sha256=record.manifest_sha256))
    except ArtifactError as exc:
        problem = str(exc)
    stacker = manifest.get("stacker") if isinstance(manifest.get("stacker"), dict) else {}
    plots = [p for p in manifest.get("plots", []) if isinstance(p, str) and p.endswith(".png")]
    p_star = manifest.get("p_star")
    return VersionPage(
        record,
        checks,
        stacker or {},
        record.metrics,
        plots,
        problem,
        float(p_star) if isinstance(p_star, int | float) else None,
        Attributions.of_manifest(manifest),
    )


def plot_file(registry: Registry, version_id: str, name: str) -> Path:
    """The verified PNG ``name`` of a version's pack (listed in its manifest, inside the pack).

    :class:`ArtifactError` when the manifest does not list it or the pack fails verification (every
    file's sha256 is checked against the manifest, whose own sha256 is the registry's).
    """
    record = registry.versions.get(version_id)
    manifest = read_manifest(Path(record.path), expected_sha256=record.manifest_sha256)
    plots, files = manifest.get("plots"), manifest.get("files")
    listed = isinstance(plots, list) and name in plots and isinstance(files, dict) and name in files
    if not listed or not name.endswith(".png"):
        raise ArtifactError(f"{version_id} has no plot {name!r}")
    return Path(record.path) / name


#: The policies of a replay, in the order the page shows them.
REPLAY_POLICIES = POLICIES


def replays(registry: Registry, limit: int = 100) -> list[ReplayRecord]:
    """The newest replays first."""
    return registry.replays.recent(limit=limit)


@dataclass(frozen=True)
class ReplayPage:
    """One replay: its record, the five policies' figures, its degradation curve and decisions."""

    record: ReplayRecord
    policies: dict[str, dict[str, Any]]
    degradation: list[dict[str, Any]]
    points: int
    has_plot: bool


def replay_page(registry: Registry, replay_id: str, artifacts: Path) -> ReplayPage:
    """What the replay page shows (raises ReplayNotFoundError)."""
    record = registry.replays.get(replay_id)
    result = record.result or {}
    policies = result.get("policies")
    degradation = result.get("degradation")
    return ReplayPage(
        record,
        {p: dict(policies.get(p) or {}) for p in REPLAY_POLICIES} if isinstance(policies, dict) else {},
        list(degradation) if isinstance(degradation, list) else [],
        len(registry.replays.points(record.id)),
        replay_plot_file(record, artifacts).is_file(),
    )


def replay_plot_file(record: ReplayRecord, artifacts: Path) -> Path:
    """Where the replay's plot is (it may not exist yet: the replay has not finished)."""
    plot = (record.result or {}).get("plot", "replay.png")
    return replay_dir(artifacts, record.id) / str(plot)


__all__ = [
    "Grid",
    "MarketCell",
    "VersionPage",
    "bots",
    "grid",
    "plot_file",
    "runs",
    "version_page",
]
