"""Class probabilities: the class order every model, pack and bot shares, and their checks.

Rows are ``n x 3`` float64 arrays with the columns of :data:`CLASSES` (down, neutral, up); labels are the
ints :data:`DOWN`, :data:`NEUTRAL`, :data:`UP`. The farm's labels, evaluation and model zoo import these
from here, so a bot and the farm cannot disagree on the order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from trainfarm_client.arrays import FloatArray

CLASSES: tuple[str, ...] = ("down", "neutral", "up")
DOWN, NEUTRAL, UP = 0, 1, 2
N_CLASSES = len(CLASSES)


def check_probs(probs: npt.ArrayLike, name: str = "probs", *, allow_nan: bool = False) -> FloatArray:
    """Return ``probs`` as an ``n x 3`` float64 array or raise ``ValueError`` saying what is wrong.

    Finite values must lie in [0, 1] (with a 1e-6 tolerance): logits or percentages passed by mistake
    would otherwise score silently as nonsense. NaN is refused unless ``allow_nan``; infinity always.
    """
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_CLASSES:
        raise ValueError(
            f"{name} must be an n x {N_CLASSES} array (down, neutral, up), got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values")
    nan = np.isnan(arr)
    if nan.any() and not allow_nan:
        raise ValueError(f"{name} contains NaN in {int(nan.any(axis=1).sum())} row(s); filter them first")
    finite = arr[~nan]
    if finite.size and (finite.min() < -1e-6 or finite.max() > 1.0 + 1e-6):
        raise ValueError(
            f"{name} must be probabilities in [0, 1]; found values in [{finite.min():g}, {finite.max():g}]"
        )
    return arr


def normalise_proba(proba: npt.ArrayLike) -> FloatArray:
    """``proba`` as float64 n x 3 with rows summing to 1 (XGBoost returns float32, sums off by ~1e-7)."""
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_CLASSES:
        raise ValueError(f"expected an n x {N_CLASSES} probability matrix, got shape {arr.shape}")
    out: FloatArray = arr / arr.sum(axis=1, keepdims=True)
    return out
