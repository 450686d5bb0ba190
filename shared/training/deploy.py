"""Fresh deployed models: after the gates pass, refit every base model on the whole snapshot.

What is refit, on which rows, what is kept and why: docs/ml.md#fresh-deployed-models. In short, each base
model repeats its evaluated recipe (``metrics["rounds"]`` of its result when the base stage chose the
rounds by early stopping, else the configured ``base_rounds``) on every row of the snapshot; the stacker
and p* are kept; the calibrator is refit on the calibration and test rows' stacked probabilities from the
EVALUATED base models, which never saw those rows. A refit that fails raises: the run fails loudly rather
than promoting a stale pack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from trainfarm.shared.config import TrainingParams
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.stacking.temperature import fit_temperature_shrink
from trainfarm.shared.training.base import BaseModelResult, Fitter, save_model
from trainfarm.shared.zoo import family, get_spec
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.calibration import TemperatureShrinkCalibration

DEPLOY_DIR = "deploy"


@dataclass(frozen=True)
class DeployedModel:
    """One base model refitted on the whole snapshot, saved in its library's format under ``deploy/``."""

    model: str
    file: Path
    sha256: str
    rounds: int
    device: str


def deployed_rounds(result: BaseModelResult, training: TrainingParams) -> int:
    """The rounds the evaluated fit used: chosen by early stopping when recorded, else the configured."""
    rounds = result.metrics.get("rounds")
    return int(rounds) if rounds is not None and rounds >= 1 else training.base_rounds


def refit_base_models(
    frame: pl.DataFrame,
    base: Mapping[str, BaseModelResult],
    work_dir: Path,
    *,
    training: TrainingParams,
    threads: int,
    predict_rows: FloatArray,
) -> tuple[dict[str, DeployedModel], dict[str, FloatArray]]:
    """Refit every model of ``base`` on all rows of ``frame``; return them and their ``predict_rows`` probs.

    ``frame`` is the snapshot's frame (train, calibration and test rows, in time order). Each model is
    written atomically to ``<work_dir>/deploy/<model>.<ext>``, read back, and the READ-BACK model predicts
    ``predict_rows`` (the manifest's sample rows), exactly as a bot loading the pack will.
    """
    x = np.ascontiguousarray(frame.select(FEATURE_NAMES).to_numpy(), dtype=np.float64)
    y = frame["label"].cast(pl.Int64).to_numpy()
    out_dir = work_dir / DEPLOY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, DeployedModel] = {}
    probs: dict[str, FloatArray] = {}
    for name, result in base.items():
        spec = get_spec(name)
        fam = family(spec)
        rounds = deployed_rounds(result, training)
        fitter = Fitter(spec=spec, fam=fam, training=training, threads=threads, device="cpu")
        fitted = fitter.fit(x, y, "refit for deployment on the whole snapshot", rounds=rounds)
        path = out_dir / f"{name}.{spec.file_ext}"
        digest, saved = save_model(fam, fitted, path)
        models[name] = DeployedModel(name, path, digest, rounds, "cpu")
        probs[name] = fam.predict_proba(saved, predict_rows, threads=threads)
    return models, probs


class _Stacker(Protocol):
    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray: ...


@dataclass(frozen=True, eq=False)
class Evaluated:
    """What the meta stage evaluated: the stacker, its calibrator, and its raw outputs per split."""

    stacker: _Stacker
    calibrator: TemperatureShrinkCalibration
    raw: Mapping[str, FloatArray]  #: the stacker's uncalibrated "calibration" and "test" probabilities
    labels: Mapping[str, IntArray]  #: class ids per split
    sample_expected: FloatArray  #: the evaluated pipeline's output on the sample rows


@dataclass(frozen=True)
class Deployment:
    """What a pack ships: base model files, the calibrator, sample outputs, and what they were fitted on."""

    model_files: dict[str, tuple[Path, str, str]]  #: model -> (file, sha256, device)
    calibrator: TemperatureShrinkCalibration
    sample_expected: FloatArray
    data: dict[str, object]  #: the manifest's ``data.deployed``


def deployment(
    passed: bool,
    frame: pl.DataFrame,
    base: Mapping[str, BaseModelResult],
    work_dir: Path,
    evaluated: Evaluated,
    *,
    sample_x: FloatArray,
    training: TrainingParams,
    threads: int,
) -> Deployment:
    """The evaluated models as they are (a rejected candidate), or refit on the whole snapshot (passed).

    See the module docs; ``data.label_end`` is the latest label any fitted part of the pack saw (the
    gates compare a later candidate with this pack only on rows at or after it).
    """
    if not passed:
        files = {m: (work_dir / r.model_file, r.model_sha256, r.device) for m, r in base.items()}
        return Deployment(
            files,
            evaluated.calibrator,
            evaluated.sample_expected,
            {
                "refit": False,
                "base_models_fitted_on": ["train"],
                "calibrator_fitted_on": ["calibration"],
                "label_end": label_end_of(frame, ("train", "calibration")),
                "rows": int(frame.filter(pl.col("split") == "train").height),
            },
        )
    models, sample_probs = refit_base_models(
        frame, base, work_dir, training=training, threads=threads, predict_rows=sample_x
    )
    calibrator = fit_temperature_shrink(
        np.vstack([evaluated.raw["calibration"], evaluated.raw["test"]]),
        np.concatenate([evaluated.labels["calibration"], evaluated.labels["test"]]),
    )
    stacked = evaluated.stacker.predict(sample_probs, len(sample_x))
    return Deployment(
        {m: (d.file, d.sha256, d.device) for m, d in models.items()},
        calibrator,
        calibrator.transform(stacked),
        {
            "refit": True,
            "base_models_fitted_on": ["train", "calibration", "test"],
            "calibrator_fitted_on": ["calibration", "test"],
            "label_end": label_end_of(frame, ("train", "calibration", "test")),
            "rows": int(frame.height),
            "rounds": {m: d.rounds for m, d in models.items()},
            "calibrator": calibrator.to_json(),
        },
    )


def label_end_of(frame: pl.DataFrame, splits: tuple[str, ...]) -> str:
    """The latest label end among the rows of ``splits`` (ISO 8601): what a fit on them saw last."""
    rows = frame.filter(pl.col("split").is_in(list(splits)))
    end = rows["label_end"].max()
    if end is None:
        raise DatasetError(f"no labelled rows in splits {list(splits)}")
    return str(end.isoformat())  # type: ignore[union-attr]


__all__ = [
    "DEPLOY_DIR",
    "DeployedModel",
    "Deployment",
    "Evaluated",
    "deployed_rounds",
    "deployment",
    "label_end_of",
    "refit_base_models",
]
