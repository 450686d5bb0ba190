"""The overlapping book: per-bar P&L of a strategy that opens a position on every signal for ``h`` bars.

A label looks ``h`` bars ahead, so a signal at bar ``t`` is a position held from the close of ``t`` to the
close of ``t + h``. Signals on consecutive bars overlap; treating each signal's ``h``-bar return as an
independent draw (a per-signal Sharpe) counts the same price moves up to ``h`` times and inflates the
Sharpe by up to ``sqrt(h)``. The book instead gives each position ``1/h`` of the capital, so at most ``h``
positions (the whole capital) are open, and measures the P&L of the whole book bar by bar:

    position[t] = (1/h) * sum(signal[t-k] for k in 0..h-1)        signal in {-1, 0, +1}
    pnl[t]      = position[t] * bar_return[t] - fee/2 * |position[t] - position[t-1]|

``bar_return[t]`` is the simple return from the close of row ``t`` to the close of the next row (0 on the
last row, and across a gap between segments, where the book is flat by construction: no label reaches
across a segment). ``fee`` is the round-trip cost, charged as a trader pays it: half on each unit of
position change (``position[-1] = 0``), plus closing what is still open at the last row. A signal that
replaces an expiring one in the same direction changes no position and pays nothing; a constant signal
pays exactly one round trip, however long it lasts. The
per-bar series is what the Sharpe is computed on, annualised by ``sqrt(bars per year)``: the bars are the
sampling unit, not the signals, so the annualisation is correct whatever the signal rate.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from trainfarm.shared.evaluation.block_bootstrap import block_bootstrap_means, block_length
from trainfarm_client.arrays import FloatArray


def book_pnl(signal: npt.ArrayLike, bar_return: npt.ArrayLike, *, horizon: int, fee: float) -> FloatArray:
    """Per-bar P&L (fraction of capital) of the overlapping book; see the module docs for the formula.

    ``signal`` holds -1 (short), 0 (flat) or +1 (long) per row; ``bar_return`` the simple return of the
    row's bar (same length, finite). What is still open after the last row is closed there, so every entry
    pays its exit fee inside the sample.
    """
    s = np.asarray(signal, dtype=np.float64)
    r = np.asarray(bar_return, dtype=np.float64)
    if s.ndim != 1 or r.shape != s.shape:
        raise ValueError(f"signal and bar_return must be 1-d and equally long, got {s.shape} and {r.shape}")
    if not np.isin(s, (-1.0, 0.0, 1.0)).all():
        raise ValueError("signal must hold only -1, 0 and +1")
    if not np.isfinite(r).all():
        raise ValueError("bar_return contains non-finite values")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 bar, got {horizon}")
    if not 0.0 <= fee < 1.0:
        raise ValueError(f"fee must be a fraction in [0, 1), got {fee}")
    n = s.size
    if n == 0:
        return np.zeros(0)
    # position[t]: sum of the signals of the last h rows (a running sum, differenced h rows apart).
    csum = np.concatenate([[0.0], np.cumsum(s)])
    lo = np.maximum(np.arange(1, n + 1) - horizon, 0)
    position = (csum[1:] - csum[lo]) / horizon
    # Fees on what the book trades: each unit of position change, and the close of what is open at the end.
    traded = np.abs(np.diff(position, prepend=0.0))
    traded[-1] += abs(position[-1])
    pnl: FloatArray = position * r - (fee / 2.0) * traded
    return pnl


def bar_returns(close: npt.ArrayLike, segment: npt.ArrayLike) -> FloatArray:
    """Each row's simple return to the next row's close; 0 on the last row and where the segment changes.

    ``close`` and ``segment`` are the rows' closes and gap-segment ids (the snapshot's columns), in time
    order. Across a segment break (an outage longer than ``max_gap_bars``) no label reaches, so the book
    carries no return there.
    """
    c = np.asarray(close, dtype=np.float64)
    seg = np.asarray(segment)
    if c.ndim != 1 or seg.shape != c.shape:
        raise ValueError(f"close and segment must be 1-d and equally long, got {c.shape} and {seg.shape}")
    if c.size and (not np.isfinite(c).all() or (c <= 0).any()):
        raise ValueError("close must hold positive finite prices")
    out = np.zeros(c.size)
    if c.size > 1:
        same = seg[1:] == seg[:-1]
        out[:-1] = np.where(same, c[1:] / c[:-1] - 1.0, 0.0)
    return out


def annualised_sharpe(pnl: npt.ArrayLike, periods_per_year: float) -> float:
    """``mean / std * sqrt(periods_per_year)`` of a per-bar P&L (ddof=1); 0.0 when undefined."""
    p = np.asarray(pnl, dtype=np.float64)
    if p.size < 2:
        return 0.0
    std = float(p.std(ddof=1))
    return float(p.mean()) / std * math.sqrt(periods_per_year) if std > 0.0 else 0.0


def sharpe_lower_bound(
    pnl: npt.ArrayLike,
    *,
    periods_per_year: float,
    horizon: int,
    confidence: float,
    samples: int,
    seed: int,
) -> float:
    """One-sided ``confidence`` lower bound of the book's annualised Sharpe (circular block bootstrap).

    Each resample is built from blocks of :func:`trainfarm.shared.evaluation.block_bootstrap.block_length`
    rows (at least
    one label horizon), its Sharpe computed from the resampled mean and mean square. 0.0 for fewer than
    two bars, like :func:`annualised_sharpe`.
    """
    p = np.asarray(pnl, dtype=np.float64)
    n = p.size
    if n < 2:
        return 0.0
    block = block_length(n, horizon)
    moments = block_bootstrap_means(np.column_stack([p, p * p]), block=block, samples=samples, seed=seed)
    var = np.maximum(moments[:, 1] - moments[:, 0] ** 2, 0.0) * n / (n - 1)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = np.where(std > 0, moments[:, 0] / std, 0.0) * math.sqrt(periods_per_year)
    return float(np.quantile(sharpes, 1.0 - confidence))


__all__ = ["annualised_sharpe", "bar_returns", "book_pnl", "sharpe_lower_bound"]
