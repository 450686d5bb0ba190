"""Synthetic 5-minute bars for tests and demos: a pure random walk, and walks with planted, learnable signals.

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
* :func:`regime_flip_bars`: the planted cycle, its sign flipped partway through (a regime change).
* :func:`trending_bars` and :func:`mean_reverting_bars`: the walk plus a drift proportional to the log
  price's distance from its own exponential moving average (pushed on, or pulled back): an edge that the
  price features see and the clock features do not. ``period_days=7`` gives :func:`planted_signal_bars`
  a weekly cycle instead, the planted signal of daily bars.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from trainfarm.shared.timeframes import BASE_TIMEFRAME
from trainfarm_client.arrays import FloatArray

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


def daily_drift(
    dates: pl.Series, strength: float, sigma: float = DEFAULT_SIGMA, *, period_days: int = 1
) -> FloatArray:
    """Per-step log drift of the planted signal for bars opening at ``dates`` (see the module docstring).

    ``period_days`` = 1 is the daily cycle (time of day); 7 a weekly one (time of week from Monday
    00:00 UTC, which the ``dow_*`` features see), the planted signal of daily bars.
    """
    if period_days < 1:
        raise ValueError(f"period_days must be at least 1, got {period_days}")
    hours = (dates.dt.hour().cast(pl.Float64) + dates.dt.minute().cast(pl.Float64) / 60.0).to_numpy()
    if period_days > 1:
        hours = hours + 24.0 * ((dates.dt.weekday().cast(pl.Float64).to_numpy() - 1.0) % period_days)
    phase = np.sin(hours * (2.0 * math.pi / (24.0 * period_days)))
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
    period_days: int = 1,
) -> pl.DataFrame:
    """``n`` 5-minute bars of the random walk plus a drift cycle of ``strength`` (see the module docs).

    The cycle is daily by default; ``period_days=7`` makes it weekly (see :func:`daily_drift`).

    ``strength`` is the peak drift per bar in units of a bar's noise std ``sigma``; 0 gives the random walk
    of the same seed exactly. The edge is learnable from the bar's time of day alone, a causal feature.
    """
    drift = _planted_drift(n, start, sigma, price, strength, period_days)
    return _bars(n, np.random.default_rng(seed), start=start, sigma=sigma, price=price, drift=drift)


def _planted_drift(
    n: int, start: datetime, sigma: float, price: float, strength: float, period_days: int = 1
) -> FloatArray:
    """The checked arguments' per-step drift of the planted cycle (:func:`daily_drift`) for ``n`` bars."""
    _check(n, start, sigma, price)
    if not math.isfinite(strength):
        raise ValueError(f"strength must be a finite number, got {strength}")
    return daily_drift(_dates(n, start), strength, sigma, period_days=period_days)


def regime_flip_bars(
    n: int,
    seed: int,
    *,
    strength: float = 0.25,
    flip_at: float = 0.5,
    start: datetime = DEFAULT_START,
    sigma: float = DEFAULT_SIGMA,
    price: float = 100.0,
) -> pl.DataFrame:
    """:func:`planted_signal_bars` whose daily cycle changes sign after the first ``flip_at`` of the bars.

    A regime change: mornings rise and evenings fall until bar ``round(flip_at * n)``, then the reverse. A
    model trained once before the flip keeps betting on the old cycle and loses after it; one retrained on
    bars after the flip learns the new one (the replay's test of retraining). Same seed, same noise as
    the walk and the planted market.
    """
    if not 0.0 < flip_at < 1.0:
        raise ValueError(f"flip_at must be a fraction strictly between 0 and 1, got {flip_at}")
    drift = _planted_drift(n, start, sigma, price, strength)
    drift[round(flip_at * n) :] *= -1.0
    return _bars(n, np.random.default_rng(seed), start=start, sigma=sigma, price=price, drift=drift)


def mean_reverting_bars(
    n: int,
    seed: int,
    *,
    strength: float = 0.01,
    mean_span: int = 288,
    start: datetime = DEFAULT_START,
    sigma: float = DEFAULT_SIGMA,
    price: float = 100.0,
) -> pl.DataFrame:
    """``n`` 5-minute bars whose log price is pulled back toward its own moving average.

    Each bar drifts by ``-strength * (x - m)``, where ``x`` is the previous log close and ``m`` an
    exponential moving average of the log closes with span ``mean_span`` bars (one day by default), so
    the mean itself wanders with the price. The farm's ``ema_dist_*`` and ``close_pos`` features measure
    that distance. Reversion shrinks moves over several bars below ``sqrt(h)`` times a bar's, so most
    labels (scaled by the one-bar volatility) are neutral. ``strength = 0`` gives the random walk of the
    same seed exactly.
    """
    if not (0.0 <= strength < 1.0):
        raise ValueError(f"strength must lie in [0, 1), got {strength}")
    return _feedback_bars(n, seed, -strength, mean_span, start=start, sigma=sigma, price=price)


