"""Driving a replay: create it, submit its points to the workers, decide in time order, score, finish.

Plain functions (the CLI passes how to submit a point and how to ask the broker whether one is under way):

* :func:`create_replay` checks the request (market, period, cadence) and records the replay and its points;
* :func:`drive` submits every point that is neither trained nor still in the broker, all at once (one
  chord each, as beat's fan-outs do), then, as results arrive, feeds the trained points in time order to
  the gated policy (the comparison at ``t_i`` needs the champion chosen before it); once every point is
  decided it scores the five policies bar by bar and stores the result. A replay whose driver stopped is
  driven again by ``farm replay resume``: trained points are reused, points still in the broker are
  waited for, lost ones are submitted again; none is trained twice.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.inputs import feature_spec, load_inputs
from trainfarm.shared.errors import ConfigError, ConfigMismatchError, DataNotFoundError, ReplayFailedError
from trainfarm.shared.evaluation.trading import periods_per_year
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.registry import PointStatus, Registry, ReplayPointRecord, ReplayRecord, ReplayStatus
from trainfarm.shared.replay.candidates import load_candidate
from trainfarm.shared.replay.clock import point_id, replay_dir, retrain_points
from trainfarm.shared.replay.decisions import Decision, GatedPolicy, TrainedPoint, promotions, timeline
from trainfarm.shared.replay.metrics import SHADOW, degradation_curve, policy_metrics, shipped_signal_rates
from trainfarm.shared.replay.plot import replay_plot
from trainfarm.shared.replay.scoring import score_bars, write_scores
from trainfarm.shared.replay.shadow_policy import ShadowPolicy, ShadowRule
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe
from trainfarm.workers.payloads import ReplayJob

SCORES_FILE = "scores.parquet"
PLOT_FILE = "replay.png"
#: Bars in the plot's rolling log-loss window.
ROLLING_BARS = 200


@dataclass(frozen=True)
class Progress:
    """Where a driven replay stands: points trained and decided, and the newest decision."""

    trained: int
    decided: int
    total: int
    decision: Decision | None = None
    at: datetime | None = None


def create_replay(
    symbol: str, timeframe: str, *, start: datetime, end: datetime, cadence: timedelta | None = None
) -> ReplayRecord:
    """Record a replay of ``symbol`` at ``timeframe`` over ``[start, end)``, a retrain every ``cadence``.

    The cadence defaults to the timeframe's configured retrain cadence. Raises :class:`DataNotFoundError`
    when the store has no bars of the market, :class:`ConfigError` when the period lies outside them or
    the cadence does not fit the timeframe.
    """
    config = get_settings().load_config()
    tf = parse_timeframe(timeframe)
    market = canonical_symbol(symbol)
    store = open_store()
    if not store.has(market):
        raise DataNotFoundError(f"no stored bars of {market}: import them first (farm data import)")
    # The bars the timeframe is built from: its finest interval, extended back by coarser ones.
    summaries = [store.summary(market, interval) for interval in store.serving(market, tf)]
    first, last = min(s.first for s in summaries), max(s.end for s in summaries)
    step = cadence or config.params(tf).cadence
    points = retrain_points(start, end, step, tf)
    if points[0] <= first or points[-1] >= last:
        raise ConfigError(
            f"the replay period {points[0].isoformat()} .. {end.isoformat()} must lie inside the stored bars "
            f"of {market} ({first.isoformat()} .. {last.isoformat()}), after enough history to train on"
        )
    return Registry.open().replays.create(
        market,
        tf.value,
        start=points[0],
        end=end,
        cadence=step,
        points=points,
        config_hash=config.config_hash(),
    )


def job_of(replay: ReplayRecord, point: ReplayPointRecord) -> ReplayJob:
    """The payload that trains ``point``."""
    return ReplayJob(
        replay_id=replay.id,
        idx=point.idx,
        symbol=replay.symbol,
        timeframe=replay.timeframe,
        at=point.at,
        config_hash=replay.config_hash,
    )


def trained_point(point: ReplayPointRecord) -> TrainedPoint:
    """A trained point as the decision pass and the scoring take it."""
    if point.version is None or point.path is None or point.manifest_sha256 is None:
        raise ReplayFailedError(f"point {point.idx} is not trained")
    return TrainedPoint(point.idx, point.at, point.version, Path(point.path), point.manifest_sha256)


def drive(
    replay_id: str,
    *,
    submit: Callable[[ReplayJob], object],
    in_flight: Callable[[str], bool],
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> ReplayRecord:
    """Train every point not trained yet, decide in time order, score and store the result.

    ``submit`` enqueues one point; ``in_flight(point_id)`` says whether the broker still holds one of its
    messages (such a point is waited for, not submitted again). Raises :class:`ReplayFailedError` naming
    the first failed point (the replay is marked failed), :class:`TimeoutError` past ``timeout_s``.
    """
    registry = Registry.open()
    replay = registry.replays.get(replay_id)
    config = get_settings().load_config()
    if config.config_hash() != replay.config_hash:
        raise ConfigMismatchError(
            f"replay {replay.id} was started with config {replay.config_hash[:12]}; this config hashes to "
            f"{config.config_hash()[:12]}: replay again with the new config instead"
        )
    if replay.status is not ReplayStatus.RUNNING:
        registry.replays.resumed(replay.id)
    points = registry.replays.points(replay.id)
    for point in points:
        if point.status is not PointStatus.TRAINED and not in_flight(point_id(replay.id, point.idx)):
            registry.replays.submitted(replay.id, point.idx)
            submit(job_of(replay, point))
    gated = GatedPolicy(config, Timeframe(replay.timeframe))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    trained: list[TrainedPoint] = []
    while True:  # bounded by the points' training (each ends trained or failed) and by timeout_s
        points = registry.replays.points(replay.id)
        failed = next((p for p in points if p.status is PointStatus.FAILED), None)
        if failed is not None:
            message = f"point {failed.idx} ({failed.at.isoformat()}) failed: {failed.error}"
            registry.replays.fail(replay.id, message)
            raise ReplayFailedError(
                f"replay {replay.id}: {message}; `farm replay resume {replay.id}` retries it"
            )
        while len(trained) < len(points) and points[len(trained)].status is PointStatus.TRAINED:
            ready = trained_point(points[len(trained)])
            decision = gated.feed(ready)
            registry.replays.decided(replay.id, ready.idx, decision.report)
            trained.append(ready)
            if progress is not None:
                done = sum(p.status is PointStatus.TRAINED for p in points)
                progress(Progress(done, len(trained), len(points), decision, ready.at))
        if len(trained) == len(points):
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"replay {replay.id}: {len(trained)} of {len(points)} points decided in time")
        time.sleep(poll_s)
    return finish(replay, trained, gated.decisions)


def finish(replay: ReplayRecord, trained: list[TrainedPoint], decisions: list[Decision]) -> ReplayRecord:
    """Score the five policies bar by bar, write the scores and the plot, store the result."""
    started = time.perf_counter()
    config = get_settings().load_config()
    tf = Timeframe(replay.timeframe)
    params = config.params(tf)
    lines = timeline(trained, decisions)
    shadow = ShadowPolicy(ShadowRule.of(config, tf), {d.idx: d.passed for d in decisions})
    priors = [load_candidate(p.candidate_path)[0].prior for p in trained]
    # Every series the market's features read (its own bars first), as the points were trained on them.
    spec = feature_spec(config, replay.symbol, tf)
    inputs = load_inputs(open_store(), spec)
    scores = score_bars(
        inputs[spec.key], trained, lines, priors, timeframe=tf, params=params, end=replay.end, context=inputs,
        shadow=shadow,
    )  # fmt: skip
    folder = replay_dir(get_settings().artifacts_dir, replay.id)
    write_scores(scores, folder / SCORES_FILE)
    changed = promotions(lines) | {SHADOW: shadow.promoted}
    # The first pack a policy scores with is its first model, not a promotion over a champion.
    counts = {policy: max(0, len(points) - 1) for policy, points in changed.items()}
    fee = config.evaluation.fee
    metrics = policy_metrics(
        scores,
        promotions=counts,
        horizon=params.label_horizon,
        fee=fee,
        periods_per_year=periods_per_year(tf.minutes),
        ece_bins=config.evaluation.ece_bins,
    )
    replay_plot(
        scores,
        {
            policy: [p.at for p in points]
            for policy, points in changed.items()
            if policy in ("gated", "always", SHADOW)
        },
        folder / PLOT_FILE,
        title=f"replay {replay.id[:8]}: {replay.symbol} {tf}, retrain every {replay.cadence_text}",
        horizon=params.label_horizon,
        fee=fee,
        window=ROLLING_BARS,
    )
    result: dict[str, object] = {
        "policies": metrics,
        "degradation": degradation_curve(scores),
        # Every pack ships refit: its signal rate on the bars after its data against the gated one.
        "signal_rates": shipped_signal_rates(
            scores, {p.version: _recorded_rate(p) for p in trained}, horizon=params.label_horizon
        ),
        "retrain_points": len(trained),
        "promotions": {
            policy: [{"at": p.at.isoformat(), "version": p.version} for p in points]
            for policy, points in changed.items()
        },
        # The shadow policy's challengers: when each started, and how and why each ended.
        "shadow": [
            {"at": e.at.isoformat(), "event": e.event, "version": e.version, "reason": e.reason}
            for e in shadow.events
        ],
        "decisions": [
            {
                "idx": d.idx,
                "passed": d.passed,
                "champion_before": d.champion_before,
                "failed": _failed_checks(d),
            }
            for d in decisions
        ],
        "scores": SCORES_FILE,
        "plot": PLOT_FILE,
        "scoring_seconds": round(time.perf_counter() - started, 1),
        "wall_seconds": round(
            (datetime.now(replay.created_at.tzinfo) - replay.created_at).total_seconds(), 1
        ),
    }
    return Registry.open().replays.finish(replay.id, result)


def _recorded_rate(point: TrainedPoint) -> dict[str, object]:
    """The pack's ``data.deployed.signal_rate`` (empty when it records none)."""
    data = read_manifest(point.path).get("data")
    deployed = data.get("deployed") if isinstance(data, dict) else None
    rate = deployed.get("signal_rate") if isinstance(deployed, dict) else None
    return rate if isinstance(rate, dict) else {}


def _failed_checks(decision: Decision) -> list[str]:
    checks = decision.report.get("checks")
    if not isinstance(checks, list):
        return []
    return [str(c.get("name")) for c in checks if isinstance(c, dict) and c.get("passed") is False]


def interrupt(replay_id: str, why: str) -> None:
    """Mark a replay interrupted (its driver stopped); its points already submitted go on training."""
    Registry.open().replays.fail(replay_id, why, status=ReplayStatus.INTERRUPTED)


def delete_replay(replay_id: str) -> ReplayRecord:
    """Remove the replay's records and its folder (snapshots, packs, scores, plot); returns what it was."""
    registry = Registry.open()
    replay = registry.replays.get(replay_id)
    registry.replays.delete(replay.id)
    shutil.rmtree(replay_dir(get_settings().artifacts_dir, replay.id), ignore_errors=True)
    return replay


__all__ = [
    "PLOT_FILE",
    "SCORES_FILE",
    "Progress",
    "create_replay",
    "delete_replay",
    "drive",
    "finish",
    "interrupt",
    "job_of",
    "trained_point",
]
