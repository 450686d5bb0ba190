"""The newest bar's features without a polars query (``trainfarm_client.newest``) are add_features' last row.

On real bars (the bundled BTC and ETH samples at 5m, 1h and 12h, windows of MIN_HISTORY_BARS bars as a bot
feeds them, also across the sample's outages): every feature bit for bit, except the four computed from
rolling standard deviations and means, which polars carries along its sliding window and which agree to
the last few bits. Anything the fast path does not take (bad or unusual bars, a warm-up) gives None, and
then the predictor runs add_features as before; a decision scores the same either way.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from tests.support.features import assert_same_row
from tests.support.services import SAMPLE_DIR
from trainfarm.shared.data.resample import resample
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.errors import BarsError
from trainfarm_client.features import FEATURE_NAMES, MIN_HISTORY_BARS, WARMUP_BARS, add_features
from trainfarm_client.newest import closed_bars, newest_feature_row
from trainfarm_client.probs import FloatArray

MAX_GAP = 3
#: Windows per market and timeframe (each runs add_features once, the slow part of this module).
WINDOWS = 60


@cache
def sample_bars(symbol: str, timeframe: Timeframe) -> pl.DataFrame:
    return resample(pl.read_parquet(SAMPLE_DIR / f"{symbol}-5m.parquet"), timeframe)


def polars_row(history: pl.DataFrame, interval: timedelta) -> FloatArray:
    """add_features' last row, as the predictor computes it without the fast path."""
    frame = add_features(history, interval=interval, max_gap_bars=MAX_GAP)
    return frame.select(FEATURE_NAMES).tail(1).to_numpy().astype(np.float64)


