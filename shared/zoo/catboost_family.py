"""CatBoost base models: ``MultiClass`` classifiers saved as CatBoost's own ``cbm`` file.

Imports CatBoost at module import: only :func:`trainfarm.shared.zoo.family` loads this module, inside the task
that trains, never in a Celery worker's parent process. Loading and predicting are the bot client's
(:mod:`trainfarm_client.models`), so the farm and bots compute the same probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from catboost import CatBoostClassifier, Pool

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
from trainfarm_client.models import load_catboost, predict_catboost


def build_params(spec: ModelSpec, options: FitOptions) -> Params:
    """``CatBoostClassifier`` keyword arguments; ``device="cuda"`` applies ``spec.gpu_params``."""
    base: Params = {
        "loss_function": "MultiClass",
        "iterations": options.rounds,
        "learning_rate": options.learning_rate,
        "random_seed": options.seed,
        "thread_count": options.threads,
        "task_type": "CPU",
        # No catboost_info/ folder in the worker's cwd: several tasks share it and nobody reads it.
        "allow_writing_files": False,
        "verbose": False,
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
) -> CatBoostClassifier:
    """Train a multiclass model; an invalid parameter raises ``catboost.CatBoostError``.

    With ``eval_set``: early-stops on its weighted ``MultiClass`` loss and returns a model holding only the
    rounds up to the best one (``use_best_model``).
    """
    check_fit_inputs(x, y, sample_weight)
    early = check_eval_set(x, eval_set, options.early_stopping_rounds)
    params = build_params(spec, options)
    if early is not None:
        params["eval_metric"] = "MultiClass"  # what the rounds are chosen on, whatever an override set
    model = CatBoostClassifier(**params)
    if early is None:
        model.fit(x, y, sample_weight=sample_weight)
        return model
    (x_eval, y_eval, w_eval), patience = early
    model.fit(
        x,
        y,
        sample_weight=sample_weight,
        eval_set=Pool(x_eval, label=y_eval, weight=w_eval),
        early_stopping_rounds=patience,
        use_best_model=True,
    )
    return model


def best_rounds(model: CatBoostClassifier) -> int:
    """The rounds the model holds (after an early-stopped fit: the best round)."""
    return int(model.tree_count_)


def predict_proba(model: CatBoostClassifier, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities; without ``threads``: :func:`trainfarm_client.models.threads_for`."""
    return predict_catboost(model, x, threads=threads)


def contributions(model: CatBoostClassifier, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """Per-row, per-class attributions: n x 3 x (features + 1), the last column the expected value; each
    row's sum is the class's raw margin (CatBoost's own ``ShapValues``)."""
    raw = model.get_feature_importance(Pool(x), type="ShapValues", thread_count=threads or -1)
    return np.asarray(raw, dtype=np.float64).reshape(len(x), N_CLASSES, -1)


def raw_margin(model: CatBoostClassifier, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 raw scores (``RawFormulaVal``, before the softmax)."""
    raw = model.predict(x, prediction_type="RawFormulaVal", thread_count=threads or -1)
    return np.asarray(raw, dtype=np.float64).reshape(len(x), N_CLASSES)


#: Metadata CatBoost stamps on every fit; dropped so that equal fits give byte-identical files (and equal
#: sha256 in a redelivered task's result). When and by which run a model was trained is recorded by the farm.
_VOLATILE_METADATA = ("train_finish_time", "model_guid")


def save(model: CatBoostClassifier, path: Path) -> None:
    """CatBoost's binary ``cbm`` format, without the per-fit timestamp and random guid."""
    metadata = model.get_metadata()
    for key in _VOLATILE_METADATA:
        if key in metadata:
            del metadata[key]
    model.save_model(str(path), format="cbm")


def load(path: Path) -> CatBoostClassifier:
    """Read a ``cbm`` model written by :func:`save`."""
    return load_catboost(path)
