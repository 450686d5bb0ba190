"""Circular block bootstrap of a time series' mean, for the gates' "better than chance" checks.

Rows of a test split are a time series: neighbouring labels overlap and features are persistent, so the
rows are resampled in contiguous blocks (see :func:`block_length`), never one by one.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from trainfarm_client.arrays import FloatArray


def block_length(rows: int, label_horizon: int) -> int:
    """Block length of the bootstrap: ``max(label_horizon, ceil(sqrt(rows)))``, at most ``rows``.

    A block must hold at least one whole label window (neighbouring labels share ``h - 1`` bars). Beyond
    that the features are persistent (48-bar volatility, EMAs), so the per-row improvements stay correlated
    for tens of bars; ``sqrt(n)`` blocks (15 rows of 208, 36 of 1300) keep that dependence inside blocks.
    The MSE-optimal rate for a variance estimate is ``n ** (1/3)``; the longer ``sqrt(n)`` blocks err on
    the side a gate should: a wider interval, so a lucky test window is less likely to pass.
    """
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    return max(1, min(rows, max(label_horizon, math.ceil(math.sqrt(rows)))))


def block_bootstrap_means(values: npt.ArrayLike, *, block: int, samples: int, seed: int) -> FloatArray:
    """Column means of ``samples`` circular block-bootstrap resamples of the rows of ``values``.

    ``values`` is a series (n) or several aligned series (n x k) resampled with the SAME blocks, so paired
    quantities stay paired; the result is ``samples`` (or ``samples x k``) means. Each resample
    concatenates ``ceil(n / block)`` blocks of ``block`` consecutive rows starting at uniformly drawn
    positions, wrapping around the end (circular: every row is drawn equally often, so the resampled
    means centre on the sample mean). Deterministic in ``seed``.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"values must be 1-d or 2-d, got shape {v.shape}")
    n = v.shape[0]
    if n == 0 or not np.isfinite(v).all():
        raise ValueError("block bootstrap needs at least one row and only finite values")
    if not 1 <= block <= n:
        raise ValueError(f"block must be in [1, {n}], got {block}")
    if samples < 1:
        raise ValueError(f"samples must be positive, got {samples}")
    per_sample = math.ceil(n / block)
    circular = np.concatenate([v, v[: block - 1]])
    sums = np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(circular, axis=0)])
    block_sums = sums[block : block + n] - sums[:n]  # block_sums[i] = sum of the block starting at row i
    starts = np.random.default_rng(seed).integers(0, n, size=(samples, per_sample))
    means: FloatArray = block_sums[starts].sum(axis=1) / (per_sample * block)
    return means
