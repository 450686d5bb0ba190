"""The causal feature set: pure polars expressions shared by training and by live bots.

Training builds features from the store's bars; a bot builds them from the raw bars it fetched, with this
same module. Both must agree, so everything here is a function of the bars only (no fitted state, no
scalers, no global statistics).

Causality is the contract (tested as a property): the features of bar ``t`` depend only on bars ``<= t``
of the same segment, so appending bars never changes an earlier row. Windows are computed ``.over`` the
gap segments of :func:`segment_expr`, so no window reaches across a long outage; every window starts
empty at a segment start and yields null until it is full (never a partial-window value that would change
later). After its warm-up every feature is non-null for valid bars: flat prices and zero volume map to
neutral values instead of null or inf, so a live bot always gets a complete row.

Features (windows in bars; ``lr`` is the 1-bar log return of the close):

=====================  ==========================================================================
ret_1 .. ret_24        log(close_t / close_{t-k}) for k = 1, 3, 6, 12, 24
vol_12, vol_48         rolling std (ddof=1) of ``lr``
vol_ratio_12_48        vol_12 / vol_48 (1.0 when the 48-bar window is perfectly flat)
range_rel              (high - low) / close
body_rel               (close - open) / open
upper_wick_rel         (high - max(open, close)) / close
lower_wick_rel         (min(open, close) - low) / close
close_pos_24           (close - min low) / (max high - min low) over 24 bars; 0.5 for a flat range
ema_dist_12, _48       log(close / EMA(close, span)), EMA with adjust=False
rsi_14                 Wilder RSI in [0, 100] (ewm alpha=1/14, adjust=False); 50 when flat
atr_14_rel             Wilder ATR(14) / close
volume_z_48            (volume - rolling mean) / rolling std over 48 bars; 0 for constant volume
volume_log_change      log(volume_t / volume_{t-1}), clipped to +-10 (also where one side is 0)
hour_sin, hour_cos     time of day of the bar's open (UTC), fractional hours
dow_sin, dow_cos       day of week of the bar's open (UTC), fractional days, Monday 00:00 = 0
=====================  ==========================================================================

Bump :data:`FEATURE_SPEC_VERSION` whenever any value can change (a feature added, a window or a guard
changed): model packs record it, so a bot can tell that a pack expects features its own code computes.
"""

from __future__ import annotations

import math
from datetime import timedelta

import polars as pl

from trainfarm_client.errors import BarsError

FEATURE_SPEC_VERSION: str = "1"

_RETURN_LAGS = (1, 3, 6, 12, 24)
_VOL_SHORT, _VOL_LONG = 12, 48
_RANGE_WINDOW = 24
_EMA_SPANS = (12, 48)
_WILDER = 14
_VOLUME_WINDOW = 48
#: Bound on |log volume change|: e^10 is a 22000-fold jump, already far outside anything informative, and
#: the bound gives a finite value where the previous bar traded nothing.
VOLUME_CHANGE_CAP = 10.0
#: A rolling std at or below this (in log-return units) counts as a flat market. Far below one price tick
#: of any real market, so it only catches exact zeros and floating-point residue of sliding sums.
_FLAT_VOL = 1e-12
#: Relative tolerance for "constant volume": sliding-window means can be one ulp off the constant.
_FLAT_VOLUME_REL = 1e-9

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in _RETURN_LAGS),
    f"vol_{_VOL_SHORT}",
    f"vol_{_VOL_LONG}",
    f"vol_ratio_{_VOL_SHORT}_{_VOL_LONG}",
    "range_rel",
    "body_rel",
    "upper_wick_rel",
    "lower_wick_rel",
    f"close_pos_{_RANGE_WINDOW}",
    *(f"ema_dist_{s}" for s in _EMA_SPANS),
    f"rsi_{_WILDER}",
    f"atr_{_WILDER}_rel",
    f"volume_z_{_VOLUME_WINDOW}",
    "volume_log_change",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
)

