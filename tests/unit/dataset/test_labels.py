"""Labels: hand-computed examples, segment boundaries, volatility scaling, real distribution, weights."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tests.support.services import SAMPLE_DIR
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.gaps import segment_expr
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.features import add_features
from trainfarm.shared.dataset.labels import (
    CLASSES,
    DOWN,
    NEUTRAL,
    UP,
    add_labels,
    class_weights,
    sample_weights,
)
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.timeframes import Timeframe

SAMPLE = SAMPLE_DIR
HOUR = timedelta(hours=1)
START = datetime(2024, 1, 1, tzinfo=UTC)


def frame_from_returns(returns: list[float], *, dates: list[datetime] | None = None) -> pl.DataFrame:
    """Bars whose 1-bar log returns are ``returns`` (the first bar has none), segmented like production."""
    closes = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    if dates is None:
        dates = [START + i * HOUR for i in range(len(closes))]
    return (
        pl.DataFrame({"date": dates, "close": closes})
        .with_columns(pl.col("date").cast(pl.Datetime("ms", "UTC")))
        .with_columns(segment_expr(HOUR, 3))
    )


def test_hand_computed_labels() -> None:
    # Returns repeat (+a, -a, 0): every 3-bar window holds {a, -a, 0}, whose std (ddof=1) is exactly a.
    # horizon 2, threshold 0.5: scale = 0.5 * a * sqrt(2) ~ 0.71 a, and the 2-bar forward return is one
    # of 0 (neutral), -a (down), +a (up).
    a = 0.01
    frame = add_labels(frame_from_returns([a, -a, 0.0] * 3), horizon=2, threshold=0.5, vol_window=3)
    #                 t:   0     1     2     3        4     5   6        7     8     9
    assert frame["label"].to_list() == [None, None, None, NEUTRAL, DOWN, UP, NEUTRAL, DOWN, None, None]
    assert frame["label"].dtype == pl.Int8
    fwd = frame["fwd_return"].to_list()
    assert fwd[:8] == pytest.approx([0.0, -a, a, 0.0, -a, a, 0.0, -a], abs=1e-12)
    assert fwd[8:] == [None, None]
    scale = frame["label_scale"].to_list()
    assert scale[:3] == [None, None, None]
    assert scale[3:] == pytest.approx([0.5 * a * math.sqrt(2)] * 7, rel=1e-9)
    dates = frame["date"].to_list()
    assert frame["label_end"].to_list() == [None, None, None, *dates[5:10], None, None]


def test_label_follows_the_rule_on_every_row() -> None:
    returns = list(np.random.default_rng(5).standard_t(df=3, size=3000) * 0.003)
    frame = add_labels(frame_from_returns(returns), horizon=6, threshold=0.5, vol_window=48)
    fwd, scale = frame["fwd_return"].to_numpy(), frame["label_scale"].to_numpy()
    known = ~(np.isnan(fwd) | np.isnan(scale))
    rule = np.where(fwd < -scale, DOWN, np.where(fwd > scale, UP, NEUTRAL))
    labels = frame["label"]
    assert (labels.is_not_null().to_numpy() == known).all()
    assert (labels.to_numpy()[known] == rule[known]).all()
    assert set(labels.drop_nulls().unique().to_list()) == {DOWN, NEUTRAL, UP}


def test_horizon_crossing_a_segment_boundary_gives_null() -> None:
    returns = [0.01, -0.02, 0.015, -0.005, 0.01, 0.0, -0.01] * 4
    dates = [START + i * HOUR for i in range(15)] + [START + (i + 30) * HOUR for i in range(14)]
    frame = add_labels(frame_from_returns(returns, dates=dates), horizon=3, threshold=0.5, vol_window=5)
    assert frame["segment"].to_list() == [0] * 15 + [1] * 14
    seg0 = frame.head(15)
    # t + 3 lies inside segment 0 only for t <= 11: bars 12..14 would look across the 15-hour outage.
    assert seg0["fwd_return"].is_null().to_list() == [False] * 12 + [True] * 3
    assert seg0["label"].slice(12).to_list() == [None] * 3
    assert seg0["label_end"].slice(12).to_list() == [None] * 3
    assert seg0["label_end"][11] == dates[14]
    # The volatility window restarts too: 5 returns are needed again after the gap (the first has none).
    seg1 = frame.slice(15)
    assert seg1["label_scale"].is_null().to_list() == [True] * 5 + [False] * 9
    assert seg1["label"].is_not_null().to_list() == [False] * 5 + [True] * 6 + [False] * 3


def test_frame_without_segments_is_refused() -> None:
    with pytest.raises(ValueError, match="segment"):
        add_labels(frame_from_returns([0.01] * 5).drop("segment"), horizon=1, threshold=0.5, vol_window=3)


def test_threshold_scales_with_volatility() -> None:
    rng = np.random.default_rng(7)
    calm, wild = rng.normal(0, 0.001, 600), rng.normal(0, 0.004, 600)
    frame = add_labels(
        frame_from_returns([*calm, *wild]), horizon=6, threshold=0.5, vol_window=48
    ).with_columns(half=pl.int_range(pl.len()) >= 601)
    medians = frame.group_by("half").agg(pl.col("label_scale").median()).sort("half")["label_scale"]
    assert medians[1] / medians[0] == pytest.approx(4.0, rel=0.2)
    assert frame["label_scale"].drop_nulls().to_numpy().min() > 0.5 * 0.001 * math.sqrt(6) * 0.5


def test_labels_are_invariant_to_the_volatility_level() -> None:
    """Scaling every return by c scales fwd_return and label_scale by c and leaves the labels alone."""
    returns = np.random.default_rng(3).standard_t(df=3, size=2000) * 0.002
    base = add_labels(frame_from_returns(list(returns)), horizon=6, threshold=0.5, vol_window=48)
    loud = add_labels(frame_from_returns(list(returns * 5)), horizon=6, threshold=0.5, vol_window=48)
    ratio = (loud["label_scale"] / base["label_scale"]).drop_nulls()
    assert ratio.to_numpy() == pytest.approx(np.full(ratio.len(), 5.0), rel=1e-9)
    assert loud["label"].to_list() == base["label"].to_list()


def test_label_scale_matches_numpy() -> None:
    returns = list(np.random.default_rng(11).normal(0, 0.01, 200))
    frame = add_labels(frame_from_returns(returns), horizon=4, threshold=0.7, vol_window=20)
    lr = np.array(returns)
    for t in (20, 77, 199):  # returns into bars t-19..t are lr[t-20 : t]
        expected = 0.7 * math.sqrt(4) * np.std(lr[t - 20 : t], ddof=1)
        assert frame["label_scale"][t] == pytest.approx(expected, rel=1e-9)


def test_label_distribution_on_real_btc_1h_is_not_degenerate() -> None:
    params = FarmConfig().params(Timeframe.H1)
    bars = resample(pl.read_parquet(SAMPLE / "BTC_USDT-5m.parquet"), Timeframe.H1)
    frame = add_features(bars, interval=Timeframe.H1.duration, max_gap_bars=params.max_gap_bars)
    frame = add_labels(
        frame, horizon=params.label_horizon, threshold=params.label_threshold, vol_window=params.vol_window
    )
    labels = frame["label"].drop_nulls()
    assert labels.len() > 0.95 * frame.height
    shares = labels.value_counts(normalize=True).sort("label")
    assert shares["label"].to_list() == [DOWN, NEUTRAL, UP]
    for cls, share in zip(CLASSES, shares["proportion"], strict=True):
        assert 0.10 <= share <= 0.80, (cls, share)


def test_class_weights_balance_the_classes() -> None:
    labels = pl.Series([0] * 10 + [1] * 60 + [2] * 30, dtype=pl.Int8)
    weights = class_weights(labels)
    assert weights == pytest.approx({0: 100 / 30, 1: 100 / 180, 2: 100 / 90})
    per_row = sample_weights(labels, weights)
    assert per_row.dtype == np.float64
    assert per_row.shape == (100,)
    totals = [per_row[labels.to_numpy() == c].sum() for c in range(3)]
    assert totals == pytest.approx([100 / 3] * 3)
    assert per_row.sum() == pytest.approx(100.0)
    # numpy input gives the same answer
    assert class_weights(labels.to_numpy()) == weights


def test_class_weights_name_the_missing_class() -> None:
    with pytest.raises(DatasetError, match="'up'"):
        class_weights(np.array([0, 1, 1, 0]))
    with pytest.raises(DatasetError, match="'down'"):
        class_weights(pl.Series([], dtype=pl.Int8))


def test_class_weights_refuse_bad_labels() -> None:
    with pytest.raises(ValueError, match="null"):
        class_weights(pl.Series([0, 1, None, 2], dtype=pl.Int8))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        class_weights(np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="no weight"):
        sample_weights(np.array([0, 1, 2]), {0: 1.0, 1: 1.0})
