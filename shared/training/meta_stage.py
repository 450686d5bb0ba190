"""The meta stage: stack the 8 base models, fit the meta-learner, calibrate, evaluate, write the pack.

Inputs are the base models' saved predictions (out-of-fold on train, full-train fits on calibration and
test), each verified against the sha256 its task reported; :mod:`trainfarm.shared.training.judging`
stacks, calibrates, gates and scores them, and this module writes what it judged. When the gates pass,
the shipped pack is refit on the whole snapshot (:mod:`trainfarm.shared.training.deploy`); either way the
written pack is loaded back and must reproduce its sample rows.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

import trainfarm.shared
from trainfarm.shared.atomicio import sha256_file
from trainfarm.shared.dataset.features import FEATURE_SPEC_VERSION
from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.dataset.snapshot import DatasetSnapshot
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.evaluation.gates import ChampionSource, ChampionStanding, Lineage
from trainfarm.shared.evaluation.plots import confidence_diagram, reliability_diagram
from trainfarm.shared.monitoring.drift import FeatureDistribution
from trainfarm.shared.packs.artifacts import MANIFEST, new_version_id, pack_dir, read_manifest, write_pack
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.settings import get_settings
from trainfarm.shared.stacking.importance import permutation_importance
from trainfarm.shared.stacking.layout import meta_feature_names
from trainfarm.shared.stacking.selection import FittedBooster
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.base import ATTRIBUTED_SPLITS, BaseModelResult
from trainfarm.shared.training.deploy import Deployment, Evaluated, deployment, label_end_of
from trainfarm.shared.training.judging import Judgement, judge
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm_client.arrays import FloatArray

#: Where a pack keeps the 55-feature LightGBM stacker, when a run chose it.
STACKER_BOOSTER = "stacker/booster.txt"

#: Rows of the test split stored in the manifest with their expected outputs (load-and-query check).
SAMPLE_ROWS = 16
_LIBRARIES = ("trainfarm", "lightgbm", "xgboost", "catboost", "scikit-learn", "numpy", "polars")


@dataclass(frozen=True)
class BuiltVersion:
    """A written pack and what the registry records of it."""

    version: str
    path: Path
    manifest_sha256: str
    metrics: dict[str, object]
    #: :meth:`trainfarm.shared.evaluation.gates.GateReport.to_json` of the candidate: promote only when
    #: ``["passed"]`` is
    #: true.
    gate_report: dict[str, object] | None = None


def _verified(work_dir: Path, result: BaseModelResult) -> Path:
    path = work_dir / result.predictions_file
    if not path.is_file() or sha256_file(path) != result.predictions_sha256:
        raise ArtifactError(
            f"predictions of {result.model} at {path} are missing or differ from their sha256"
        )
    return path


def base_predictions(work_dir: Path, result: BaseModelResult) -> dict[str, FloatArray]:
    """A base model's saved ``oof``, ``calibration`` and ``test`` probabilities, checked by sha256."""
    with np.load(_verified(work_dir, result), allow_pickle=False) as npz:
        return {key: np.asarray(npz[key], dtype=np.float64) for key in ("oof", "calibration", "test")}


