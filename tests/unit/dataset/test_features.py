"""Causal features: the prefix property on real bars, warm-up, segments, guards and reference values."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.support.services import SAMPLE_DIR
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.features import (
    FEATURE_NAMES,
    FEATURE_WARMUP,
    MIN_HISTORY_BARS,
    VOLUME_CHANGE_CAP,
    WARMUP_BARS,
    add_features,
)
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.errors import BarsError

SAMPLE = SAMPLE_DIR
FIVE_MIN = Timeframe.M5.duration
ONE_HOUR = Timeframe.H1.duration
MAX_GAP = 3
# 2023-03-20 .. 2023-03-30: 2864 bars around the 16-bar outage of 2023-03-24 14:00 (and the run of
# zero-volume, flat bars just before it).
SLICE = (datetime(2023, 3, 20, tzinfo=UTC), datetime(2023, 3, 30, tzinfo=UTC))


@cache
def btc_5m() -> pl.DataFrame:
    return pl.read_parquet(SAMPLE / "BTC_USDT-5m.parquet")


@cache
def btc_slice() -> pl.DataFrame:
    return btc_5m().filter(pl.col("date").is_between(*SLICE, closed="left"))


@cache
def btc_1h() -> pl.DataFrame:
    return resample(btc_5m(), Timeframe.H1)


@cache
def features(which: str) -> pl.DataFrame:
    bars = {"slice": btc_slice(), "5m": btc_5m(), "1h": btc_1h()}[which]
    interval = ONE_HOUR if which == "1h" else FIVE_MIN
    return add_features(bars, interval=interval, max_gap_bars=MAX_GAP)


def assert_prefix_unchanged(bars: pl.DataFrame, full: pl.DataFrame, k: int, interval: timedelta) -> None:
    prefix = add_features(bars.head(k), interval=interval, max_gap_bars=MAX_GAP)
    # Nulls must sit in the same places; values agree to 1e-12 relative (they are in fact identical).
    assert_frame_equal(prefix, full.head(k), check_exact=False, rel_tol=1e-12, abs_tol=0.0)


@settings(deadline=None, max_examples=20)
@given(k=st.integers(min_value=1, max_value=btc_slice().height))
@example(k=1)
@example(k=WARMUP_BARS + 1)
@example(k=1304)  # the last bar before the 2023-03-24 gap
@example(k=1305)  # the first bar after it
@example(k=btc_slice().height)
def test_features_are_causal_on_real_5m_bars(k: int) -> None:
    """Appending bars after bar k never changes bars <= k (the contract bots rely on)."""
    assert_prefix_unchanged(btc_slice(), features("slice"), k, FIVE_MIN)


@settings(deadline=None, max_examples=20)
@given(k=st.integers(min_value=1, max_value=btc_1h().height))
@example(k=btc_1h().height - 1)
def test_features_are_causal_on_real_1h_bars(k: int) -> None:
    assert_prefix_unchanged(btc_1h(), features("1h"), k, ONE_HOUR)


def test_the_slice_really_spans_a_gap_and_zero_volume() -> None:
    """Guards the property test's premise: without a gap and flat bars it would test less."""
    frame = features("slice")
    assert frame["segment"].n_unique() == 2
    assert (btc_slice()["volume"] == 0).sum() > 0


def test_feature_names_match_columns() -> None:
    bars = btc_slice()
    frame = features("slice")
    assert frame.columns == [*bars.columns, "segment", *FEATURE_NAMES]
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert set(FEATURE_WARMUP) == set(FEATURE_NAMES)
    assert max(FEATURE_WARMUP.values()) == WARMUP_BARS
    assert all(frame.schema[name] == pl.Float64 for name in FEATURE_NAMES)
    assert frame.height == bars.height


