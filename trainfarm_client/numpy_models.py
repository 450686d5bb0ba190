"""The scikit-learn base models as a bot runs them: JSON arrays and a numpy forward pass, no sklearn.

The farm's sklearn models (a ``StandardScaler`` then a ``LogisticRegression`` or an ``MLPClassifier``) are,
at prediction time, a scaler plus dense layers with a softmax on top.
``trainfarm.shared.zoo.sklearn_family`` writes those arrays as JSON; :func:`read_numpy_classifier` reads
them back into a :class:`NumpyClassifier` that needs only numpy and the file: no pickle anywhere, no
sklearn version coupling, nothing a bot could be made to execute. JSON floats round-trip exactly, and the
forward pass mirrors sklearn's operation order, so a loaded model agrees with sklearn's ``predict_proba``
to ~1e-15.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainfarm_client.arrays import FloatArray
from trainfarm_client.probs import N_CLASSES

FORMAT = "trainfarm-sklearn-numpy"
FORMAT_VERSION = 1
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


@dataclass(frozen=True, eq=False)
class NumpyClassifier:
    """A scaler plus dense layers and a softmax: sklearn's forward pass in plain numpy."""

    estimator: str
    mean: FloatArray
    scale: FloatArray
    weights: tuple[FloatArray, ...]  #: per layer, inputs x outputs
    biases: tuple[FloatArray, ...]
    hidden_activation: str

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """n x 3 probabilities, as sklearn's ``predict_proba`` computes them."""
        # C order whatever the caller passes (polars hands out Fortran-ordered arrays): BLAS sums in
        # another order for another layout, and the same rows must give the same bits everywhere.
        act = (np.ascontiguousarray(x, dtype=np.float64) - self.mean) / self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            act = act @ w + b
            if i != last:
                act = _activate(act, self.hidden_activation)
        # sklearn's softmax, step for step: shift by the row max, exponentiate, divide by the row sum.
        act = np.exp(act - act.max(axis=1, keepdims=True))
        proba: FloatArray = act / act.sum(axis=1, keepdims=True)
        return proba

    def to_json(self, *, sklearn_version: str | None = None) -> dict[str, object]:
        """The JSON document the farm writes; ``sklearn_version`` records which sklearn fitted it (the
        farm passes it; the client never imports sklearn to find out)."""
        doc: dict[str, object] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "estimator": self.estimator,
            "classes": list(range(N_CLASSES)),
        }
        if sklearn_version is not None:
            doc["sklearn_version"] = sklearn_version
        doc |= {
            "scaler": {"mean": self.mean.tolist(), "scale": self.scale.tolist()},
            "hidden_activation": self.hidden_activation,
            "layers": [
                {"weights": w.tolist(), "bias": b.tolist()}
                for w, b in zip(self.weights, self.biases, strict=True)
            ],
        }
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> NumpyClassifier:
        """Rebuild from :meth:`to_json`'s document, checking every shape (ValueError when wrong)."""
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} document")
        if doc.get("classes") != list(range(N_CLASSES)):
            raise ValueError(f"expected classes {list(range(N_CLASSES))}, got {doc.get('classes')}")
        if doc.get("hidden_activation") not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"unknown hidden activation {doc.get('hidden_activation')!r}")
        mean = np.asarray(doc["scaler"]["mean"], dtype=np.float64)
        scale = np.asarray(doc["scaler"]["scale"], dtype=np.float64)
        weights = tuple(np.asarray(layer["weights"], dtype=np.float64) for layer in doc["layers"])
        biases = tuple(np.asarray(layer["bias"], dtype=np.float64) for layer in doc["layers"])
        width = mean.shape[0] if mean.ndim == 1 else -1
        if scale.shape != mean.shape or not weights:
            raise ValueError("scaler mean/scale differ in shape or there are no layers")
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ValueError(f"layer {i}: weights {w.shape} / bias {b.shape} do not follow width {width}")
            width = w.shape[1]
        if width != N_CLASSES:
            raise ValueError(f"the last layer has {width} outputs, expected {N_CLASSES}")
        return cls(str(doc["estimator"]), mean, scale, weights, biases, str(doc["hidden_activation"]))


def _activate(x: FloatArray, name: str) -> FloatArray:
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-x))
    return x


def read_numpy_classifier(path: Path) -> NumpyClassifier:
    """Read a JSON model file: plain JSON and numpy, never pickle; ``ValueError`` naming the file if bad."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("the document is not a JSON object")
        return NumpyClassifier.from_json(doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a usable sklearn model file: {exc}") from exc