def base_attributions(
    work_dir: Path, result: BaseModelResult, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """A base model's attributions per split (feature -> mean absolute attribution) from its predictions
    file, checked by sha256; {} for a model without them (see ``train_base_model``). ``names``: the
    snapshot's feature names, the order they were written in."""
    with np.load(_verified(work_dir, result), allow_pickle=False) as npz:
        return {
            split: dict(zip(names, (float(v) for v in npz[f"attributions_{split}"]), strict=True))
            for split in ATTRIBUTED_SPLITS
            if f"attributions_{split}" in npz.files
        }


def _library_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


class RunIdentity(Protocol):
    """The run a meta stage builds a version for (the orchestration's stage payload provides it)."""

    @property
    def run_id(self) -> str: ...

    @property
    def symbol(self) -> str: ...

    @property
    def timeframe(self) -> Timeframe: ...


def existing_version(final: Path, job: RunIdentity) -> BuiltVersion:
    """The run's already written pack, verified file by file."""
    manifest = read_manifest(final)
    metrics = manifest.get("metrics")
    if manifest.get("run_id") != job.run_id or not isinstance(metrics, dict):
        raise ArtifactError(f"{final} exists but belongs to another run")
    report = manifest.get("gate_report")
    gate_report = report if isinstance(report, dict) else None
    return BuiltVersion(final.name, final, sha256_file(final / MANIFEST), metrics, gate_report)


def build_version(
    job: RunIdentity,
    snapshot: DatasetSnapshot,
    base: Mapping[str, BaseModelResult],
    work_dir: Path,
    *,
    threads: int,
    run_created_at: datetime,
    champion: ChampionSource | None = None,
    standing: ChampionStanding | None = None,
    lineage: Lineage | None = None,
    pack_root: Path | None = None,
    always_deploy: bool = False,
    on_judged: Callable[[Judgement], None] | None = None,
) -> BuiltVersion:
    """Run the meta stage for ``job`` and write its artifact pack; returns where and what.

    The version id comes from the run (its creation time and id), so a redelivered meta task that finds
    the run's pack already written (it died before registering it) reuses that pack instead of leaving
    an orphan beside a second one.

    ``champion`` is the current champion (a loaded :class:`trainfarm.shared.packs.predictor.Predictor`, or a
    zero-argument loader of one) or None when there is none. The candidate is gated
    (:mod:`trainfarm.shared.evaluation.gates`) against it on the same test rows; ``standing`` (its age and
    the live triggers behind the run) decides whether it may be replaced when too few of those rows are
    new to it; ``lineage`` (the market's previous judged candidate) whether a pass needs confirming. The
    report goes into the manifest and :attr:`BuiltVersion.gate_report`. A champion that
    fails to load or predict fails the report's ``champion_scored`` check instead of the run.

    A replay (:mod:`trainfarm.workers.replay_points`) writes under its own ``pack_root`` instead of the
    artifact store's, ships the refit models whatever the gates said (``always_deploy``: its policies
    decide later, against the champion of each moment) and keeps the judgement (``on_judged``).
    """
    settings = get_settings()
    version_id = new_version_id(run_created_at, job.run_id)
    root = pack_root or settings.artifacts_dir
    final = pack_dir(root, job.symbol, job.timeframe.value, version_id)
    if final.exists():
        return existing_version(final, job)
    training = settings.load_config().training
    frame = snapshot.frame()
    order = list(MODEL_NAMES)

    def deploy(passed: bool, evaluated: Evaluated, sample_x: FloatArray) -> Deployment:
        return deployment(
            passed or always_deploy,
            frame,
            base,
            work_dir,
            evaluated,
            sample_x=sample_x,
            training=training,
            threads=threads,
            label_horizon=settings.load_config().params(job.timeframe).label_horizon,
            feature_names=snapshot.feature_names,
        )

    return finish_version(
        job,
        snapshot,
        {model: base_predictions(work_dir, base[model]) for model in order},
        work_dir,
        version_id=version_id,
        threads=threads,
        champion=champion,
        standing=standing,
        lineage=lineage,
        deploy=deploy,
        kinds={m: base[m].family for m in order},
        base_metrics={m: base[m].metrics for m in order},
        pack_root=root,
        on_judged=on_judged,
        attributions={
            m: found for m in order if (found := base_attributions(work_dir, base[m], snapshot.feature_names))
        },
    )


def finish_version(
    job: RunIdentity,
    snapshot: DatasetSnapshot,
    preds: Mapping[str, Mapping[str, FloatArray]],
    work_dir: Path,
    *,
    version_id: str,
    threads: int,
    champion: ChampionSource | None,
    deploy: Callable[[bool, Evaluated, FloatArray], Deployment],
    standing: ChampionStanding | None = None,
    lineage: Lineage | None = None,
    kinds: Mapping[str, str],
    base_metrics: Mapping[str, object],
    feature_distribution: dict[str, object] | None = None,
    extra_data: Mapping[str, object] | None = None,
    pack_root: Path | None = None,
    on_judged: Callable[[Judgement], None] | None = None,
    attributions: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> BuiltVersion:
    """Stack, calibrate, choose p*, gate, deploy and write the pack, from the base models' predictions.

    Shared by full runs (:func:`build_version`) and meta-only runs
    (:mod:`trainfarm.shared.training.meta_refit`). ``preds[model]`` holds ``oof`` (the stacker's training
    rows: out of fold, or out of sample), ``calibration`` and ``test`` probabilities of the snapshot's
    splits; ``deploy(passed, evaluated, sample_x)`` says what the pack ships; ``kinds`` are the base
    models' families; ``feature_distribution`` replaces the one computed from the snapshot (a meta-only
    pack keeps its base models' own); ``extra_data`` joins the manifest's ``data``; ``pack_root`` is where
    packs go (the artifact store's by default); ``on_judged`` sees the judgement before anything is written;
    ``standing`` is the champion's and ``lineage`` the market's (see
    :func:`trainfarm.shared.evaluation.gates.evaluate_gates`); ``attributions`` (model -> split -> feature
    -> mean absolute attribution, the evaluated base models') go into the manifest's ``attributions``.
    """
    # NumPy's BLAS and any OpenMP runtime size their thread pools to the whole machine. On a worker slot
    # that shares the cores with other slots they oversubscribe them (the stackers' logistic regressions,
    # the calibration and the gates' bootstrap), and the meta stage ran several times slower in the farm
    # than alone (bench/fanout.py): hold them to the task's threads.
    with threadpool_limits(limits=threads):
        settings = get_settings()
        final = pack_dir(pack_root or settings.artifacts_dir, job.symbol, job.timeframe.value, version_id)
        config = settings.load_config()
        timeframe = job.timeframe
        params = config.params(timeframe)
        judged = judge(
            snapshot,
            preds,
            timeframe,
            threads=threads,
            champion=champion,
            base_metrics=base_metrics,
            standing=standing,
            lineage=lineage,
        )
        if on_judged is not None:
            on_judged(judged)
        meta, part, y = judged.meta, judged.part, judged.labels
        gate_report, metrics = judged.gate_report, judged.metrics
        choice, calibrator, test_probs, p_star = meta.choice, meta.calibrator, meta.test_probs, judged.p_star
        frame = snapshot.frame()
        order = list(preds)
        now = datetime.now(UTC)
        spec = snapshot.spec()
        names = list(snapshot.feature_names)
        sample_x = part["test"].select(names).tail(SAMPLE_ROWS).to_numpy().astype(np.float64)
        deployed = deploy(
            judged.passed,
            Evaluated(
                meta.choice.stacker,
                meta.calibrator,
                meta.raw,
                y,
                meta.test_probs[-SAMPLE_ROWS:],
                p_star,
                judged.x_test,
            ),
            sample_x,
        )
        with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
            plot = Path(tmp) / "calibration.png"
            title = f"{job.symbol} {timeframe} {version_id} (test)"
            reliability_diagram(test_probs, y["test"], plot, title=title)
            confidence = Path(tmp) / "confidence.png"
            confidence_diagram(test_probs, y["test"], confidence, title=title)
            files: dict[str, Path | bytes] = {
                **{_pack_file(m, deployed.model_files[m][0]): deployed.model_files[m][0] for m in order},
                "calibrator.json": json.dumps(deployed.calibrator.to_json()).encode(),
                "plots/calibration.png": plot,
                "plots/confidence.png": confidence,
            }
            stacker_entry: dict[str, object]
            if isinstance(choice.stacker, FittedBooster):
                files[STACKER_BOOSTER] = choice.stacker.model.to_text().encode()
                stacker_entry = {
                    "kind": "lightgbm",
                    "file": STACKER_BOOSTER,
                    "feature_names": meta_feature_names(order),
                    "best_iteration": int(choice.stacker.model.best_iteration),
                }
            else:
                stacker_entry = choice.stacker.to_json()
            for m in order:
                file, digest, _ = deployed.model_files[m]
                if sha256_file(file) != digest:
                    raise ArtifactError(
                        f"model file of {m} at {file} differs from the sha256 it was written with"
                    )
            # The training distribution of the shipped models, for the feature-drift trigger
            # (shared/monitoring/drift.py).
            distribution = feature_distribution or (
                FeatureDistribution.of_deployment(frame, names, deployed.data).to_json()
            )
            manifest = {
                "version": version_id,
                "symbol": job.symbol,
                "timeframe": timeframe.value,
                "run_id": job.run_id,
                "created_at": now.isoformat(),
                "classes": list(CLASSES),
                "feature_names": names,
                "feature_spec_version": FEATURE_SPEC_VERSION,
                # The sets, their versions and the context series (trainfarm_client.featurespec), and
                # what a bot must feed for them (for bots that do not run the Python client).
                "features": spec.to_json(),
                "requirements": [
                    {"symbol": r.symbol, "timeframe": r.timeframe, "bars": r.bars}
                    for r in spec.requirements()
                ],
                # What [training] prune_features dropped and every importance it was decided on (None:
                # pruning was off for this snapshot).
                "feature_pruning": snapshot.pruning,
                "feature_params": {
                    "interval_minutes": timeframe.minutes,
                    "max_gap_bars": params.max_gap_bars,
                },
                "label": {
                    "horizon": params.label_horizon,
                    "threshold": params.label_threshold,
                    "vol_window": params.vol_window,
                },
                "base_models": [
                    {
                        "name": m,
                        "kind": kinds[m],
                        "file": _pack_file(m, deployed.model_files[m][0]),
                        "sha256": deployed.model_files[m][1],
                        "device": deployed.model_files[m][2],
                    }
                    for m in order
                ],
                "stacker": stacker_entry | {"chosen": choice.chosen, "cv_logloss": dict(choice.scores)},
                "calibrator": {"file": "calibrator.json", "kind": calibrator.to_json()["kind"]},
                "plots": ["plots/calibration.png", "plots/confidence.png"],
                "p_star": p_star,
                "metrics": metrics,
                "gate_report": gate_report,
                "data": {
                    "snapshot_hash": snapshot.content_hash,
                    "sha256": snapshot.file_sha256,
                    "first_bar": snapshot.first_bar,
                    "last_bar": snapshot.last_bar,
                    "rows": snapshot.rows,
                    "split_rows": snapshot.split_rows,
                    # What the gate report judged (base models fitted on train, calibrator on calibration,
                    # scored on test), and what the pack ships (refit on everything when the gates passed).
                    "evaluated": {
                        "split_first_bar": snapshot.split_first_bar,
                        "train_label_end": label_end_of(frame, ("train",)),
                        "calibration_label_end": label_end_of(frame, ("calibration",)),
                        "test_label_end": label_end_of(frame, ("test",)),
                    },
                    "deployed": deployed.data,
                    **(extra_data or {}),
                },
                "config_hash": config.config_hash(),
                "code_version": trainfarm.shared.__version__,
                "library_versions": _library_versions(),
                "sample_rows": {"features": sample_x.tolist(), "expected": deployed.sample_expected.tolist()},
                "feature_distribution": distribution,
                "attributions": {
                    "base_models": {
                        m: {k: dict(v) for k, v in a.items()} for m, a in (attributions or {}).items()
                    },
                    # What the stacked model relied on, measured on the calibration split it never saw.
                    "stacker_permutation": permutation_importance(
                        choice.stacker, {m: preds[m]["calibration"] for m in order}, y["calibration"]
                    ),
                },
            }
            written = write_pack(final, files, manifest)
        _verify_or_remove(written.path)
        return BuiltVersion(version_id, written.path, written.manifest_sha256, metrics, gate_report)


def _pack_file(model: str, file: Path) -> str:
    return f"base/{model}{file.suffix}"


def _verify_or_remove(pack: Path) -> None:
    """Load the written pack as a bot would and reproduce its sample rows; remove it when that fails.

    The sample outputs were computed from the models as read back from their files, through the stacker
    and calibrator objects in memory; loading them from the pack re-verifies the whole chain.
    """
    try:
        Predictor.load(pack).self_check()
    except ArtifactError as exc:
        shutil.rmtree(pack, ignore_errors=True)
        raise ArtifactError(
            f"the written pack {pack.name} does not reproduce its sample rows: {exc}"
        ) from exc
