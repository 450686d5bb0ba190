"""Meta-only runs: whether one is due, and the run itself (the task ``farm.meta_refit`` calls it).

A meta-only run keeps the champion's base models and refits the stacker and the calibration on the bars
after the champion's data (:mod:`trainfarm.shared.training.meta_refit`). It is one task on the ``meta``
queue: no base model trains. Beat's ``meta-<timeframe>`` entries ask for one per symbol; a market is
skipped, without a run, when it has no champion or fewer than ``meta_min_rows`` bars have come after the
champion's data (:func:`skip_reason`, from the champion's manifest and the bar store's last bar: cheap).

A meta-only run is a run like any other for "one run per market": a full retrain asked for while it is
under way merges into it (its reason joins the run's reasons), and when the meta-only run ends, those
merged full-retrain reasons are submitted as a full run (:func:`full_reasons`), so no full retrain is lost
to a cheaper one. Celery-free.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import snapshot_from_store
from trainfarm.shared.errors import ArtifactError, FarmError
from trainfarm.shared.packs.artifacts import MANIFEST
from trainfarm.shared.packs.predictor import Predictor, fitted_until
from trainfarm.shared.registry import Registry, RunRecord, RunStatus
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import parse_timeframe
from trainfarm.workers.payloads import RunJob
from trainfarm.workers.runs import claim_meta, run_dir
from trainfarm.workers.stages import (
    champion_standing,
    market_lineage,
    meta_guard_ttl_s,
    register_built,
    remove_staging,
    settle,
)

#: Every reason of a meta-only request starts with this; a run's other reasons asked for a full retrain.
META_REASON_PREFIX = "meta:"


def meta_reason(reason: str) -> str:
    """``reason`` marked as a meta-only request (``schedule`` -> ``meta:schedule``)."""
    return reason if reason.startswith(META_REASON_PREFIX) else META_REASON_PREFIX + reason


def full_reasons(run: RunRecord) -> list[str]:
    """The reasons merged into a meta-only run that asked for a full retrain (submit them when it ends)."""
    return [r for r in run.reasons if not r.startswith(META_REASON_PREFIX)]


def skip_reason(
    registry: Registry, config: FarmConfig, symbol: str, timeframe: str, *, now: datetime | None = None
) -> str | None:
    """Why a meta-only retrain of the market would be pointless now, or None when it is due.

    The bars after the champion's data are estimated from the store's last 5m bar (gaps make the real
    count lower; the run then fails saying how many it found).
    """
    tf = parse_timeframe(timeframe)
    params = config.params(tf)
    champion = registry.champions.get(symbol, tf)
    if champion is None:
        return "no champion: a meta-only retrain reuses the champion's base models"
    try:
        manifest = json.loads((Path(champion.path) / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return f"cannot read the champion's manifest ({exc})"
    after = fitted_until(manifest) if isinstance(manifest, dict) else None
    if after is None:
        return f"the champion {champion.version} does not say what its data covers"
    store = open_store()
    if not store.has(symbol):
        return f"no stored bars of {symbol}"
    last = store.newest_close(symbol)
    fresh = int((last - after) / tf.duration) - params.label_horizon
    if fresh < params.meta_min_rows:
        return (
            f"about {max(fresh, 0)} labelled {tf} bars after the champion's data ({after.isoformat()}); "
            f"a meta-only retrain needs {params.meta_min_rows} (meta_min_rows)"
        )
    return None


def run_meta(job: RunJob, *, task_id: str, threads: int) -> str | None:
    """Run a meta-only retrain once, register its version and settle it (promote or reject).

    Returns the version id, or None for a duplicate delivery. A redelivery after the version was
    registered settles it instead (as the full run's meta stage does). Errors are the caller's to record.
    """
    from trainfarm.shared.training.meta_refit import build_meta_version

    settings = get_settings()
    config = settings.load_config()
    registry = Registry.open()
    run = registry.runs.get(job.run_id)
    if run.status.terminal:
        if run.version is not None:
            settle(registry.versions.get(run.version))
        return run.version
    with redis_connection(settings) as client:
        if not claim_meta(client, job.run_id, task_id, meta_guard_ttl_s()):
            return None
    champion = registry.champions.get(job.symbol, job.timeframe.value)
    if champion is None:
        raise FarmError(
            f"{job.symbol} {job.timeframe} has no champion: a meta-only retrain reuses the champion's "
            "base models"
        )
    registry.runs.set_status(job.run_id, RunStatus.PREPARING)
    predictor = Predictor.load(Path(champion.path), expected_manifest_sha256=champion.manifest_sha256)
    after = predictor.fitted_until
    if after is None:
        raise ArtifactError(f"the champion {champion.version} does not say what its data covers")
    # The champion's base models are kept, so the rows carry the features they read (its own spec,
    # whatever the config says now).
    snapshot = snapshot_from_store(
        open_store(),
        symbol=job.symbol,
        timeframe=job.timeframe,
        config=config,
        root=settings.datasets_dir,
        after=after,
        spec=predictor.spec,
    )
    registry.runs.set_status(
        job.run_id,
        RunStatus.META,
        snapshot_hash=snapshot.content_hash,
        snapshot_path=snapshot.path,
        config_hash=config.config_hash(),
    )
    work_dir = run_dir(job.run_id)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        built = build_meta_version(
            job,
            snapshot,
            predictor,
            work_dir,
            threads=threads,
            run_created_at=run.created_at,
            standing=champion_standing(champion, run.reasons),
            lineage=market_lineage(registry, job.symbol, job.timeframe),
        )
    finally:
        remove_staging(job.run_id)
    return register_built(registry, job, built)


__all__ = ["META_REASON_PREFIX", "full_reasons", "meta_reason", "run_meta", "skip_reason"]