def window_ends(bars: pl.DataFrame, interval: timedelta) -> list[int]:
    """Ends (exclusive) of the windows to check: spread over the sample, the newest ones, and every end
    within the warm-up after each outage (newest segment shorter or just longer than the warm-up)."""
    spread = np.linspace(MIN_HISTORY_BARS, bars.height, WINDOWS // 2, dtype=int).tolist()
    newest = list(range(bars.height - WINDOWS // 2, bars.height + 1))
    gaps = bars["date"].diff() > interval * (MAX_GAP + 1)
    after_gaps = [
        end
        for start in np.flatnonzero(gaps.fill_null(False).to_numpy()).tolist()
        for end in range(start + WARMUP_BARS - 2, start + WARMUP_BARS + 3)
        if MIN_HISTORY_BARS <= end <= bars.height
    ]
    return sorted(set(spread + newest + after_gaps))


@pytest.mark.parametrize("timeframe", [Timeframe.M5, Timeframe.H1, Timeframe.H12])
@pytest.mark.parametrize("symbol", ["BTC_USDT", "ETH_USDT"])
def test_the_newest_row_is_add_features_last_row_on_real_bars(symbol: str, timeframe: Timeframe) -> None:
    bars = sample_bars(symbol, timeframe)
    interval = timeframe.duration
    fast_path = warming_up = 0
    for end in window_ends(bars, interval):
        history = bars.slice(end - MIN_HISTORY_BARS, MIN_HISTORY_BARS)
        fast = newest_feature_row(history, interval=interval, max_gap_bars=MAX_GAP)
        slow = polars_row(history, interval)
        if fast is None:  # clean real bars: only a newest segment still warming up is left to polars
            assert np.isnan(slow).any(), f"window ending at {end} left to add_features with a complete row"
            warming_up += 1
        else:
            assert_same_row(fast, slow)
            fast_path += 1
    assert fast_path >= WINDOWS // 2
    if timeframe is Timeframe.M5:  # the sample's 5m bars have outages longer than MAX_GAP bars
        assert warming_up > 0


@pytest.mark.parametrize("symbol", ["SOL_USDT"])
def test_the_newest_row_on_the_real_data_folder(shared_data_dir: Path, symbol: str) -> None:
    """A third market, and four years of it (2022-2026): the newest windows and windows spread over it."""
    bars = resample(pl.read_parquet(shared_data_dir / f"{symbol}-5m.parquet"), Timeframe.H1)
    interval = Timeframe.H1.duration
    checked = 0
    for end in window_ends(bars, interval):
        history = bars.slice(end - MIN_HISTORY_BARS, MIN_HISTORY_BARS)
        fast = newest_feature_row(history, interval=interval, max_gap_bars=MAX_GAP)
        if fast is not None:
            assert_same_row(fast, polars_row(history, interval))
            checked += 1
    assert checked >= WINDOWS // 2


def test_a_gap_inside_the_history_restarts_every_window() -> None:
    bars = sample_bars("BTC_USDT", Timeframe.H1).tail(MIN_HISTORY_BARS + 100)
    interval = Timeframe.H1.duration

    def gapped(newest_segment: int) -> pl.DataFrame:
        """The history with 10 bars missing before its last ``newest_segment`` bars."""
        return pl.concat([bars.head(bars.height - newest_segment - 10), bars.tail(newest_segment)])

    # The newest segment is complete but short: every window and EWM must start at its first bar.
    fast = newest_feature_row(gapped(WARMUP_BARS + 5), interval=interval, max_gap_bars=MAX_GAP)
    assert fast is not None
    assert_same_row(fast, polars_row(gapped(WARMUP_BARS + 5), interval))
    # The same bars without the gap give other values: the restart is what was checked.
    whole = newest_feature_row(bars.tail(WARMUP_BARS + 5 + 100), interval=interval, max_gap_bars=MAX_GAP)
    assert whole is not None and not np.array_equal(whole, fast)
    # A newest segment of WARMUP_BARS bars is still warming up: add_features' to decide (incomplete).
    short = gapped(WARMUP_BARS)
    assert newest_feature_row(short, interval=interval, max_gap_bars=MAX_GAP) is None
    assert np.isnan(polars_row(short, interval)).any()


def test_other_dtypes_and_time_units_give_add_features_values() -> None:
    bars = sample_bars("ETH_USDT", Timeframe.H1).tail(MIN_HISTORY_BARS).drop("bars")
    interval = Timeframe.H1.duration
    variants = {
        "ms UTC (the sample)": bars,
        "us UTC": bars.with_columns(pl.col("date").dt.cast_time_unit("us")),
        "ns UTC": bars.with_columns(pl.col("date").dt.cast_time_unit("ns")),
        "naive": bars.with_columns(pl.col("date").dt.replace_time_zone(None)),
        "float32 prices": bars.with_columns(pl.col("open", "high", "low", "close").cast(pl.Float32)),
        "integer volume": bars.with_columns((pl.col("volume") * 1000).round().cast(pl.Int64)),
        "extra columns first": bars.select(pl.lit("x").alias("note"), pl.all()),
    }
    for name, frame in variants.items():
        fast = newest_feature_row(frame, interval=interval, max_gap_bars=MAX_GAP)
        assert fast is not None, name
        assert_same_row(fast, polars_row(frame, interval))


def test_flat_prices_and_no_trades_take_the_same_guards() -> None:
    """A market that stops moving and trading: the neutral values of the guards, as add_features gives."""
    bars = sample_bars("BTC_USDT", Timeframe.H1).tail(MIN_HISTORY_BARS).drop("bars")
    interval = Timeframe.H1.duration
    last = bars.row(-1, named=True)
    flat = pl.DataFrame(
        {
            "date": [last["date"] + interval * (i + 1) for i in range(60)],
            **{c: [last["close"]] * 60 for c in ("open", "high", "low", "close")},
            "volume": [0.0] * 60,
        },
        schema=bars.schema,
    )
    for n in (1, 2, 13, 25, 49, 60):  # as each window fills with flat bars
        frame = pl.concat([bars, flat.head(n)])
        fast = newest_feature_row(frame, interval=interval, max_gap_bars=MAX_GAP)
        assert fast is not None
        assert_same_row(fast, polars_row(frame, interval))
    values = dict(zip(FEATURE_NAMES, fast[0].tolist(), strict=True))
    assert values["vol_ratio_12_48"] == 1.0 and values["close_pos_24"] == 0.5
    assert values["volume_z_48"] == 0.0 and values["volume_log_change"] == 0.0


def test_anything_unusual_is_left_to_add_features() -> None:
    bars = sample_bars("BTC_USDT", Timeframe.H1).tail(MIN_HISTORY_BARS)
    interval = Timeframe.H1.duration
    last = pl.int_range(pl.len()) == pl.len() - 1

    def at_last(column: str, value: float | None) -> pl.DataFrame:
        return bars.with_columns(pl.when(last).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))

    unusual = {
        "too few bars": bars.tail(WARMUP_BARS),
        "a missing column": bars.drop("volume"),
        "unsorted": pl.concat([bars.tail(1), bars.head(bars.height - 1)]),
        "a duplicate date": pl.concat([bars, bars.tail(1)]),
        "a null close": at_last("close", None),
        "a zero price": at_last("low", 0.0),
        "a NaN price": at_last("high", float("nan")),
        "an infinite volume": at_last("volume", float("inf")),
        "a negative volume": at_last("volume", -1.0),
        "another time zone": bars.with_columns(pl.col("date").dt.convert_time_zone("Europe/Paris")),
        "text prices": bars.with_columns(pl.col("open").cast(pl.String)),
    }
    for name, frame in unusual.items():
        assert newest_feature_row(frame, interval=interval, max_gap_bars=MAX_GAP) is None, name
    # add_features then says what is wrong where something is.
    with pytest.raises(BarsError, match="sorted"):
        add_features(unusual["unsorted"], interval=interval, max_gap_bars=MAX_GAP)


def test_closed_bars_are_the_polars_filter() -> None:
    bars = sample_bars("BTC_USDT", Timeframe.H1).tail(50)
    interval = Timeframe.H1.duration
    first, last = bars["date"][0], bars["date"][-1]
    nows = [
        first - interval,  # nothing closed
        first + interval,  # exactly the first bar's close
        last,  # all but the newest
        last + interval - timedelta(microseconds=1),
        last + interval,
        last + 10 * interval,
        (last + interval).replace(tzinfo=ZoneInfo("UTC")),
    ]
    unsorted = pl.concat([bars.tail(5), bars.head(bars.height - 5)])
    frames = [bars, bars.with_columns(pl.col("date").dt.cast_time_unit("ns")), unsorted]
    for frame in frames:
        for now in nows:
            expected = frame.filter(pl.col("date") + interval <= now)
            assert closed_bars(frame, interval=interval, now=now).equals(expected), (now, frame.height)
    # A naive date column cannot be compared with an aware time: the same error as the filter's.
    naive = bars.with_columns(pl.col("date").dt.replace_time_zone(None))
    with pytest.raises(pl.exceptions.SchemaError):
        naive.filter(pl.col("date") + interval <= nows[2])
    with pytest.raises(pl.exceptions.SchemaError):
        closed_bars(naive, interval=interval, now=nows[2])
    # So can't a time in another zone (polars' rule, kept: the same instant in Tokyo is refused).
    tokyo = nows[2].astimezone(ZoneInfo("Asia/Tokyo"))
    with pytest.raises(pl.exceptions.SchemaError):
        bars.filter(pl.col("date") + interval <= tokyo)
    with pytest.raises(pl.exceptions.SchemaError):
        closed_bars(bars, interval=interval, now=tokyo)


# -- the predictor's decision: the same probabilities through either path (the session's pack) ----------