#: Leading null rows of each feature in every segment (a segment shorter than this is all null).
#: ``lr`` is null on a segment's first bar, so windows over it need one bar more than their length.
FEATURE_WARMUP: dict[str, int] = {
    **{f"ret_{k}": k for k in _RETURN_LAGS},
    f"vol_{_VOL_SHORT}": _VOL_SHORT,
    f"vol_{_VOL_LONG}": _VOL_LONG,
    f"vol_ratio_{_VOL_SHORT}_{_VOL_LONG}": _VOL_LONG,
    "range_rel": 0,
    "body_rel": 0,
    "upper_wick_rel": 0,
    "lower_wick_rel": 0,
    f"close_pos_{_RANGE_WINDOW}": _RANGE_WINDOW - 1,
    **{f"ema_dist_{s}": s - 1 for s in _EMA_SPANS},
    f"rsi_{_WILDER}": _WILDER,
    f"atr_{_WILDER}_rel": _WILDER - 1,
    f"volume_z_{_VOLUME_WINDOW}": _VOLUME_WINDOW - 1,
    "volume_log_change": 1,
    "hour_sin": 0,
    "hour_cos": 0,
    "dow_sin": 0,
    "dow_cos": 0,
}

#: Bars from a segment's start before every feature is non-null.
WARMUP_BARS: int = max(FEATURE_WARMUP.values())

#: History a bot should feed :func:`add_features` so its newest row matches training to ~1e-9. Rolling
#: windows are exact once full, but EWMs (EMA 48, Wilder 14) remember their start: after 500 bars the
#: weight left on the start is (1 - 2/49)**500 ~ 1e-9 for EMA 48 and far less for the others.
MIN_HISTORY_BARS: int = 500

REQUIRED_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")

_SEG = "segment"


def segment_expr(interval: timedelta, max_gap_bars: int, date_col: str = "date") -> pl.Expr:
    """Segment id per row: increments after every gap of more than ``max_gap_bars`` missing bars.

    Real exchange data has outages; the farm never fills them. A gap longer than the timeframe's
    ``max_gap_bars`` starts a new segment instead, and no feature window or label reaches across a
    segment boundary. Causal: a row's id depends only on the rows before it, so appending bars never
    changes earlier ids.
    """
    limit = interval * (max_gap_bars + 1)
    return (pl.col(date_col).diff() > limit).fill_null(False).cum_sum().cast(pl.Int32).alias(_SEG)


# Intermediate columns get a prefix no input column plausibly has; they are dropped before returning.
_P = "__feat_"


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is 0 (a validated bar never has a zero price; this keeps inf out anyway)."""
    return pl.when(den != 0).then(num / den)


def _log_ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """log(num / den), null unless both are positive."""
    return pl.when((num > 0) & (den > 0)).then((num / den).log())


def _wilder(expr: pl.Expr) -> pl.Expr:
    """Wilder's smoothing (alpha = 1/14, recursive), restarted in every segment, null until 14 values."""
    return expr.ewm_mean(alpha=1.0 / _WILDER, adjust=False, min_samples=_WILDER).over(_SEG)


def _utc_date(bars: pl.DataFrame) -> pl.Expr:
    dtype = bars.schema["date"]
    assert isinstance(dtype, pl.Datetime)  # checked by _check_input
    if dtype.time_zone is not None and dtype.time_zone != "UTC":
        return pl.col("date").dt.convert_time_zone("UTC")
    # Naive timestamps are taken as UTC, the farm's only clock.
    return pl.col("date")


