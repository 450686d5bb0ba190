"""The feature and label pipeline written with plain pandas: the yardstick of ``python -m bench features``.

The farm computes features with polars (:func:`trainfarm_client.features.add_features`) and labels with
:func:`trainfarm.shared.dataset.labels.add_labels`. To say what polars buys, the benchmark times them against
this module: the same features and labels written the way a competent pandas user would write them, with
``groupby(segment)`` and ``shift``/``diff``/``rolling``/``ewm`` per gap segment, vectorised column
arithmetic and ``Series.case_when`` for the guarded branches. It is neither deliberately slow (no
``apply`` over rows, no Python loops over bars) nor a hand-written numpy kernel.

It must compute exactly what the polars pipeline computes, guards and warm-up nulls included;
:func:`mismatches` compares the two, the benchmark refuses to time them when they differ and
``tests/bench/test_pandas_features.py`` checks them on the bundled real sample. Nothing in the farm or
the bot client imports this module, and pandas is only a dev dependency.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl

from trainfarm.shared.dataset.features import FEATURE_NAMES, VOLUME_CHANGE_CAP
from trainfarm.shared.dataset.labels import DOWN, LABEL_COLUMNS, NEUTRAL, UP

SEGMENT = "segment"
#: Values of a float column agree when ``|a - b| <= ABS_TOL + REL_TOL * |a|``: far below any signal. On
#: the real bars most columns agree to a few ulps; the widest gap, ~2e-10 in volume_z_48, comes from the two
#: libraries' different sliding-window std algorithms over volumes in the thousands.
REL_TOL = 1e-9
ABS_TOL = 1e-9

# The windows and guards of trainfarm_client.features, restated: this is an independent implementation,
# and the equality check is what ties it to the real one.
_RETURN_LAGS = (1, 3, 6, 12, 24)
_VOL_SHORT, _VOL_LONG = 12, 48
_RANGE_WINDOW = 24
_EMA_SPANS = (12, 48)
_WILDER = 14
_VOLUME_WINDOW = 48
_FLAT_VOL = 1e-12
_FLAT_VOLUME_REL = 1e-9


def segment_ids(dates: pd.Series, interval: timedelta, max_gap_bars: int) -> pd.Series:
    """Segment id per bar (Int32): a new segment after every gap of more than ``max_gap_bars`` bars."""
    return (dates.diff() > interval * (max_gap_bars + 1)).cumsum().astype("int32").rename(SEGMENT)


def _rolling(values: pd.Series, segment: pd.Series, window: int) -> pd.api.typing.RollingGroupBy:
    """A full-window rolling view of ``values`` per segment (null until ``window`` values are in it)."""
    return values.groupby(segment, sort=False).rolling(window, min_periods=window)


def _return_std(returns: pd.Series, segment: pd.Series, window: int) -> pd.Series:
    """Rolling std (ddof=1) of log returns per segment; exactly 0 over a window without a price move."""
    std = _rolling(returns, segment, window).std().droplevel(0)
    # pandas' rolling variance is an online update (add the new value, remove the old one): once a window
    # turns flat it keeps a residue of the returns that left it, 1e-10 to 1e-8 on real 5m bars
    # (pandas-dev/pandas#42064), where polars reports 0 and the volatility ratio must be 0, not 1e-6. No
    # threshold separates that residue from a real one-tick move for every market, so test flatness exactly.
    flat = _rolling(returns.abs(), segment, window).max().droplevel(0) == 0
    return std.mask(flat, 0.0)


def _ewm_mean(values: pd.Series, segment: pd.Series, **params: float | int) -> pd.Series:
    """Recursive EWM (adjust=False) of ``values`` restarted in every segment, back on the bars' index."""
    ewm = values.groupby(segment, sort=False).ewm(adjust=False, **params).mean()
    # groupby().ewm() and groupby().rolling() put the segment in front of the index; drop it again.
    return ewm.droplevel(0)


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, null where den is 0."""
    return (num / den).where(den != 0)


def add_features(bars: pd.DataFrame, *, interval: timedelta, max_gap_bars: int) -> pd.DataFrame:
    """``bars`` with ``segment`` and every column of ``FEATURE_NAMES``, as the polars pipeline adds them.

    ``bars`` holds one symbol's bars (date, open, high, low, close, volume), sorted by date, on a unique
    index. Validation of the input is the polars pipeline's job and is not repeated here.
    """
    seg = segment_ids(bars["date"], interval, max_gap_bars)
    opn, high, low, close, volume = (
        bars[c].astype("float64") for c in ("open", "high", "low", "close", "volume")
    )
    logc = np.log(close.where(close > 0))
    logc_by_seg = logc.groupby(seg, sort=False)
    lr = logc_by_seg.diff()
    prev_close = close.groupby(seg, sort=False).shift(1)
    prev_volume = volume.groupby(seg, sort=False).shift(1)
    out: dict[str, pd.Series] = {}

    for k in _RETURN_LAGS:
        out[f"ret_{k}"] = logc - logc_by_seg.shift(k)

    vol_s = _return_std(lr, seg, _VOL_SHORT)
    vol_l = _return_std(lr, seg, _VOL_LONG)
    out[f"vol_{_VOL_SHORT}"], out[f"vol_{_VOL_LONG}"] = vol_s, vol_l
    out[f"vol_ratio_{_VOL_SHORT}_{_VOL_LONG}"] = (vol_s / vol_l).case_when(
        [(vol_l.isna() | vol_s.isna(), np.nan), (vol_l <= _FLAT_VOL, 1.0)]
    )

    out["range_rel"] = _ratio(high - low, close)
    out["body_rel"] = _ratio(close - opn, opn)
    out["upper_wick_rel"] = _ratio(high - np.maximum(opn, close), close)
    out["lower_wick_rel"] = _ratio(np.minimum(opn, close) - low, close)

    top = _rolling(high, seg, _RANGE_WINDOW).max().droplevel(0)
    bottom = _rolling(low, seg, _RANGE_WINDOW).min().droplevel(0)
    out[f"close_pos_{_RANGE_WINDOW}"] = ((close - bottom) / (top - bottom)).case_when(
        [(top.isna() | bottom.isna(), np.nan), (top <= bottom, 0.5)]
    )

    for span in _EMA_SPANS:
        ema = _ewm_mean(close, seg, span=span, min_periods=span)
        out[f"ema_dist_{span}"] = np.log((close / ema).where((close > 0) & (ema > 0)))

    delta = close - prev_close
    gain = _ewm_mean(delta.clip(lower=0.0), seg, alpha=1.0 / _WILDER, min_periods=_WILDER)
    loss = _ewm_mean((-delta).clip(lower=0.0), seg, alpha=1.0 / _WILDER, min_periods=_WILDER)
    moved = gain + loss
    out[f"rsi_{_WILDER}"] = (100.0 * gain / moved).case_when(
        [(gain.isna() | loss.isna(), np.nan), (moved <= 0, 50.0)]
    )

    # DataFrame.max skips nulls: on a segment's first bar the true range is high - low.
    true_range = pd.concat([high - low, (high - prev_close).abs(), (low - prev_close).abs()], axis=1).max(
        axis=1
    )
    atr = _ewm_mean(true_range, seg, alpha=1.0 / _WILDER, min_periods=_WILDER)
    out[f"atr_{_WILDER}_rel"] = _ratio(atr, close)

    v_mean = _rolling(volume, seg, _VOLUME_WINDOW).mean().droplevel(0)
    v_std = _rolling(volume, seg, _VOLUME_WINDOW).std().droplevel(0)
    out[f"volume_z_{_VOLUME_WINDOW}"] = ((volume - v_mean) / v_std).case_when(
        [(v_std.isna(), np.nan), (v_std <= _FLAT_VOLUME_REL * v_mean.abs(), 0.0)]
    )

    cap = VOLUME_CHANGE_CAP
    traded, traded_before = volume > 0, prev_volume > 0
    both = traded & traded_before
    # The log only where both bars traded: elsewhere the cap (or 0) replaces it, and log(0) would warn.
    log_change = np.log((volume / prev_volume).where(both)).clip(-cap, cap)
    out["volume_log_change"] = pd.Series(0.0, index=bars.index).case_when(
        [
            (prev_volume.isna() | volume.isna(), np.nan),
            (both, log_change),
            (traded, cap),  # trading resumed after a bar with none
            (traded_before, -cap),  # trading stopped
        ]
    )

    date = bars["date"]
    if date.dt.tz is not None:
        date = date.dt.tz_convert("UTC")  # naive timestamps are taken as UTC, as the farm does
    hours = date.dt.hour + date.dt.minute / 60.0
    days = date.dt.day_of_week + hours / 24.0  # Monday = 0
    hour_angle = hours * (2.0 * math.pi / 24.0)
    day_angle = days * (2.0 * math.pi / 7.0)
    out["hour_sin"], out["hour_cos"] = np.sin(hour_angle), np.cos(hour_angle)
    out["dow_sin"], out["dow_cos"] = np.sin(day_angle), np.cos(day_angle)

    keep = [c for c in bars.columns if c not in FEATURE_NAMES and c != SEGMENT]
    return bars[keep].assign(**{SEGMENT: seg}, **{name: out[name] for name in FEATURE_NAMES})


def add_labels(frame: pd.DataFrame, *, horizon: int, threshold: float, vol_window: int) -> pd.DataFrame:
    """``frame`` (the output of :func:`add_features`) with the label columns of ``LABEL_COLUMNS`` added.

    ``fwd_return``, ``label_scale``, ``label_end`` and ``label``, by the rule of
    :func:`trainfarm.shared.dataset.labels.add_labels`: down/neutral/up against ``threshold * sigma *
    sqrt(horizon)``,
    null where the horizon leaves the segment or sigma is still warming up.
    """
    seg = frame[SEGMENT]
    close = frame["close"]
    logc = np.log(close.where(close > 0))
    by_seg = logc.groupby(seg, sort=False)
    fwd = by_seg.shift(-horizon) - logc
    sigma = _return_std(logc - by_seg.shift(1), seg, vol_window)
    scale = threshold * math.sqrt(horizon) * sigma
    label = pd.Series(NEUTRAL, index=frame.index, dtype="Int8").case_when(
        [(fwd.isna() | scale.isna(), pd.NA), (fwd < -scale, DOWN), (fwd > scale, UP)]
    )
    label_end = frame["date"].groupby(seg, sort=False).shift(-horizon).where(label.notna())
    # The polars pipeline's column order.
    return frame.assign(fwd_return=fwd, label_scale=scale, label_end=label_end, label=label)


def pipeline(
    bars: pd.DataFrame,
    *,
    interval: timedelta,
    max_gap_bars: int,
    horizon: int,
    threshold: float,
    vol_window: int,
) -> pd.DataFrame:
    """:func:`add_features` then :func:`add_labels`: what the benchmark times."""
    frame = add_features(bars, interval=interval, max_gap_bars=max_gap_bars)
    return add_labels(frame, horizon=horizon, threshold=threshold, vol_window=vol_window)


#: Columns compared bit for bit; every other compared column is a float compared to the tolerance.
EXACT_COLUMNS: tuple[str, ...] = (SEGMENT, "label", "label_end")
COMPARED_COLUMNS: tuple[str, ...] = (SEGMENT, *FEATURE_NAMES, *LABEL_COLUMNS)


def mismatches(expected: pl.DataFrame, found: pd.DataFrame) -> dict[str, str]:
    """How ``found`` (this module's output) differs from ``expected`` (the polars pipeline's), by column.

    Empty when they agree: same rows, nulls in the same places (a NaN counts as null only on the pandas
    side, where it is pandas' null), :data:`EXACT_COLUMNS` equal and the float columns within
    :data:`REL_TOL`/:data:`ABS_TOL`. Only the columns present in ``expected`` are compared.
    """
    if len(found) != expected.height:
        return {"*": f"{len(found)} rows, expected {expected.height}"}
    columns = [c for c in COMPARED_COLUMNS if c in expected.columns]
    missing = [c for c in columns if c not in found.columns]
    problems = dict.fromkeys(missing, "missing")
    got = pl.from_pandas(found[[c for c in columns if c not in missing]], nan_to_null=True)
    for name in got.columns:
        want, have = expected[name], got[name]
        want_null, have_null = want.is_null(), have.is_null()
        if not want_null.equals(have_null):
            diff = want_null != have_null
            rows = diff.arg_true()
            problems[name] = f"nulls differ on {len(rows)} rows (first row {rows[0]})"
            continue
        if name in EXACT_COLUMNS:
            same = (want == have).fill_null(True)
        else:
            a, b = want.cast(pl.Float64), have.cast(pl.Float64)
            same = ((a == b) | ((a - b).abs() <= ABS_TOL + REL_TOL * a.abs())).fill_null(True)
        if not same.all():
            rows = (~same).arg_true()
            first = rows[0]
            problems[name] = (
                f"values differ on {len(rows)} rows (first row {first}: {want[first]!r} vs {have[first]!r})"
            )
    return problems


def max_abs_difference(expected: pl.DataFrame, found: pd.DataFrame) -> dict[str, float]:
    """Largest absolute difference per float column (where both have a value): how close they are."""
    columns = [c for c in COMPARED_COLUMNS if c in expected.columns and c not in EXACT_COLUMNS]
    got = pl.from_pandas(found[columns], nan_to_null=True)
    diffs = expected.select(columns).select(
        (pl.col(c).cast(pl.Float64) - got[c]).abs().max().alias(c) for c in columns
    )
    return {c: float(diffs[c][0] or 0.0) for c in columns}
