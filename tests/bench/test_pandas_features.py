"""bench.pandas_features: the plain-pandas yardstick computes what the polars pipeline computes.

`python -m bench features` refuses to time the two when they differ; these tests keep the reference from
drifting silently between benchmark runs (a feature added or a guard changed in the bot client), on the
bundled real sample with its outages, at 5m and at 1h with each timeframe's default label parameters.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import polars as pl
import pytest

from bench import pandas_features
from trainfarm.cli.demo.sample_data import SAMPLE_DIR
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.features import FEATURE_NAMES, FEATURE_WARMUP, add_features
from trainfarm.shared.dataset.labels import DOWN, LABEL_COLUMNS, NEUTRAL, UP, add_labels
from trainfarm.shared.timeframes import Timeframe


def both_pipelines(bars: pl.DataFrame, timeframe: Timeframe) -> tuple[pl.DataFrame, pd.DataFrame]:
    """The polars pipeline's and the pandas reference's output for ``bars`` with the default parameters."""
    params = FarmConfig().params(timeframe)
    interval: timedelta = timeframe.duration
    horizon, threshold, vol_window = params.label_horizon, params.label_threshold, params.vol_window
    features = add_features(bars, interval=interval, max_gap_bars=params.max_gap_bars)
    expected = add_labels(features, horizon=horizon, threshold=threshold, vol_window=vol_window)
    found = pandas_features.pipeline(
        bars.to_pandas(),
        interval=interval,
        max_gap_bars=params.max_gap_bars,
        horizon=horizon,
        threshold=threshold,
        vol_window=vol_window,
    )
    return expected, found


@pytest.fixture(scope="module")
def btc_5m() -> tuple[pl.DataFrame, pd.DataFrame]:
    return both_pipelines(read_bars(SAMPLE_DIR / "BTC_USDT-5m.parquet"), Timeframe.M5)


@pytest.mark.parametrize(
    ("symbol", "timeframe"),
    [("BTC", Timeframe.M5), ("ETH", Timeframe.M5), ("BTC", Timeframe.H1), ("ETH", Timeframe.H1)],
)
def test_the_reference_equals_the_polars_pipeline_on_the_real_sample(
    symbol: str, timeframe: Timeframe
) -> None:
    bars = resample(read_bars(SAMPLE_DIR / f"{symbol}_USDT-5m.parquet"), timeframe)
    expected, found = both_pipelines(bars, timeframe)
    assert pandas_features.mismatches(expected, found) == {}
    # Same columns in the same order: the reference adds exactly what the pipeline adds.
    assert list(found.columns) == expected.columns


def test_the_sample_exercises_gaps_warm_ups_guards_and_every_label(
    btc_5m: tuple[pl.DataFrame, pd.DataFrame],
) -> None:
    # An equality check over data that never reaches a segment start, a guard or a class would prove little.
    expected, _ = btc_5m
    assert expected["segment"].n_unique() >= 3
    assert set(expected["label"].drop_nulls().unique()) == {DOWN, NEUTRAL, UP}
    assert expected["label"].null_count() > 0
    assert all(expected[name].null_count() > 0 for name, warmup in FEATURE_WARMUP.items() if warmup)
    # Flat 12-bar windows (where pandas' rolling std leaves a residue) and bars without a trade.
    assert (expected["vol_12"] == 0).any()
    assert (expected["volume"] == 0).any()


def test_every_feature_and_label_column_is_compared() -> None:
    assert set(pandas_features.COMPARED_COLUMNS) == {"segment", *FEATURE_NAMES, *LABEL_COLUMNS}


def test_a_difference_is_reported_by_column(btc_5m: tuple[pl.DataFrame, pd.DataFrame]) -> None:
    expected, found = btc_5m
    row = 5000
    changed = found.copy()
    changed.loc[row, "rsi_14"] += 1e-6  # a value beyond the tolerance
    changed.loc[row, "ret_1"] = float("nan")  # a null where the pipeline has a value
    changed.loc[row, "label"] = (int(found.loc[row, "label"]) + 1) % 3  # labels must match exactly
    changed = changed.drop(columns=["dow_cos"])
    found_problems = pandas_features.mismatches(expected, changed)
    assert set(found_problems) == {"rsi_14", "ret_1", "label", "dow_cos"}
    assert f"first row {row}" in found_problems["rsi_14"]
    assert "nulls differ" in found_problems["ret_1"]
    assert found_problems["dow_cos"] == "missing"
    # Within the tolerance is equal.
    close = found.copy()
    close["rsi_14"] = close["rsi_14"] * (1 + 1e-12)
    assert pandas_features.mismatches(expected, close) == {}
