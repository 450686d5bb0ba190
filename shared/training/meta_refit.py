"""The meta-only retrain: keep the champion's base models, refit the stacker and the calibration on new bars.

What it fits on which bars, and why: docs/ml.md#meta-only-retrains; how it is queued:
docs/architecture.md#meta-only-runs.

Honesty rests on one fact: the champion's shipped base models were fitted on labels that end at its
``fitted_until`` (:attr:`trainfarm.shared.packs.predictor.Predictor.fitted_until`), so on every bar after it
their predictions are out of sample, as out-of-fold predictions are in a full run. The run's snapshot
(:func:`trainfarm.shared.dataset.snapshot.build_snapshot` with ``after``) holds only those bars; from the
splits on, the full run's meta stage does the rest
(:func:`trainfarm.shared.training.meta_stage.finish_version`). The pack ships the champion's base model
files unchanged (same bytes, same sha256).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from trainfarm.shared.dataset.snapshot import DatasetSnapshot
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.evaluation.gates import ChampionStanding, Lineage
from trainfarm.shared.packs.artifacts import new_version_id, pack_dir
from trainfarm.shared.packs.attributions import Attributions
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.settings import get_settings
from trainfarm.shared.training.deploy import Deployment, Evaluated, label_end_of
from trainfarm.shared.training.meta_stage import BuiltVersion, RunIdentity, existing_version, finish_version
from trainfarm_client.arrays import FloatArray

_SPLITS = ("train", "calibration", "test")


def champion_base_models(champion: Predictor) -> dict[str, tuple[Path, str, str, str]]:
    """The champion's base models as the manifest lists them: name -> (file, sha256, device, kind)."""
    found: dict[str, tuple[Path, str, str, str]] = {}
    entries = champion.manifest.get("base_models")
    if not isinstance(entries, list) or not entries:
        raise ArtifactError(f"{champion.path}: the manifest lists no base models")
    for entry in entries:
        file, device = champion.path / str(entry["file"]), str(entry.get("device", "cpu"))
        found[str(entry["name"])] = (file, str(entry["sha256"]), device, str(entry["kind"]))
    return found


def build_meta_version(
    job: RunIdentity,
    snapshot: DatasetSnapshot,
    champion: Predictor,
    work_dir: Path,
    *,
    threads: int,
    run_created_at: datetime,
    standing: ChampionStanding | None = None,
    lineage: Lineage | None = None,
) -> BuiltVersion:
    """Refit the stacker and the calibration of ``champion`` on ``snapshot`` (bars after its data).

    ``snapshot`` must come from :func:`~trainfarm.shared.dataset.snapshot.build_snapshot` with ``after`` set
    to ``champion.fitted_until``; a row at or before it is refused (the base models may have seen its
    label). ``standing`` is the champion's and ``lineage`` the market's, as for
    :func:`~trainfarm.shared.training.meta_stage.build_version`; like it, a redelivery that finds the
    run's pack written already returns it.
    """
    settings = get_settings()
    version_id = new_version_id(run_created_at, job.run_id)
    final = pack_dir(settings.artifacts_dir, job.symbol, job.timeframe.value, version_id)
    if final.exists():
        return existing_version(final, job)
    fitted_until = champion.fitted_until
    if fitted_until is None:
        raise ArtifactError(f"{champion.path}: the champion does not say what its data covers")
    frame = snapshot.frame()
    first = frame["date"].min()
    if not isinstance(first, datetime) or first <= fitted_until:
        raise ArtifactError(
            f"snapshot {snapshot.content_hash[:12]} starts at {snapshot.first_bar}, not after the "
            f"champion's data ({fitted_until.isoformat()}): its base models may have seen those labels"
        )
    if list(snapshot.feature_names) != list(champion.feature_names):
        raise ArtifactError(
            f"snapshot {snapshot.content_hash[:12]} carries other features than the champion "
            f"{champion.version} reads; build it with the champion's feature spec"
        )
    models = champion_base_models(champion)
    names = list(champion.feature_names)
    per_split = {
        split: champion.base_probabilities(
            frame.filter(pl.col("split") == split).select(names).to_numpy().astype(np.float64)
        )
        for split in _SPLITS
    }
    preds: dict[str, dict[str, FloatArray]] = {
        m: {
            "oof": per_split["train"][m],
            "calibration": per_split["calibration"][m],
            "test": per_split["test"][m],
        }
        for m in models
    }

    def deploy(passed: bool, evaluated: Evaluated, sample_x: FloatArray) -> Deployment:
        del passed, sample_x  # shipped as evaluated either way (see the module docs)
        return Deployment(
            {m: (file, digest, device) for m, (file, digest, device, _) in models.items()},
            evaluated.calibrator,
            evaluated.sample_expected,
            {
                "refit": False,
                "meta_only": True,
                "base_models_from": champion.version,
                "base_models_fitted_until": fitted_until.isoformat(),
                "stacker_fitted_on": ["train"],
                "calibrator_fitted_on": ["calibration"],
                "label_end": label_end_of(frame, ("train", "calibration")),
                "rows": int(frame.height),
            },
        )

    champion_metrics = champion.manifest.get("metrics")
    base_metrics = champion_metrics.get("base", {}) if isinstance(champion_metrics, dict) else {}
    distribution = champion.manifest.get("feature_distribution")
    inherited = Attributions.of_manifest(champion.manifest)
    return finish_version(
        job,
        snapshot,
        preds,
        work_dir,
        version_id=version_id,
        threads=threads,
        champion=champion,
        standing=standing,
        lineage=lineage,
        deploy=deploy,
        kinds={m: kind for m, (_, _, _, kind) in models.items()},
        base_metrics=base_metrics if isinstance(base_metrics, dict) else {},
        feature_distribution=distribution if isinstance(distribution, dict) else None,
        extra_data={"meta_only": {"champion": champion.version, "after": fitted_until.isoformat()}},
        # The base models are the champion's files: so are their attributions (measured on its splits).
        attributions=inherited.base_models if inherited is not None else None,
    )


__all__ = ["build_meta_version", "champion_base_models"]
