"""XGBoost base models: ``multi:softprob`` boosters saved as UBJSON.

Imports XGBoost at module import: only :func:`trainfarm.shared.zoo.family` loads this module, inside the task
that trains, never in a Celery worker's parent process. Loading and predicting are the bot client's
(:mod:`trainfarm_client.models`), so the farm and bots compute the same probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb

from trainfarm.shared.zoo.spec import (
    N_CLASSES,
    EvalSet,
    FitOptions,
    ModelSpec,
    Params,
    check_eval_set,
    check_fit_inputs,
    merge_params,
)
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.models import load_xgboost, predict_xgboost

#: Not a booster parameter: taken out of the merged params and passed to ``xgb.train``.
_ROUNDS = "num_boost_round"


def build_params(spec: ModelSpec, options: FitOptions) -> Params:
    """Booster parameters plus ``num_boost_round``; ``device="cuda"`` applies ``spec.gpu_params``."""
    base: Params = {
        "objective": "multi:softprob",
        "num_class": N_CLASSES,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "device": "cpu",
        "learning_rate": options.learning_rate,
        "seed": options.seed,  # hist on CPU is deterministic for a fixed seed and data
        "nthread": options.threads,
        "verbosity": 0,
        _ROUNDS: options.rounds,
    }
    gpu = spec.gpu_params if options.device == "cuda" else {}
    return merge_params(base, spec.params, gpu, options.overrides)


def fit(
    spec: ModelSpec,
    x: FloatArray,
    y: IntArray,
    sample_weight: FloatArray,
    options: FitOptions,
    *,
    eval_set: EvalSet | None = None,
) -> xgb.Booster:
    """Train a multiclass booster; an invalid parameter raises ``xgboost.core.XGBoostError``.

    With ``eval_set``: early-stops on its weighted ``mlogloss`` and returns a booster holding only the
    rounds up to the best one.
    """
    check_fit_inputs(x, y, sample_weight)
    early = check_eval_set(x, eval_set, options.early_stopping_rounds)
    params = build_params(spec, options)
    num_boost_round = int(params.pop(_ROUNDS))
    data = xgb.DMatrix(x, label=y, weight=sample_weight, nthread=options.threads)
    if early is None:
        return xgb.train(params, data, num_boost_round=num_boost_round)
    (x_eval, y_eval, w_eval), patience = early
    params["eval_metric"] = "mlogloss"  # what the rounds are chosen on, whatever an override set
    valid = xgb.DMatrix(x_eval, label=y_eval, weight=w_eval, nthread=options.threads)
    booster = xgb.train(
        params,
        data,
        num_boost_round=num_boost_round,
        evals=[(valid, "holdout")],
        early_stopping_rounds=patience,
        verbose_eval=False,
    )
    # xgb.train returns every round it grew (best + patience); keep rounds 1..best only.
    return booster[: int(booster.best_iteration) + 1]


def best_rounds(model: xgb.Booster) -> int:
    """The rounds the booster holds (after an early-stopped fit: the best round)."""
    return int(model.num_boosted_rounds())


def predict_proba(model: xgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities (XGBoost's float32 output widened and renormalised)."""
    return predict_xgboost(model, x, threads=threads)


def contributions(model: xgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """Per-row, per-class attributions: n x 3 x (features + 1), the last column the bias; each row's sum is
    the class's raw margin (XGBoost's own ``pred_contribs``, TreeSHAP)."""
    data = xgb.DMatrix(x, nthread=threads or 0)
    raw = model.predict(data, pred_contribs=True)
    return np.asarray(raw, dtype=np.float64).reshape(len(x), N_CLASSES, -1)


def raw_margin(model: xgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 raw scores (before the softmax)."""
    data = xgb.DMatrix(x, nthread=threads or 0)
    return np.asarray(model.predict(data, output_margin=True), dtype=np.float64).reshape(len(x), N_CLASSES)


def save(model: xgb.Booster, path: Path) -> None:
    """UBJSON bytes: ``save_raw`` rather than ``save_model``, which picks the format from the suffix
    and would not write UBJSON to an atomic writer's ``.tmp`` path."""
    path.write_bytes(bytes(model.save_raw(raw_format="ubj")))


def load(path: Path) -> xgb.Booster:
    """Read a UBJSON model written by :func:`save`."""
    return load_xgboost(path)