def _check_input(bars: pl.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise BarsError(f"bars lack the column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")
    dates = bars["date"]
    if not isinstance(dates.dtype, pl.Datetime):
        raise BarsError(f"must be a datetime, not {dates.dtype}", column="date")
    if dates.null_count():
        raise BarsError(f"{dates.null_count()} bars have no date", column="date")
    if bars.height > 1 and not (dates.diff().drop_nulls() > timedelta(0)).all():
        raise BarsError("bars must be sorted by date with no duplicate timestamps", column="date")


def _bar(name: str) -> pl.Expr:
    """An input price or volume column as Float64 (see :func:`_base_columns`)."""
    return pl.col(f"{_P}{name}")


def _base_columns() -> list[pl.Expr]:
    """Float64 copies of the inputs, so integer or float32 bars (a bot's JSON) give training's dtypes."""
    return [pl.col(c).cast(pl.Float64).alias(f"{_P}{c}") for c in REQUIRED_COLUMNS[1:]]


def _lagged_columns() -> list[pl.Expr]:
    """Per-bar intermediates that every window below reuses (computed once, not per feature)."""
    close = _bar("close")
    return [
        pl.when(close > 0).then(close.log()).alias(f"{_P}logc"),
        close.shift(1).over(_SEG).alias(f"{_P}prev_close"),
        _bar("volume").shift(1).over(_SEG).alias(f"{_P}prev_volume"),
    ]


def _window_features() -> list[pl.Expr]:
    logc = pl.col(f"{_P}logc")
    lr = pl.col(f"{_P}lr")
    close, high, low, volume = (_bar(c) for c in ("close", "high", "low", "volume"))
    prev_close = pl.col(f"{_P}prev_close")
    exprs: list[pl.Expr] = [(logc - logc.shift(k)).over(_SEG).alias(f"ret_{k}") for k in _RETURN_LAGS]

    vol_s = lr.rolling_std(_VOL_SHORT, min_samples=_VOL_SHORT).over(_SEG)
    vol_l = lr.rolling_std(_VOL_LONG, min_samples=_VOL_LONG).over(_SEG)
    exprs += [vol_s.alias(f"vol_{_VOL_SHORT}"), vol_l.alias(f"vol_{_VOL_LONG}")]

    top = high.rolling_max(_RANGE_WINDOW, min_samples=_RANGE_WINDOW).over(_SEG)
    bottom = low.rolling_min(_RANGE_WINDOW, min_samples=_RANGE_WINDOW).over(_SEG)
    exprs.append(
        pl.when(top > bottom)
        .then((close - bottom) / (top - bottom))
        # A flat 24-bar range: the close is both at the top and the bottom; the middle is the neutral value.
        .when(top.is_not_null() & bottom.is_not_null())
        .then(0.5)
        .alias(f"close_pos_{_RANGE_WINDOW}")
    )

    for span in _EMA_SPANS:
        ema = close.ewm_mean(span=span, adjust=False, min_samples=span).over(_SEG)
        exprs.append(_log_ratio(close, ema).alias(f"ema_dist_{span}"))

    delta = (close - prev_close).fill_nan(None)
    gain = _wilder(delta.clip(lower_bound=0.0))
    loss = _wilder((-delta).clip(lower_bound=0.0))
    exprs.append(
        pl.when(gain + loss > 0)
        .then(100.0 * gain / (gain + loss))
        .when(gain.is_not_null() & loss.is_not_null())
        .then(50.0)  # no move at all in the window: neither overbought nor oversold
        .alias(f"rsi_{_WILDER}")
    )

    # On a segment's first bar there is no previous close; the true range is then just high - low.
    true_range = pl.max_horizontal(high - low, (high - prev_close).abs(), (low - prev_close).abs())
    atr = _wilder(true_range)
    exprs.append(_ratio(atr, close).alias(f"atr_{_WILDER}_rel"))

    v_mean = volume.rolling_mean(_VOLUME_WINDOW, min_samples=_VOLUME_WINDOW).over(_SEG)
    v_std = volume.rolling_std(_VOLUME_WINDOW, min_samples=_VOLUME_WINDOW).over(_SEG)
    exprs.append(
        pl.when(v_std > _FLAT_VOLUME_REL * v_mean.abs())
        .then((volume - v_mean) / v_std)
        .when(v_std.is_not_null())
        .then(0.0)
        .alias(f"volume_z_{_VOLUME_WINDOW}")
    )
    return exprs


def _bar_features() -> list[pl.Expr]:
    close, high, low, opn = (_bar(c) for c in ("close", "high", "low", "open"))
    prev_volume = pl.col(f"{_P}prev_volume")
    volume = _bar("volume")
    cap = VOLUME_CHANGE_CAP
    volume_change = (
        pl.when(prev_volume.is_null() | volume.is_null())
        .then(None)
        .when((volume > 0) & (prev_volume > 0))
        .then((volume / prev_volume).log().clip(-cap, cap))
        .when(volume > 0)
        .then(cap)  # trading resumed after a bar with none
        .when(prev_volume > 0)
        .then(-cap)  # trading stopped
        .otherwise(0.0)  # two bars without a trade: nothing changed
    )
    return [
        _ratio(high - low, close).alias("range_rel"),
        _ratio(close - opn, opn).alias("body_rel"),
        _ratio(high - pl.max_horizontal(opn, close), close).alias("upper_wick_rel"),
        _ratio(pl.min_horizontal(opn, close) - low, close).alias("lower_wick_rel"),
        volume_change.alias("volume_log_change"),
    ]


def _time_features(date: pl.Expr) -> list[pl.Expr]:
    hours = date.dt.hour().cast(pl.Float64) + date.dt.minute().cast(pl.Float64) / 60.0
    # dt.weekday() is ISO: Monday = 1.
    days = (date.dt.weekday().cast(pl.Float64) - 1.0) + hours / 24.0
    hour_angle = hours * (2.0 * math.pi / 24.0)
    day_angle = days * (2.0 * math.pi / 7.0)
    return [
        hour_angle.sin().alias("hour_sin"),
        hour_angle.cos().alias("hour_cos"),
        day_angle.sin().alias("dow_sin"),
        day_angle.cos().alias("dow_cos"),
    ]


def add_features(bars: pl.DataFrame, *, interval: timedelta, max_gap_bars: int) -> pl.DataFrame:
    """Return ``bars`` with a ``segment`` column and every column of :data:`FEATURE_NAMES` added.

    ``bars`` holds one symbol's bars of one timeframe (date, open, high, low, close, volume; other columns
    are kept), sorted by date without duplicates; ``interval`` is the bar length and ``max_gap_bars`` the
    longest run of missing bars that does not start a new segment. Rows are neither dropped nor reordered:
    warm-up rows carry nulls (see :data:`FEATURE_WARMUP`). Raises :class:`~trainfarm_client.errors.BarsError`
    for a missing column or unsorted dates.
    """
    _check_input(bars)
    vol_s, vol_l = pl.col(f"vol_{_VOL_SHORT}"), pl.col(f"vol_{_VOL_LONG}")
    out = (
        bars.lazy()
        .with_columns(segment_expr(interval, max_gap_bars))
        .with_columns(_base_columns())
        .with_columns(_lagged_columns())
        .with_columns(pl.col(f"{_P}logc").diff().over(_SEG).alias(f"{_P}lr"))
        .with_columns(*_window_features(), *_bar_features(), *_time_features(_utc_date(bars)))
        .with_columns(
            pl.when(vol_l > _FLAT_VOL)
            .then(vol_s / vol_l)
            # A 48-bar window without a single price move contains a flat 12-bar one: unchanged, 1.0.
            .when(vol_l.is_not_null() & vol_s.is_not_null())
            .then(1.0)
            .alias(f"vol_ratio_{_VOL_SHORT}_{_VOL_LONG}")
        )
    )
    keep = [c for c in bars.columns if c not in FEATURE_NAMES and c != _SEG]
    return out.select(*keep, _SEG, *FEATURE_NAMES).collect()
