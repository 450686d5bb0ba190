"""scikit-learn base models, saved without pickle.

A fitted model is a ``StandardScaler`` followed by a ``LogisticRegression`` or an ``MLPClassifier``.
Both are, at prediction time, a scaler plus dense layers with a softmax on top, so :func:`save` writes
those arrays as JSON and :func:`load` returns a :class:`~trainfarm_client.numpy_models.NumpyClassifier`
that needs only numpy and the file: no pickle anywhere, no sklearn version coupling, nothing a bot could
be made to execute. The numpy side lives in the bot client, which runs these models without sklearn;
this module adds the fit and the conversion from sklearn's fitted estimators.

``spec.params["estimator"]`` picks the estimator (``"logistic_regression"`` or ``"mlp"``); the other
params are its keyword arguments. ``hidden_layer_sizes`` is a string like ``"32,16"`` because config
overrides hold scalars only. Rounds are the MLP's epochs (``max_iter``), a fixed budget that is not chosen
by early stopping (``fit`` refuses an eval set, :func:`best_rounds` is 0); logistic regression is solved
to convergence; the boosters' learning rate is not used here.
"""

from __future__ import annotations

import json
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from trainfarm.shared.zoo.spec import (
    N_CLASSES,
    EvalSet,
    FitOptions,
    ModelSpec,
    Params,
    check_fit_inputs,
    merge_params,
    normalise_proba,
)
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.models import load_sklearn, predict_sklearn
from trainfarm_client.numpy_models import FORMAT as FORMAT  # noqa: PLC0414 - explicit re-exports
from trainfarm_client.numpy_models import FORMAT_VERSION as FORMAT_VERSION  # noqa: PLC0414
from trainfarm_client.numpy_models import NumpyClassifier as NumpyClassifier  # noqa: PLC0414

_ESTIMATORS = ("logistic_regression", "mlp")


def _limits(threads: int | None) -> AbstractContextManager[object]:
    # sklearn's solvers run on BLAS/OpenMP pools that otherwise take every core of the machine.
    return threadpool_limits(limits=threads) if threads is not None else nullcontext()


@dataclass(frozen=True)
class FittedSklearn:
    """What :func:`fit` returns: the fitted scaler and estimator."""

    scaler: StandardScaler
    estimator: LogisticRegression | MLPClassifier


def to_numpy(model: FittedSklearn | NumpyClassifier) -> NumpyClassifier:
    """The fitted arrays of ``model`` as a :class:`NumpyClassifier`."""
    if isinstance(model, NumpyClassifier):
        return model
    est = model.estimator
    if list(est.classes_) != list(range(N_CLASSES)):
        raise ValueError(f"the estimator learned classes {list(est.classes_)}, expected 0..{N_CLASSES - 1}")
    mean = np.asarray(model.scaler.mean_, dtype=np.float64)
    scale = np.asarray(model.scaler.scale_, dtype=np.float64)
    if isinstance(est, LogisticRegression):
        # One linear layer: decision_function is X @ coef_.T + intercept_, then sklearn's softmax.
        weight = np.asarray(est.coef_, dtype=np.float64).T.copy()
        bias = np.asarray(est.intercept_, dtype=np.float64)
        return NumpyClassifier("logistic_regression", mean, scale, (weight,), (bias,), "identity")
    return NumpyClassifier(
        "mlp",
        mean,
        scale,
        tuple(np.asarray(w, dtype=np.float64) for w in est.coefs_),
        tuple(np.asarray(b, dtype=np.float64) for b in est.intercepts_),
        str(est.activation),
    )


def build_params(spec: ModelSpec, options: FitOptions) -> Params:
    """Estimator keyword arguments plus ``estimator``; threads go to threadpoolctl, not in here."""
    declared = merge_params(spec.params, options.overrides)
    kind = declared.get("estimator")
    if kind not in _ESTIMATORS:
        raise ValueError(f"model {spec.name!r}: params.estimator must be one of {_ESTIMATORS}, got {kind!r}")
    base: Params = {"random_state": options.seed}
    if kind == "mlp":
        base["max_iter"] = (
            options.rounds
        )  # epochs: a fixed, seeded budget instead of a random validation split
    gpu = spec.gpu_params if options.device == "cuda" else {}
    return merge_params(base, spec.params, gpu, options.overrides)


def _estimator(params: Params) -> LogisticRegression | MLPClassifier:
    kwargs: dict[str, Any] = dict(params)
    kind = kwargs.pop("estimator")
    if kind == "logistic_regression":
        return LogisticRegression(**kwargs)
    hidden = kwargs.pop("hidden_layer_sizes", "32")
    kwargs["hidden_layer_sizes"] = tuple(int(part) for part in str(hidden).split(","))
    return MLPClassifier(**kwargs)


def fit(
    spec: ModelSpec,
    x: FloatArray,
    y: IntArray,
    sample_weight: FloatArray,
    options: FitOptions,
    *,
    eval_set: EvalSet | None = None,
) -> FittedSklearn:
    """Scale, then fit the estimator with the per-row weights (the scaler itself is unweighted).

    ``ValueError`` for an ``eval_set`` or ``early_stopping_rounds``: these models have no rounds to choose.
    """
    check_fit_inputs(x, y, sample_weight)
    if eval_set is not None or options.early_stopping_rounds is not None:
        raise ValueError(f"model {spec.name!r}: scikit-learn base models do not early-stop")
    params = build_params(spec, options)
    if isinstance(params.get("batch_size"), int):
        # Early walk-forward folds of a daily series can be smaller than one batch; sklearn would clip
        # with a warning per fold, so clip here (same result, quiet).
        params["batch_size"] = max(1, min(int(params["batch_size"]), x.shape[0]))
    estimator = _estimator(params)
    with _limits(options.threads), warnings.catch_warnings():
        # The MLP's epoch budget is deliberate; stopping there is not a failure worth a warning per fold.
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaler = StandardScaler().fit(x)
        estimator.fit(scaler.transform(x), y, sample_weight=sample_weight)
    return FittedSklearn(scaler=scaler, estimator=estimator)


def best_rounds(model: FittedSklearn | NumpyClassifier) -> int:
    """0: no boosting rounds (the MLP's epochs are ``base_rounds``, a fixed budget)."""
    return 0


def predict_proba(
    model: FittedSklearn | NumpyClassifier, x: FloatArray, *, threads: int | None = None
) -> FloatArray:
    """n x 3 probabilities, from sklearn for a fitted model or from numpy for a loaded one."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    with _limits(threads):
        if isinstance(model, NumpyClassifier):
            return predict_sklearn(model, x)
        return normalise_proba(model.estimator.predict_proba(model.scaler.transform(x)))


def save(model: FittedSklearn | NumpyClassifier, path: Path) -> None:
    """JSON of the fitted arrays (``allow_nan=False``: a diverged fit fails here, not in a bot)."""
    doc = to_numpy(model).to_json(sklearn_version=sklearn.__version__)
    path.write_text(json.dumps(doc, allow_nan=False, separators=(",", ":")) + "\n", encoding="utf-8")


def load(path: Path) -> NumpyClassifier:
    """Read a JSON model written by :func:`save`: plain JSON and numpy, never pickle."""
    return load_sklearn(path)
