"""Labels: the forward return over the horizon against a volatility-scaled threshold.

For bar ``t`` with horizon ``h`` (bars) the forward return is ``log(close[t+h] / close[t])``. It is compared
with ``scale = threshold * sigma_t * sqrt(h)`` where ``sigma_t`` is the rolling std of 1-bar log returns
over the ``vol_window`` bars up to and including ``t`` (known when the bar closes), so the same threshold
means "a move of half a typical h-bar move" in calm and in wild markets alike:

    label = 0 ("down") if fwd_return < -scale, 2 ("up") if fwd_return > scale, else 1 ("neutral").

Labels never reach across a segment boundary (see :mod:`trainfarm.shared.data.gaps`): a bar whose ``t+h`` lies
after the end of its segment, or of the data, gets a null label and is not trained on. ``label_end`` (the date
of bar ``t+h``) is what the splits purge on. Imbalance is handled by weights, never by duplicating rows.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm.shared.errors import DatasetError
from trainfarm_client import probs as _probs

# The class order is part of every pack and of what bots read, so it is defined once, in the bot client.
CLASSES: tuple[str, ...] = _probs.CLASSES
DOWN, NEUTRAL, UP = _probs.DOWN, _probs.NEUTRAL, _probs.UP
LABEL_COLUMNS: tuple[str, ...] = ("fwd_return", "label_scale", "label", "label_end")

_SEG = "segment"

LabelArray = pl.Series | npt.NDArray[np.integer]


def add_labels(frame: pl.DataFrame, *, horizon: int, threshold: float, vol_window: int) -> pl.DataFrame:
    """Return ``frame`` with ``fwd_return``, ``label_scale``, ``label`` (Int8) and ``label_end`` added.

    ``frame`` holds one series sorted by date with ``date``, ``close`` and ``segment`` columns (the output
    of :func:`trainfarm.shared.dataset.features.add_features`). ``label_scale`` is null during the volatility
    warm-up
    of each segment; ``fwd_return``, ``label`` and ``label_end`` are null for the last ``horizon`` bars of
    each segment. The label uses bars up to ``t + horizon``, so it is, by design, the one non-causal column.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    if vol_window < 2:
        raise ValueError(f"vol_window must be at least 2 bars (a std needs two returns), got {vol_window}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    missing = [c for c in ("date", "close", _SEG) if c not in frame.columns]
    if missing:
        # Labelling without segments would silently look across outages; refuse instead of guessing.
        raise ValueError(
            f"frame lacks {', '.join(missing)}; compute features first (add_features adds 'segment')"
        )
    close = pl.col("close")
    logc = pl.when(close > 0).then(close.log())
    fwd = (logc.shift(-horizon) - logc).over(_SEG)
    sigma = (logc - logc.shift(1)).rolling_std(vol_window, min_samples=vol_window).over(_SEG)
    scale = threshold * math.sqrt(horizon) * sigma
    out = frame.lazy().with_columns(
        fwd.alias("fwd_return"),
        scale.alias("label_scale"),
        pl.col("date").shift(-horizon).over(_SEG).alias("label_end"),
    )
    fwd_c, scale_c = pl.col("fwd_return"), pl.col("label_scale")
    label = (
        pl.when(fwd_c.is_null() | scale_c.is_null())
        .then(None)
        .when(fwd_c < -scale_c)
        .then(DOWN)
        .when(fwd_c > scale_c)
        .then(UP)
        .otherwise(NEUTRAL)
        .cast(pl.Int8)
    )
    return (
        out.with_columns(label.alias("label"))
        # A row without a label has no label end either: nothing to purge for it.
        .with_columns(pl.when(pl.col("label").is_not_null()).then(pl.col("label_end")).alias("label_end"))
        .collect()
    )


def _as_int_array(labels: LabelArray) -> npt.NDArray[np.int64]:
    if isinstance(labels, pl.Series):
        if labels.null_count():
            raise ValueError(f"{labels.null_count()} labels are null; drop unlabelled rows first")
        arr = labels.to_numpy()
    else:
        arr = np.asarray(labels)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers 0..{len(CLASSES) - 1}, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr >= len(CLASSES))
    if bad.any():
        raise ValueError(f"labels must be 0..{len(CLASSES) - 1}; found {sorted(set(arr[bad].tolist()))}")
    return arr


def class_weights(labels: LabelArray) -> dict[int, float]:
    """Balanced class weights ``n / (3 * count[c])`` from ``labels`` (pass the train labels only).

    Each class then carries the same total weight, ``n / 3``. Raises :class:`DatasetError` naming the
    class when one is absent: a model that never saw "up" cannot learn it, and retraining on more data is
    the fix, not a weight.
    """
    arr = _as_int_array(labels)
    counts = np.bincount(arr, minlength=len(CLASSES))
    for cls, count in enumerate(counts):
        if count == 0:
            raise DatasetError(
                f"class '{CLASSES[cls]}' ({cls}) is absent from the {arr.size} training labels; "
                "the data is too short or the label threshold too extreme to train on"
            )
    n = float(arr.size)
    return {cls: n / (len(CLASSES) * float(count)) for cls, count in enumerate(counts)}


def sample_weights(labels: LabelArray, weights: dict[int, float]) -> npt.NDArray[np.float64]:
    """Per-row weights: ``weights[label]`` for every row of ``labels`` (float64, same length)."""
    arr = _as_int_array(labels)
    missing = [c for c in range(len(CLASSES)) if c not in weights and (arr == c).any()]
    if missing:
        raise ValueError(f"no weight for class(es) {', '.join(CLASSES[c] for c in missing)}")
    lookup = np.array([weights.get(c, 0.0) for c in range(len(CLASSES))], dtype=np.float64)
    return lookup[arr]
