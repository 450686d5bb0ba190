"""Fresh deployed models: after the gates pass, refit every base model on the whole snapshot.

What is refit, on which rows, what is kept and why: docs/ml.md#fresh-deployed-models. In short, each base
model repeats its evaluated recipe (``metrics["rounds"]`` of its result when the base stage chose the
rounds by early stopping, else the configured ``base_rounds``) on every row of the snapshot; the stacker
and the calibrator and p* the gates judged are kept, so that the only change from the evaluated pipeline
is the base models' newer rows; the manifest records the shipped pack's signal rate on the newest rows
beside the gated pipeline's, with the gated rate's sampling error (:class:`SignalRates`). A refit that
fails raises: the run fails loudly rather than promoting a stale pack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl

from trainfarm.shared.config import TrainingParams
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.evaluation.trading import signal_indicator, signal_rate_error
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
    feature_names: Sequence[str],
) -> tuple[dict[str, DeployedModel], dict[str, FloatArray]]:
    """Refit every model of ``base`` on all rows of ``frame``; return them and their ``predict_rows`` probs.

    ``frame`` is the snapshot's frame (train, calibration and test rows, in time order). Each model is
    written atomically to ``<work_dir>/deploy/<model>.<ext>``, read back, and the READ-BACK model predicts
    ``predict_rows`` (the test split's rows, which end with the manifest's sample rows), exactly as a bot
    loading the pack will.
    """
    x = np.ascontiguousarray(frame.select(feature_names).to_numpy(), dtype=np.float64)
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
    p_star: float  #: the gated threshold (chosen on the calibration split)
    x_test: FloatArray  #: the test split's feature rows (the newest labelled rows; the sample rows end it)


@dataclass(frozen=True)
class SignalRates:
    """A refit pack's signal rate on the newest rows beside the gated pipeline's, at the same p*.

    Both are on the test split: ``gated_rate`` through the evaluated base models (which never saw those
    rows), ``shipped_rate`` through the written pack, its refit base models read back from their files,
    which were fitted on those rows too: in sample for them, so a refit that made the models sharper shows
    here first. ``sampling_error`` is the half-width of the gated rate's 95% interval (Student's t over
    contiguous blocks). Out of sample, on the bars after the pack's data, the same comparison (with the
    two rates' errors in quadrature) is the real test: the suite's, and the replay's over every pack.
    """

    gated_rate: float
    shipped_rate: float
    sampling_error: float
    rows: int

    @classmethod
    def of(cls, gated: FloatArray, shipped: FloatArray, p_star: float, label_horizon: int) -> SignalRates:
        """The rates of two pipelines' probabilities on the same rows at ``p_star``."""
        on_gated, on_shipped = signal_indicator(gated, p_star), signal_indicator(shipped, p_star)
        spread = signal_rate_error(on_gated, label_horizon)
        return cls(float(on_gated.mean()), float(on_shipped.mean()), spread, int(on_gated.size))

    @property
    def consistent(self) -> bool:
        """Whether the shipped rate lies within the gated rate's sampling error."""
        return abs(self.shipped_rate - self.gated_rate) <= self.sampling_error

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (an unbounded sampling error, from too few rows, is null)."""
        return {
            "rows": self.rows,
            "gated_rate": self.gated_rate,
            "shipped_rate": self.shipped_rate,
            "in_sample": True,  # the test split, which the refit models were fitted on
            "sampling_error": self.sampling_error if math.isfinite(self.sampling_error) else None,
            "consistent": self.consistent,
        }


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
    label_horizon: int,
    feature_names: Sequence[str],
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
    # The refit models predict every test row (the sample rows are its last ones) from their files.
    models, test_probs = refit_base_models(
        frame,
        base,
        work_dir,
        training=training,
        threads=threads,
        predict_rows=evaluated.x_test,
        feature_names=feature_names,
    )
    shipped = evaluated.calibrator.transform(evaluated.stacker.predict(test_probs, len(evaluated.x_test)))
    rates = SignalRates.of(
        evaluated.calibrator.transform(evaluated.raw["test"]), shipped, evaluated.p_star, label_horizon
    )
    return Deployment(
        {m: (d.file, d.sha256, d.device) for m, d in models.items()},
        evaluated.calibrator,
        shipped[-len(sample_x) :],
        {
            "refit": True,
            "base_models_fitted_on": ["train", "calibration", "test"],
            "calibrator_fitted_on": ["calibration"],
            "label_end": label_end_of(frame, ("train", "calibration", "test")),
            "rows": int(frame.height),
            "rounds": {m: d.rounds for m, d in models.items()},
            "signal_rate": rates.to_json(),
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
    "SignalRates",
    "deployed_rounds",
    "deployment",
    "label_end_of",
    "refit_base_models",
]