def test_extra_columns_are_kept_and_a_stale_segment_is_replaced() -> None:
    bars = btc_slice().head(300).with_columns(bars=pl.lit(1), segment=pl.lit(99))
    frame = add_features(bars, interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    assert frame["bars"].to_list() == [1] * 300
    assert frame["segment"].to_list() == [0] * 300


@pytest.mark.parametrize("which", ["5m", "1h"])
def test_no_inf_or_nan_anywhere(which: str) -> None:
    frame = features(which).select(FEATURE_NAMES)
    assert not frame.select(pl.any_horizontal(pl.all().is_infinite()).any()).item()
    assert not frame.select(pl.any_horizontal(pl.all().is_nan()).any()).item()


@pytest.mark.parametrize("which", ["5m", "1h"])
def test_nulls_are_exactly_the_warmup_at_each_segment_start(which: str) -> None:
    frame = features(which).with_columns(pos=pl.int_range(pl.len()).over("segment"))
    pos = frame["pos"]
    for name in FEATURE_NAMES:
        expected = (pos < FEATURE_WARMUP[name]).to_list()
        assert frame[name].is_null().to_list() == expected, name


def test_windows_restart_after_the_day_long_gap_of_2023_12_31() -> None:
    frame = features("5m")
    first_after = datetime(2024, 1, 1, tzinfo=UTC)
    at = frame["date"].search_sorted(first_after)
    assert frame["date"][at] == first_after
    assert frame["segment"][at] == frame["segment"][at - 1] + 1
    # The segment after the gap is computed as if the bars before the gap did not exist.
    after = btc_5m().filter(pl.col("date") >= first_after)
    alone = add_features(after, interval=FIVE_MIN, max_gap_bars=MAX_GAP).drop("segment")
    assert_frame_equal(frame.slice(at).drop("segment"), alone)
    assert frame.slice(at, WARMUP_BARS)["vol_48"].null_count() == WARMUP_BARS


def test_short_gaps_do_not_split_segments() -> None:
    bars = btc_slice().head(400)
    holed = bars.filter(~pl.int_range(pl.len()).is_in([100, 101, 102]))  # 3 missing bars = max_gap_bars
    frame = add_features(holed, interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    assert frame["segment"].n_unique() == 1
    assert frame["vol_48"].null_count() == FEATURE_WARMUP["vol_48"]


def _flat_bars(n: int, *, price: float = 100.0, volume: float = 5.0) -> pl.DataFrame:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "date": pl.datetime_range(start, start + FIVE_MIN * (n - 1), FIVE_MIN, eager=True),
            "open": [price] * n,
            "high": [price] * n,
            "low": [price] * n,
            "close": [price] * n,
            "volume": [volume] * n,
        }
    )


def test_flat_prices_and_constant_volume_give_neutral_values_not_inf() -> None:
    frame = add_features(_flat_bars(120), interval=FIVE_MIN, max_gap_bars=MAX_GAP).slice(WARMUP_BARS)
    row = frame.row(-1, named=True)
    assert row["vol_12"] == 0.0
    assert row["vol_ratio_12_48"] == 1.0
    assert row["close_pos_24"] == 0.5
    assert row["rsi_14"] == 50.0
    assert row["volume_z_48"] == 0.0
    assert row["volume_log_change"] == 0.0
    assert frame.select(FEATURE_NAMES).null_count().sum_horizontal().item() == 0


