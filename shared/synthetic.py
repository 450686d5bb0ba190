"""Synthetic 5-minute bars for tests and demos: a pure random walk, and one with a planted, learnable signal.

Both generators return what the bar store holds (``date`` as UTC milliseconds on the 5-minute grid,
``open``, ``high``, ``low``, ``close``, ``volume`` as float64) and pass
:func:`trainfarm.shared.data.validation.validate_bars`. They are deterministic per seed: the same
``(n, seed, ...)`` gives the same bars every time (numpy's ``default_rng``; numpy is pinned in
``constraints.txt``, as its normal sampler may change between versions).

How a bar is made. The log price moves in ``SUBSTEPS`` one-minute steps per 5-minute bar, each normal
with standard deviation ``sigma / sqrt(SUBSTEPS)``, so one bar's log return has std ``sigma`` (default
0.15%, about 49% a year: BTC-like). ``open`` is the previous close (a continuous market), ``close`` the
last step, ``high`` / ``low`` the extremes of the path, so wicks come from the same path that moves the
close. Volume is log-normal and grows with the bar's absolute move, as real volume does; it carries no
directional information.

* :func:`random_walk_bars`: the log price is a driftless random walk (geometric Brownian motion up to
  the Ito term, ``sigma**2 / 2`` = 1e-6 per bar, which no model and no label could notice). Nothing about
  the future is predictable: a model that scores better than the class prior on it was lucky.
* :func:`planted_signal_bars`: the same walk plus a deterministic daily drift cycle. A bar opening at UTC
  time of day ``hour`` drifts by ``strength * sigma * sin(2 pi hour / 24)`` (spread evenly over its
  steps), so prices tend to rise from 00:00 to 12:00 and fall from 12:00 to 24:00. The farm's causal
  features ``hour_sin`` / ``hour_cos`` are exactly the coordinates of that cycle, so every base model can
  learn the expected forward return of a bar from its opening time. With ``strength = s`` the expected
  6-hour move from 03:00 (the window centred on the peak drift; the mean of the sine over it is 0.90) is
  ``0.90 * 72 * s * sigma`` against a noise std of ``sqrt(72) * sigma``: ``7.6 * s`` noise standard
  deviations. The default ``s = 0.25`` moves the best 6-hour windows by 1.9 standard deviations (2.4% at
  the default sigma, against a 0.2% round-trip fee) and windows around the cycle's turns by little: that
  is what the farm needs to beat the class prior clearly, by its bootstrap bound, on 120 days of 1h bars
  with small models (at ``s = 0.2`` about one seed in eight falls short; the meta-learner and the
  calibrator, fitted on a few hundred rows, give back much of what the base models learn).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm.shared.timeframes import BASE_TIMEFRAME

FloatArray = npt.NDArray[np.float64]

#: One-minute steps per 5-minute bar: enough for wicks that look like a real path's extremes.
SUBSTEPS = 5
#: Default std of one bar's log return (0.15%: BTC/USDT's typical 5-minute move).
DEFAULT_SIGMA = 0.0015
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
_BAR = BASE_TIMEFRAME.duration


def _check(n: int, start: datetime, sigma: float, price: float) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1 bar, got {n}")
    if start.tzinfo is None or start.utcoffset() != timedelta(0):
        raise ValueError(f"start must be a UTC datetime, got {start!r}")
    since_midnight = start - start.replace(hour=0, minute=0, second=0, microsecond=0)
    if since_midnight % _BAR:
        raise ValueError(f"start must lie on the {BASE_TIMEFRAME} grid, got {start.isoformat()}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    if not (price > 0 and math.isfinite(price)):
        raise ValueError(f"price must be a positive number, got {price}")


def _dates(n: int, start: datetime) -> pl.Series:
    return pl.datetime_range(
        start, start + _BAR * (n - 1), interval=_BAR, time_unit="ms", time_zone="UTC", eager=True
    ).alias("date")


def _bars(
    n: int,
    rng: np.random.Generator,
    *,
    start: datetime,
    sigma: float,
    price: float,
    drift: FloatArray,
) -> pl.DataFrame:
    """Bars from a log-price path; ``drift[i]`` is the log drift of every one-minute step of bar ``i``."""
    step_sd = sigma / math.sqrt(SUBSTEPS)
    steps = rng.standard_normal((n, SUBSTEPS)) * step_sd + drift[:, None]
    # Cumulative log price at the end of every step; bar i starts where bar i-1 ended.
    path = math.log(price) + np.cumsum(steps.ravel()).reshape(n, SUBSTEPS)
    log_close = path[:, -1]
    log_open = np.concatenate([[math.log(price)], log_close[:-1]])
    log_high = np.maximum(path.max(axis=1), log_open)
    log_low = np.minimum(path.min(axis=1), log_open)
    bar_move = np.abs(log_close - log_open) / sigma
    # Log-normal volume that rises with the absolute move (1 + |z|), as exchange volume does.
    volume = 50.0 * np.exp(0.4 * rng.standard_normal(n)) * (1.0 + bar_move)
    return pl.DataFrame(
        {
            "date": _dates(n, start),
            "open": np.exp(log_open),
            "high": np.exp(log_high),
            "low": np.exp(log_low),
            "close": np.exp(log_close),
            "volume": volume,
        }
    )


def random_walk_bars(
    n: int,
    seed: int,
    *,
    start: datetime = DEFAULT_START,
    sigma: float = DEFAULT_SIGMA,
    price: float = 100.0,
) -> pl.DataFrame:
    """``n`` 5-minute bars of a driftless log random walk from ``start`` (UTC, on the 5-minute grid).

    Pure noise: no feature predicts the future, so the farm must never promote a model trained on it.
    """
    _check(n, start, sigma, price)
    rng = np.random.default_rng(seed)
    return _bars(n, rng, start=start, sigma=sigma, price=price, drift=np.zeros(n))


def daily_drift(dates: pl.Series, strength: float, sigma: float = DEFAULT_SIGMA) -> FloatArray:
    """Per-step log drift of the planted signal for bars opening at ``dates`` (see the module docstring)."""
    hours = (dates.dt.hour().cast(pl.Float64) + dates.dt.minute().cast(pl.Float64) / 60.0).to_numpy()
    phase = np.sin(hours * (2.0 * math.pi / 24.0))
    scaled: FloatArray = strength * sigma / SUBSTEPS * phase
    return scaled


def planted_signal_bars(
    n: int,
    seed: int,
    *,
    strength: float = 0.25,
    start: datetime = DEFAULT_START,
    sigma: float = DEFAULT_SIGMA,
    price: float = 100.0,
) -> pl.DataFrame:
    """``n`` 5-minute bars of the random walk plus a daily drift cycle of ``strength`` (see the module docs).

    ``strength`` is the peak drift per bar in units of a bar's noise std ``sigma``; 0 gives the random walk
    of the same seed exactly. The edge is learnable from the bar's time of day alone, a causal feature.
    """
    _check(n, start, sigma, price)
    if not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength}")
    rng = np.random.default_rng(seed)
    drift = daily_drift(_dates(n, start), strength, sigma)
    return _bars(n, rng, start=start, sigma=sigma, price=price, drift=drift)
