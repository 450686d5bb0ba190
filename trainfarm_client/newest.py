"""The features of the newest bar alone: :func:`~trainfarm_client.features.add_features`'s last row, computed
without a polars query, for a bot's live decision.

A bot scores one bar per interval from its last :data:`~trainfarm_client.features.MIN_HISTORY_BARS` bars.
:func:`~trainfarm_client.features.add_features` computes every row of that history with some twenty polars
window expressions, and a query's fixed cost (planning it, a group-by for each ``.over``, the thread pool)
is milliseconds however few the rows. The newest row alone needs a few sums over its last 48 bars and five
exponential recursions over its segment, which this module computes with numpy and plain floats in a
fraction of that.

The formulas are add_features' own, operation for operation (its module docstring defines them), so the
values are the same bit for bit, with one exception: polars computes the rolling standard deviations and
the 48-bar volume mean with running sums updated as the window slides, which carry rounding from every
earlier window; here they are summed over the window itself. The four features built on them
(``vol_12``, ``vol_48``, their ratio, ``volume_z_48``) agree to a few units in the last place (about
1e-15 relative; ``tests/unit/client/test_newest.py`` checks every feature on real bars), far below what a
model can tell apart, and below what the bot's 500-bar history already differs from training by. The EWMs
update ``m += alpha * (x - m)``, the form that rounds as polars does; a division by a literal is a
multiplication by its reciprocal, as polars' optimiser rewrites it.

Only bars that add_features is sure to give a complete newest row take this path: sorted dates (UTC or
naive), finite positive prices, finite non-negative volumes, no nulls, and a newest segment past the
features' warm-up. For anything else :func:`newest_feature_row` returns None and the caller runs
add_features, which also names what is wrong with bad bars.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from trainfarm_client.arrays import FloatArray

# add_features' own windows and guards (one definition: a window changed there changes both paths).
from trainfarm_client.features import (
    _EMA_SPANS,
    _FLAT_VOL,
    _FLAT_VOLUME_REL,
    _RANGE_WINDOW,
    _RETURN_LAGS,
    _VOL_LONG,
    _VOL_SHORT,
    _VOLUME_WINDOW,
    _WILDER,
    FEATURE_NAMES,
    REQUIRED_COLUMNS,
    VOLUME_CHANGE_CAP,
    WARMUP_BARS,
)

_WILDER_ALPHA = 1.0 / _WILDER  # as add_features' _wilder passes it to ewm_mean
_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def newest_feature_row(bars: pl.DataFrame, *, interval: timedelta, max_gap_bars: int) -> FloatArray | None:
    """The features of the last row of ``bars``, ``1 x len(FEATURE_NAMES)`` in that order, as
    :func:`~trainfarm_client.features.add_features` gives them (same arguments); None when this fast path
    does not apply (see the module docstring), and then add_features must decide."""
    if bars.height <= WARMUP_BARS or any(c not in bars.columns for c in REQUIRED_COLUMNS):
        return None
    start = _newest_segment_start(bars, interval * (max_gap_bars + 1))
    if start is None or bars.height - start <= WARMUP_BARS:  # no clean dates, or warming up after a gap
        return None
    columns = []
    for name in REQUIRED_COLUMNS[1:]:
        column = bars[name]
        if column.null_count() or not (column.dtype.is_float() or column.dtype.is_integer()):
            return None
        # add_features casts to Float64 as numpy does (integers rounded to nearest, float32 exactly).
        columns.append(column.to_numpy()[start:].astype(np.float64, copy=False))
    block = np.stack(columns)
    if not np.isfinite(block).all() or block[:4].min() <= 0.0 or block[4].min() < 0.0:
        return None
    values = _segment_features(*columns) | _time_features(bars["date"], bars.schema["date"])
    return np.array([[values[name] for name in FEATURE_NAMES]], dtype=np.float64)


def closed_bars(bars: pl.DataFrame, *, interval: timedelta, now: datetime) -> pl.DataFrame:
    """The bars closed by ``now``: ``bars.filter(pl.col("date") + interval <= now)``, the same rows.

    UTC dates without nulls (what the farm's store and its bars give) and a UTC ``now`` are compared in
    numpy and, sorted as they must be, come back as a slice of ``bars``; anything else goes through the
    polars expression, which also raises what it raises (a naive date column, or ``now`` in another
    zone, cannot be compared).
    """
    dates = bars["date"]
    dtype = dates.dtype
    utc = isinstance(dtype, pl.Datetime) and dtype.time_zone == "UTC"
    # Polars refuses some aware times (another zone's) and converts others: only UTC's is sure to compare
    # as the same instant there.
    utc_now = now.tzinfo == UTC or getattr(now.tzinfo, "key", None) == "UTC"
    if not utc or not utc_now or dates.null_count():
        return bars.filter(pl.col("date") + interval <= now)
    assert isinstance(dtype, pl.Datetime)
    stamps = dates.to_numpy().view(np.int64) * _NS_PER_UNIT[dtype.time_unit]
    cutoff = (now - interval - _EPOCH) // timedelta(microseconds=1) * 1_000
    closed = stamps <= cutoff
    count = int(closed.sum())
    if closed[:count].all():  # a prefix: the first count rows
        return bars.head(count)
    return bars.filter(pl.Series(closed))


def _newest_segment_start(bars: pl.DataFrame, limit: timedelta) -> int | None:
    """Index of the first bar of the newest gap segment (:func:`~trainfarm_client.features.segment_expr`),
    or None unless the dates are non-null, strictly increasing, and naive or UTC."""
    dates = bars["date"]
    dtype = dates.dtype
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone not in (None, "UTC") or dates.null_count():
        return None
    steps = np.diff(dates.to_numpy().view(np.int64))
    if steps.size and steps.min() <= 0:
        return None
    # Compared in nanoseconds: exact for every time unit (limit is a whole number of microseconds).
    limit_ns = limit // timedelta(microseconds=1) * 1_000
    breaks = np.flatnonzero(steps * _NS_PER_UNIT[dtype.time_unit] > limit_ns)
    return int(breaks[-1]) + 1 if breaks.size else 0


def _segment_features(
    opn: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray
) -> dict[str, float]:
    """Every price and volume feature of the last bar of one segment (its bars oldest first)."""
    o, h, lo, c, v = float(opn[-1]), float(high[-1]), float(low[-1]), float(close[-1]), float(volume[-1])
    out: dict[str, float] = {}
    # The logs of plain floats: math.log is the C library's log, as polars' is; numpy's own vectorised
    # log may differ from it in the last bit.
    logc = [math.log(x) for x in close[-(_VOL_LONG + 1) :].tolist()]
    for k in _RETURN_LAGS:
        out[f"ret_{k}"] = logc[-1] - logc[-1 - k]
    lr = np.diff(np.array(logc))
    vol_s, vol_l = _std(lr[-_VOL_SHORT:]), _std(lr)
    out[f"vol_{_VOL_SHORT}"], out[f"vol_{_VOL_LONG}"] = vol_s, vol_l
    out[f"vol_ratio_{_VOL_SHORT}_{_VOL_LONG}"] = vol_s / vol_l if vol_l > _FLAT_VOL else 1.0

    out["range_rel"] = (h - lo) / c
    out["body_rel"] = (c - o) / o
    out["upper_wick_rel"] = (h - max(o, c)) / c
    out["lower_wick_rel"] = (min(o, c) - lo) / c
    top, bottom = float(high[-_RANGE_WINDOW:].max()), float(low[-_RANGE_WINDOW:].min())
    out[f"close_pos_{_RANGE_WINDOW}"] = (c - bottom) / (top - bottom) if top > bottom else 0.5

    delta = close[1:] - close[:-1]  # from the segment's second bar: the first has no previous close
    true_range = high - low  # the first bar's: no previous close
    prev = close[:-1]
    true_range[1:] = np.maximum(true_range[1:], np.maximum(np.abs(high[1:] - prev), np.abs(low[1:] - prev)))
    ema_short, ema_long, gain, loss, atr = _recursions(
        close.tolist(), np.maximum(delta, 0.0).tolist(), np.maximum(-delta, 0.0).tolist(), true_range.tolist()
    )
    for span, ema in zip(_EMA_SPANS, (ema_short, ema_long), strict=True):
        out[f"ema_dist_{span}"] = math.log(c / ema)
    out[f"rsi_{_WILDER}"] = 100.0 * gain / (gain + loss) if gain + loss > 0 else 50.0
    out[f"atr_{_WILDER}_rel"] = atr / c

    window = volume[-_VOLUME_WINDOW:]
    v_mean, v_std = float(window.mean()), _std(window)
    out[f"volume_z_{_VOLUME_WINDOW}"] = (
        (v - v_mean) / v_std if v_std > _FLAT_VOLUME_REL * abs(v_mean) else 0.0
    )
    prev_v = float(volume[-2])
    if v > 0 and prev_v > 0:
        change = min(max(math.log(v / prev_v), -VOLUME_CHANGE_CAP), VOLUME_CHANGE_CAP)
    elif v > 0:
        change = VOLUME_CHANGE_CAP
    elif prev_v > 0:
        change = -VOLUME_CHANGE_CAP
    else:
        change = 0.0
    out["volume_log_change"] = change
    return out


def _time_features(dates: pl.Series, dtype: pl.DataType) -> dict[str, float]:
    """Hour of day and day of week of the last date (naive dates are UTC, as in add_features)."""
    assert isinstance(dtype, pl.Datetime)  # checked by _newest_segment_start
    stamp = int(dates.tail(1).to_numpy().view(np.int64)[0]) * _NS_PER_UNIT[dtype.time_unit] // 1_000
    when = _EPOCH + timedelta(microseconds=stamp)
    # Polars' optimiser turns a division by a literal into a multiplication by its reciprocal (they differ
    # in the last bit for some values), so these multiply too.
    hours = float(when.hour) + float(when.minute) * (1.0 / 60.0)
    days = float(when.weekday()) + hours * (1.0 / 24.0)  # Monday = 0, as add_features' ISO weekday - 1
    hour_angle = hours * (2.0 * math.pi / 24.0)
    day_angle = days * (2.0 * math.pi / 7.0)
    return {
        "hour_sin": math.sin(hour_angle),
        "hour_cos": math.cos(hour_angle),
        "dow_sin": math.sin(day_angle),
        "dow_cos": math.cos(day_angle),
    }


def _std(values: FloatArray) -> float:
    """Sample standard deviation (ddof=1) of a full window, two-pass."""
    deviations = values - values.mean()
    return math.sqrt(float(deviations @ deviations) / (values.size - 1))


def _recursions(
    close: list[float], gain: list[float], loss: list[float], true_range: list[float]
) -> tuple[float, float, float, float, float]:
    """The last values of the five EWMs (``ewm_mean(adjust=False)``, polars' recursion
    ``m += alpha * (x - m)`` from the first value on): the two EMAs of the close, Wilder's smoothing of the
    gains and the losses (which start one bar later) and of the true range.

    One pass for all five: the time is the Python loop's, so one loop over the segment, not five.
    """
    short, long = 2.0 / (_EMA_SPANS[0] + 1.0), 2.0 / (_EMA_SPANS[1] + 1.0)
    wilder = _WILDER_ALPHA
    ema_s = ema_l = close[0]
    atr = true_range[0]
    ema_s += short * (close[1] - ema_s)
    ema_l += long * (close[1] - ema_l)
    atr += wilder * (true_range[1] - atr)
    up, down = gain[0], loss[0]
    for c, g, lo, tr in zip(close[2:], gain[1:], loss[1:], true_range[2:], strict=True):
        ema_s += short * (c - ema_s)
        ema_l += long * (c - ema_l)
        up += wilder * (g - up)
        down += wilder * (lo - down)
        atr += wilder * (tr - atr)
    return ema_s, ema_l, up, down, atr