def test_zero_volume_is_finite_and_bounded() -> None:
    volumes = [0.0] * 60 + [3.0] + [0.0] * 5 + [2.0, 4.0] + [0.0] * 60
    bars = _flat_bars(len(volumes)).with_columns(volume=pl.Series(volumes))
    frame = add_features(bars, interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    change = frame["volume_log_change"].to_list()
    assert change[60] == VOLUME_CHANGE_CAP  # trading resumed
    assert change[61] == -VOLUME_CHANGE_CAP  # and stopped again
    assert change[67] == pytest.approx(math.log(2.0))
    assert change[1] == 0.0
    z = frame["volume_z_48"].drop_nulls()
    assert z.is_finite().all()
    assert z.tail(10).to_list() == [0.0] * 10  # 48 bars of zero volume again


def test_bars_must_be_sorted_and_complete() -> None:
    bars = btc_slice().head(50)
    with pytest.raises(BarsError, match="sorted"):
        add_features(bars.reverse(), interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    with pytest.raises(BarsError, match="sorted"):
        add_features(pl.concat([bars, bars.tail(1)]), interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    with pytest.raises(BarsError, match="volume"):
        add_features(bars.drop("volume"), interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    with pytest.raises(BarsError, match="datetime"):
        add_features(bars.with_columns(pl.col("date").dt.epoch("ms")), interval=FIVE_MIN, max_gap_bars=3)


def test_a_bot_with_limited_history_gets_the_training_values() -> None:
    """A bot computing from its last MIN_HISTORY_BARS bars sees (almost exactly) what training saw."""
    bars = btc_slice()
    last_full = features("slice").select(FEATURE_NAMES).row(-1)
    window = add_features(bars.tail(MIN_HISTORY_BARS), interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    last_bot = window.select(FEATURE_NAMES).row(-1)
    for name, a, b in zip(FEATURE_NAMES, last_full, last_bot, strict=True):
        assert b == pytest.approx(a, rel=1e-7, abs=1e-9), name


def test_time_features_use_the_utc_open_time() -> None:
    # Monday 2024-01-01 06:00 UTC, given in New York time: a quarter into the day and into a Monday.
    when = datetime(2024, 1, 1, 6, tzinfo=UTC)
    bars = _flat_bars(1).with_columns(
        date=pl.lit(when).cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone("America/New_York")
    )
    row = add_features(bars, interval=FIVE_MIN, max_gap_bars=MAX_GAP).row(0, named=True)
    assert row["hour_sin"] == pytest.approx(1.0)
    assert row["hour_cos"] == pytest.approx(0.0, abs=1e-12)
    day_angle = 2 * math.pi * 0.25 / 7
    assert row["dow_sin"] == pytest.approx(math.sin(day_angle))
    assert row["dow_cos"] == pytest.approx(math.cos(day_angle))


def _ewm(values: list[float], alpha: float) -> list[float]:
    out = [values[0]]
    for v in values[1:]:
        out.append(alpha * v + (1 - alpha) * out[-1])
    return out


def test_values_match_a_plain_python_reference() -> None:
    """Spot-check the definitions on real bars against loops written straight from the docstring."""
    bars = btc_slice().head(200)
    frame = add_features(bars, interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    o, h, lo, c, v = (bars[col].to_list() for col in ("open", "high", "low", "close", "volume"))
    lr = [math.log(c[i] / c[i - 1]) for i in range(1, len(c))]  # lr[i - 1] is the return into bar i
    gains = [max(c[i] - c[i - 1], 0.0) for i in range(1, len(c))]
    losses = [max(c[i - 1] - c[i], 0.0) for i in range(1, len(c))]
    avg_gain, avg_loss = _ewm(gains, 1 / 14), _ewm(losses, 1 / 14)
    tr = [h[0] - lo[0]] + [
        max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(c))
    ]
    atr = _ewm(tr, 1 / 14)
    ema12, ema48 = _ewm(c, 2 / 13), _ewm(c, 2 / 49)
    for t in (60, 123, 199):
        row = frame.row(t, named=True)
        expected = {
            "ret_1": math.log(c[t] / c[t - 1]),
            "ret_24": math.log(c[t] / c[t - 24]),
            "vol_12": statistics.stdev(lr[t - 12 : t]),
            "vol_48": statistics.stdev(lr[t - 48 : t]),
            "vol_ratio_12_48": statistics.stdev(lr[t - 12 : t]) / statistics.stdev(lr[t - 48 : t]),
            "range_rel": (h[t] - lo[t]) / c[t],
            "body_rel": (c[t] - o[t]) / o[t],
            "upper_wick_rel": (h[t] - max(o[t], c[t])) / c[t],
            "lower_wick_rel": (min(o[t], c[t]) - lo[t]) / c[t],
            "close_pos_24": (c[t] - min(lo[t - 23 : t + 1]))
            / (max(h[t - 23 : t + 1]) - min(lo[t - 23 : t + 1])),
            "ema_dist_12": math.log(c[t] / ema12[t]),
            "ema_dist_48": math.log(c[t] / ema48[t]),
            "rsi_14": 100 * avg_gain[t - 1] / (avg_gain[t - 1] + avg_loss[t - 1]),
            "atr_14_rel": atr[t] / c[t],
            "volume_z_48": (v[t] - statistics.fmean(v[t - 47 : t + 1])) / statistics.stdev(v[t - 47 : t + 1]),
            "volume_log_change": math.log(v[t] / v[t - 1]),
        }
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, t)


def test_the_whole_sample_gets_one_finite_row_per_bar() -> None:
    """The bundled sample's full history (105k bars) in one call, as a bot's history would be. (How fast:
    ``python -m bench features``.)"""
    bars, out = btc_5m(), features("5m")
    assert out.height == bars.height and out["date"].equals(bars["date"])
    assert set(FEATURE_NAMES) <= set(out.columns)
    assert np.isfinite(out.select(FEATURE_NAMES).drop_nulls().to_numpy()).all()


def test_column_order_does_not_matter() -> None:
    bars = btc_slice().head(300)
    shuffled = bars.select(list(reversed(bars.columns)))
    a = add_features(bars, interval=FIVE_MIN, max_gap_bars=MAX_GAP).select(FEATURE_NAMES)
    b = add_features(shuffled, interval=FIVE_MIN, max_gap_bars=MAX_GAP).select(FEATURE_NAMES)
    assert_frame_equal(a, b)
    assert np.isfinite(a.drop_nulls().to_numpy()).all()


def test_integer_and_float32_bars_give_float64_features() -> None:
    """Bots may hand over bars parsed as ints or float32; features must match training's Float64 ones."""
    ohlcv = ["open", "high", "low", "close", "volume"]
    ints = btc_slice().head(200).with_columns(pl.col(ohlcv).round(0).cast(pl.Int64))
    as_int = add_features(ints, interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    as_float = add_features(
        ints.with_columns(pl.col(ohlcv).cast(pl.Float64)), interval=FIVE_MIN, max_gap_bars=3
    )
    assert_frame_equal(as_int.select(FEATURE_NAMES), as_float.select(FEATURE_NAMES))
    assert as_int["close"].dtype == pl.Int64  # the input columns come back untouched
    narrow = add_features(
        ints.with_columns(pl.col(ohlcv).cast(pl.Float32)), interval=FIVE_MIN, max_gap_bars=3
    )
    assert_frame_equal(narrow.select(FEATURE_NAMES), as_float.select(FEATURE_NAMES))


@pytest.mark.slow  # features of four years of every real file
@pytest.mark.shared_data
@pytest.mark.parametrize("symbol", ["BTC_USDT", "ETH_USDT", "SOL_USDT"])
def test_full_real_history_is_causal_finite_and_warm_only_at_segment_starts(
    shared_data_dir: Path, symbol: str
) -> None:
    """Four years of real bars, including SOL's month-long outage of December 2024."""
    bars = pl.read_parquet(shared_data_dir / f"{symbol}-5m.parquet")
    full = add_features(bars, interval=FIVE_MIN, max_gap_bars=MAX_GAP)
    values = full.select(FEATURE_NAMES)
    assert not values.select(pl.any_horizontal(pl.all().is_infinite() | pl.all().is_nan()).any()).item()
    pos = full.select(pl.int_range(pl.len()).over("segment"))[:, 0]
    for name in FEATURE_NAMES:
        assert (full[name].is_null() == (pos < FEATURE_WARMUP[name])).all(), name
    starts = full.with_row_index().filter(pl.col("segment").diff() == 1)["index"].to_list()
    for k in {1000, bars.height // 2, *starts, *(s + 10 for s in starts)}:
        assert_prefix_unchanged(bars, full, k, FIVE_MIN)
