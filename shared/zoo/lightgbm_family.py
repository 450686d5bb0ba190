"""LightGBM base models: multiclass boosters saved as LightGBM's own text model.

Imports LightGBM at module import: only :func:`trainfarm.shared.zoo.family` loads this module, inside the task
that trains, never in a Celery worker's parent process. Loading and predicting are the bot client's
(:mod:`trainfarm_client.models`), so the farm and bots compute the same probabilities.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np

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
from trainfarm_client.models import load_lightgbm, predict_lightgbm


def build_params(spec: ModelSpec, options: FitOptions) -> Params:
    """Parameters for ``lgb.train``; LightGBM has no GPU variant here, so ``device`` adds nothing."""
    base: Params = {
        "objective": "multiclass",
        "num_class": N_CLASSES,
        "num_iterations": options.rounds,
        "learning_rate": options.learning_rate,
        "seed": options.seed,
        "num_threads": options.threads,
        # deterministic + force_col_wise: identical seed and thread count give identical model bytes
        # (the row-/col-wise choice is otherwise timed at run time and may differ between runs).
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
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
) -> lgb.Booster:
    """Train a multiclass booster; an invalid parameter raises ``lightgbm.basic.LightGBMError``.

    With ``eval_set``: early-stops on its weighted ``multi_logloss`` and returns a booster holding only
    the rounds up to the best one (the same trees a plain fit with that many rounds grows).
    """
    check_fit_inputs(x, y, sample_weight)
    early = check_eval_set(x, eval_set, options.early_stopping_rounds)
    params = build_params(spec, options)
    data = lgb.Dataset(x, label=y, weight=sample_weight, params={"verbosity": -1}, free_raw_data=True)
    if early is None:
        return lgb.train(params, data)
    (x_eval, y_eval, w_eval), patience = early
    params["metric"] = "multi_logloss"  # what the rounds are chosen on, whatever an override set
    valid = lgb.Dataset(x_eval, label=y_eval, weight=w_eval, reference=data, params={"verbosity": -1})
    stopper = lgb.early_stopping(patience, first_metric_only=True, verbose=False)
    booster = lgb.train(params, data, valid_sets=[valid], valid_names=["holdout"], callbacks=[stopper])
    best = booster.best_iteration or booster.current_iteration()
    # A text round trip keeps exactly rounds 1..best: best_rounds and predictions then need no flag.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def best_rounds(model: lgb.Booster) -> int:
    """The rounds the booster holds (after an early-stopped fit: the best round)."""
    return int(model.current_iteration())


def predict_proba(model: lgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities; without ``threads``: :func:`trainfarm_client.models.threads_for`."""
    return predict_lightgbm(model, x, threads=threads)


def contributions(model: lgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """Per-row, per-class attributions: n x 3 x (features + 1), the last column the bias; each row's sum is
    the class's raw margin (LightGBM's own ``pred_contrib``, TreeSHAP)."""
    raw = model.predict(x, pred_contrib=True, num_threads=threads or 0)
    return np.asarray(raw, dtype=np.float64).reshape(len(x), N_CLASSES, -1)


def raw_margin(model: lgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 raw scores (before the softmax)."""
    return np.asarray(model.predict(x, raw_score=True, num_threads=threads or 0), dtype=np.float64)


def save(model: lgb.Booster, path: Path) -> None:
    """LightGBM's text model (every iteration)."""
    model.save_model(str(path), num_iteration=-1)


def load(path: Path) -> lgb.Booster:
    """Read a text model written by :func:`save`."""
    return load_lightgbm(path)
