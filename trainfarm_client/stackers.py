"""Applying a pack's stacker: the step from the 8 base models' probabilities to one distribution.

Pack format 2 stores the stacker the run chose (by purged out-of-fold log-loss) as JSON, and every kind
is applied here with numpy alone (the 55-feature LightGBM stacker with LightGBM), for the farm and bots
alike, so both compute the same probabilities:

* ``linear``: ``softmax(X @ coef + intercept)`` where ``X`` holds log-probabilities, clipped at
  :data:`LOG_FLOOR`. ``inputs`` says which: ``"models"`` (the named models' log-probabilities side by
  side, 3 columns each, in the listed order) or ``"pool"`` (the mean of the named models' log-probabilities,
  3 columns: a log-linear pool). The class prior is a linear stacker with no coefficients (an empty
  model list); the best single base model with temperature/vector scaling is one with one model;
  multinomial logistic regression on log-odds is one with all eight.
* ``lightgbm``: the LightGBM booster on the 55 stacked features (``meta_feature_names``), its feature
  names checked against the pack's at load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainfarm_client.arrays import FloatArray
from trainfarm_client.errors import PackError
from trainfarm_client.models import MetaBooster
from trainfarm_client.probs import N_CLASSES
from trainfarm_client.stacking import meta_feature_names, stack_features

#: Probabilities are clipped here before their log is taken (a base model's 0 would be -inf).
LOG_FLOOR = 1e-6
STACKER_KINDS = ("linear", "lightgbm")
LINEAR_INPUTS = ("models", "pool")


def softmax(z: FloatArray) -> FloatArray:
    """Row-wise softmax, stable for large logits."""
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


def log_probs(probs: FloatArray) -> FloatArray:
    """Log of clipped probabilities (the linear stackers' inputs)."""
    out: FloatArray = np.log(np.clip(probs, LOG_FLOOR, 1.0))
    return out


def linear_inputs(
    base: Mapping[str, FloatArray], models: Sequence[str], inputs: str, n_rows: int
) -> FloatArray:
    """The design matrix of a linear stacker from each base model's ``n x 3`` probabilities."""
    if inputs not in LINEAR_INPUTS:
        raise ValueError(f"unknown linear stacker inputs {inputs!r}; expected one of {LINEAR_INPUTS}")
    if not models:
        return np.zeros((n_rows, 0), dtype=np.float64)
    logs = [log_probs(base[m]) for m in models]
    if inputs == "pool":
        pooled: FloatArray = np.mean(logs, axis=0)
        return pooled
    return np.hstack(logs)


@dataclass(frozen=True)
class LinearStacker:
    """``softmax(X @ coef + intercept)`` on log-probabilities (see the module docstring)."""

    models: tuple[str, ...]
    inputs: str
    coef: FloatArray  #: ``d x 3``
    intercept: FloatArray  #: ``3``

    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray:
        x = linear_inputs(base, self.models, self.inputs, n_rows)
        return softmax(x @ self.coef + self.intercept)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "linear",
            "inputs": self.inputs,
            "models": list(self.models),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinearStacker:
        models = tuple(str(m) for m in data["models"])
        inputs = str(data["inputs"])
        coef = np.asarray(data["coef"], dtype=np.float64).reshape(-1, N_CLASSES)
        intercept = np.asarray(data["intercept"], dtype=np.float64).reshape(N_CLASSES)
        width = 0 if not models else (N_CLASSES if inputs == "pool" else N_CLASSES * len(models))
        if inputs not in LINEAR_INPUTS or coef.shape != (width, N_CLASSES):
            raise PackError(
                f"linear stacker: {coef.shape[0]} coefficient rows for inputs {inputs!r} of "
                f"{len(models)} model(s); expected {width}"
            )
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise PackError("linear stacker has non-finite coefficients")
        return cls(models, inputs, coef, intercept)


@dataclass(frozen=True)
class BoosterStacker:
    """The LightGBM stacker on the 55 stacked features of the (ordered) base models."""

    booster: MetaBooster
    models: tuple[str, ...]

    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray:
        stacked = stack_features([base[m] for m in self.models], self.models)
        return self.booster.predict_proba(stacked)


Stacker = LinearStacker | BoosterStacker


def load_stacker(pack: Path, spec: Mapping[str, Any], base_names: Sequence[str]) -> Stacker:
    """The stacker a format-2 manifest's ``stacker`` entry describes (files already verified)."""
    kind = spec.get("kind")
    if kind not in STACKER_KINDS:
        raise PackError(f"unknown stacker kind {kind!r}; this client knows {', '.join(STACKER_KINDS)}")
    if kind == "linear":
        stacker = LinearStacker.from_json(spec)
        unknown = [m for m in stacker.models if m not in base_names]
        if unknown:
            raise PackError(f"linear stacker names unknown base model(s): {', '.join(unknown)}")
        return stacker
    booster = MetaBooster.from_text((pack / str(spec["file"])).read_text())
    expected = meta_feature_names(list(base_names))
    if list(booster.booster.feature_name()) != expected:
        raise PackError("LightGBM stacker: its feature names differ from the 55-feature layout of the pack")
    return BoosterStacker(booster, tuple(base_names))