def trending_bars(
    n: int,
    seed: int,
    *,
    strength: float = 0.006,
    mean_span: int = 288,
    start: datetime = DEFAULT_START,
    sigma: float = DEFAULT_SIGMA,
    price: float = 100.0,
) -> pl.DataFrame:
    """``n`` 5-minute bars whose log price keeps moving away from its moving average (momentum).

    A different kind of edge from :func:`planted_signal_bars`' clock: nothing about the time of day
    helps; what predicts the next hours is how far, and which way, the price has run from its recent
    mean. Each bar drifts by ``+strength * (x - m)`` (see :func:`mean_reverting_bars` for ``x`` and ``m``);
    ``strength`` must stay below the mean's own pace ``2 / (mean_span + 1)`` or the distance would grow
    without bound. With the defaults a run from the mean persists for hundreds of bars.
    """
    pace = 2.0 / (mean_span + 1.0)
    if not (0.0 <= strength < pace):
        raise ValueError(
            f"strength must lie in [0, {pace:.5f}) for a mean span of {mean_span}, got {strength}"
        )
    return _feedback_bars(n, seed, strength, mean_span, start=start, sigma=sigma, price=price)


def volume_signal_bars(
    n: int,
    seed: int,
    *,
    strength: float = 0.5,
    spike_z: float = 1.28,
    hold: int = 12,
    start: datetime = DEFAULT_START,
    sigma: float = DEFAULT_SIGMA,
    price: float = 100.0,
) -> pl.DataFrame:
    """``n`` 5-minute bars where a volume spike announces a move: the next ``hold`` bars follow its bar.

    A bar whose volume noise lies above ``spike_z`` standard deviations (the top 10% by default) is a
    spike; each of the ``hold`` bars after it drifts by ``strength * sigma`` in the direction of the
    spike bar's own move. Neither the clock nor a trend tells it: only volume together with the last
    return does (the ``volume_z_*`` and ``ret_*`` features), it is symmetric in up and down, and its
    memory is one hour, so every test window holds both directions. ``strength = 0`` gives the random
    walk of the same seed exactly.
    """
    _check(n, start, sigma, price)
    if not (strength >= 0.0 and math.isfinite(strength)):
        raise ValueError(f"strength must be a non-negative number, got {strength}")
    if hold < 1:
        raise ValueError(f"hold must be at least 1 bar, got {hold}")
    # The normals _bars draws from this seed, in its order: the steps, then the volume noise.
    rng = np.random.default_rng(seed)
    moves = rng.standard_normal((n, SUBSTEPS)).sum(axis=1)
    volume_noise = rng.standard_normal(n)
    push = np.where(volume_noise > spike_z, np.sign(moves), 0.0) * strength * sigma
    # Bar i drifts by the pushes of the `hold` bars before it (a moving sum, shifted by one bar).
    drift = np.convolve(push, np.ones(hold))[:n]
    drift = np.concatenate([[0.0], drift[:-1]]) / SUBSTEPS
    return _bars(n, np.random.default_rng(seed), start=start, sigma=sigma, price=price, drift=drift)


def _feedback_bars(
    n: int,
    seed: int,
    gain: float,
    mean_span: int,
    *,
    start: datetime,
    sigma: float,
    price: float,
) -> pl.DataFrame:
    """Bars whose drift is ``gain`` times the distance of the log price from its moving average."""
    _check(n, start, sigma, price)
    if mean_span < 1:
        raise ValueError(f"mean_span must be at least 1 bar, got {mean_span}")
    # The same normals _bars will draw from this seed: the drift is computed on the path they make.
    noise = np.random.default_rng(seed).standard_normal((n, SUBSTEPS)).sum(axis=1) * (
        sigma / math.sqrt(SUBSTEPS)
    )
    alpha = 2.0 / (mean_span + 1.0)
    drift = np.zeros(n)
    x = mean = math.log(price)
    for i in range(n):
        bar_drift = gain * (x - mean)
        drift[i] = bar_drift / SUBSTEPS
        x += bar_drift + noise[i]
        mean += alpha * (x - mean)
    return _bars(n, np.random.default_rng(seed), start=start, sigma=sigma, price=price, drift=drift)
