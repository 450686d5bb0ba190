"""Synthetic bars: valid store input, deterministic per seed, and the planted signal is where it is said."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.synthetic import (
    DEFAULT_SIGMA,
    daily_drift,
    mean_reverting_bars,
    planted_signal_bars,
    random_walk_bars,
    regime_flip_bars,
    trending_bars,
    volume_signal_bars,
)
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.timeframes import Timeframe

N = 288 * 30  # 30 days of 5m bars


@pytest.mark.parametrize("make", [random_walk_bars, planted_signal_bars, mean_reverting_bars, trending_bars])
def test_bars_are_valid_store_input_on_the_utc_5m_grid(make: Callable[[int, int], pl.DataFrame]) -> None:
    bars = make(N, 3)
    validate_bars(bars, file="synthetic", min_rows=288)
    assert bars.columns == ["date", "open", "high", "low", "close", "volume"]
    assert bars.schema["date"] == pl.Datetime("ms", "UTC")
    assert bars["date"][0] == datetime(2024, 1, 1, tzinfo=UTC)
    assert (bars["date"].diff().drop_nulls() == timedelta(minutes=5)).all()
    assert (bars["open"].shift(-1).drop_nulls() == bars["close"].head(N - 1)).all()  # continuous
    assert (bars["high"] > bars["low"]).all() and (bars["volume"] > 0).all()


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    assert random_walk_bars(N, 1).equals(random_walk_bars(N, 1))
    assert planted_signal_bars(N, 1).equals(planted_signal_bars(N, 1))
    assert not random_walk_bars(N, 1).equals(random_walk_bars(N, 2))
    # Strength 0 is the random walk of the same seed: the signal is the only difference.
    assert planted_signal_bars(N, 1, strength=0.0).equals(random_walk_bars(N, 1))


def test_the_random_walk_has_the_stated_volatility_and_no_drift() -> None:
    close = random_walk_bars(288 * 200, 9)["close"].to_numpy()
    r = np.diff(np.log(close))
    assert r.std() == pytest.approx(DEFAULT_SIGMA, rel=0.02)
    assert abs(r.mean()) < 3 * DEFAULT_SIGMA / np.sqrt(r.size)
    assert abs(np.corrcoef(r[:-1], r[1:])[0, 1]) < 0.02  # no momentum to learn


def test_the_planted_drift_follows_the_time_of_day() -> None:
    """The planted path minus the walk of the same seed is exactly the drift: up mornings, down evenings."""
    strength, days = 0.2, 200
    walk = resample(random_walk_bars(288 * days, 5), Timeframe.H1)
    planted = resample(planted_signal_bars(288 * days, 5, strength=strength), Timeframe.H1)
    hour = planted["date"].dt.hour().to_numpy()
    excess = np.diff(np.log(planted["close"].to_numpy())) - np.diff(np.log(walk["close"].to_numpy()))
    # The difference between the two paths is exactly the drift (same seed, same noise).
    expected = daily_drift(planted_signal_bars(288 * days, 5, strength=strength)["date"], strength)
    per_hour = expected.reshape(-1, 12).sum(axis=1) * 5  # five one-minute steps per 5m bar
    np.testing.assert_allclose(excess, per_hour[1:], atol=1e-12)
    morning, evening = excess[(hour[1:] >= 3) & (hour[1:] < 9)], excess[(hour[1:] >= 15) & (hour[1:] < 21)]
    assert morning.min() > 0 > evening.max()


def test_the_regime_flip_reverses_the_cycle_at_the_flip() -> None:
    """Before the flip the path minus the walk is the planted drift; after it, the same drift negated."""
    days, strength = 20, 0.25
    n = 288 * days
    flipped = regime_flip_bars(n, 7, strength=strength, flip_at=0.25)
    walk = random_walk_bars(n, 7)
    excess = np.diff(np.log(flipped["close"].to_numpy())) - np.diff(np.log(walk["close"].to_numpy()))
    per_bar = daily_drift(flipped["date"], strength) * 5  # five one-minute steps per 5m bar
    cut = n // 4
    np.testing.assert_allclose(excess[: cut - 1], per_bar[1:cut], atol=1e-12)
    np.testing.assert_allclose(excess[cut - 1 :], -per_bar[cut:], atol=1e-12)
    assert planted_signal_bars(n, 7, strength=strength)[:cut].equals(flipped[:cut])
    validate_bars(flipped, file="regime_flip", min_rows=1)
    with pytest.raises(ValueError, match="flip_at"):
        regime_flip_bars(10, 1, flip_at=1.0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n must be"):
        random_walk_bars(0, 1)
    with pytest.raises(ValueError, match="grid"):
        random_walk_bars(10, 1, start=datetime(2024, 1, 1, 0, 3, tzinfo=UTC))
    with pytest.raises(ValueError, match="UTC"):
        random_walk_bars(10, 1, start=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="strength"):
        planted_signal_bars(10, 1, strength=float("nan"))


def test_the_weekly_cycle_follows_the_time_of_week() -> None:
    dates = pl.Series([datetime(2024, 1, 1, 0, tzinfo=UTC) + timedelta(hours=h) for h in (0, 42, 84, 126)])
    drift = daily_drift(dates, 1.0, period_days=7)  # 2024-01-01 is a Monday: quarter weeks apart
    np.testing.assert_allclose(drift / drift[1], [0.0, 1.0, 0.0, -1.0], atol=1e-12)
    with pytest.raises(ValueError, match="period_days"):
        daily_drift(dates, 1.0, period_days=0)


def test_a_mean_reverting_price_is_pulled_back_toward_its_mean() -> None:
    """With strength 0 it is the random walk of the same seed; with strength the distance predicts."""
    assert mean_reverting_bars(N, 4, strength=0.0).equals(random_walk_bars(N, 4))
    bars = mean_reverting_bars(N, 4, strength=0.03)
    x = np.log(bars["close"].to_numpy())
    mean = pl.Series(x).ewm_mean(span=288, adjust=False).to_numpy()
    distance, ahead = (x - mean)[:-12], x[12:] - x[:-12]
    assert np.corrcoef(distance, ahead)[0, 1] < -0.3  # far above the mean: expect a fall
    with pytest.raises(ValueError, match="strength"):
        mean_reverting_bars(10, 1, strength=1.5)


def test_a_trending_price_keeps_running_from_its_mean() -> None:
    bars = trending_bars(N, 4)
    x = np.log(bars["close"].to_numpy())
    mean = pl.Series(x).ewm_mean(span=288, adjust=False).to_numpy()
    distance, ahead = (x - mean)[:-72], x[72:] - x[:-72]
    assert np.corrcoef(distance, ahead)[0, 1] > 0.1  # above the mean: expect a further rise
    with pytest.raises(ValueError, match="strength"):
        trending_bars(10, 1, strength=0.01)  # faster than the mean's own pace: unbounded


def test_a_volume_spike_announces_the_next_hours_move() -> None:
    assert volume_signal_bars(N, 6, strength=0.0).equals(random_walk_bars(N, 6))
    bars = volume_signal_bars(N, 6)
    volume = bars["volume"].to_numpy()
    x = np.log(bars["close"].to_numpy())
    move = np.diff(np.concatenate([[np.log(100.0)], x]))  # each bar's own log move
    ahead = np.concatenate([x[12:] - x[:-12], np.zeros(12)])  # the next hour's move
    spike = volume > np.quantile(volume, 0.9)
    agree = np.sign(move[spike]) == np.sign(ahead[spike])
    assert agree.mean() > 0.7  # after a spike the next hour follows it; a random walk gives 0.5
