"""The drift measures: training bins, PSI, the calibration gap, the feature comparison of skew checks."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from trainfarm.shared.monitoring.drift import (
    PSI_EPSILON,
    SKEW_ABS,
    FeatureDistribution,
    calibration_gap,
    compare_features,
    psi,
)

NAMES = ["a", "b"]
RNG_SEED = 11


def _normal(rows: int, *, shift: float = 0.0, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, size=(rows, len(NAMES)))


def test_deciles_hold_a_tenth_of_the_training_rows_each() -> None:
    dist = FeatureDistribution.fit(_normal(10_000), NAMES)
    bins = dist.features["a"]
    assert len(bins.edges) == 9 and len(bins.shares) == 10
    assert np.allclose(bins.shares, 0.1, atol=1e-3) and math.isclose(sum(bins.shares), 1.0)
    assert dist.rows == 10_000


def test_psi_is_zero_on_the_training_rows_and_large_on_shifted_ones() -> None:
    train = _normal(5000)
    dist = FeatureDistribution.fit(train, NAMES)
    assert psi(dist, train, NAMES) == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-12)
    same_law = psi(dist, _normal(2000, seed=3), NAMES)
    assert max(same_law.values()) < 0.1  # stable: another sample of the same distribution
    shifted = psi(dist, _normal(2000, shift=1.0, seed=3), NAMES)
    assert min(shifted.values()) > 0.25  # a one-sigma shift of the mean is a major shift


def test_an_empty_live_bin_gives_a_large_finite_term() -> None:
    dist = FeatureDistribution.fit(_normal(5000), NAMES)
    above_everything = np.full((100, 2), 50.0)  # every row in the last bin
    value = psi(dist, above_everything, NAMES)["a"]
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1)
    assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-2)


def test_a_constant_feature_has_one_edge_and_notices_any_other_value() -> None:
    rows = np.column_stack([np.full(1000, 0.5), np.arange(1000.0)])
    dist = FeatureDistribution.fit(rows, NAMES)
    assert dist.features["a"].edges == (0.5,) and dist.features["a"].shares == (1.0, 0.0)
    assert psi(dist, rows, NAMES)["a"] == 0.0
    moved = rows.copy()
    moved[:, 0] = 0.7
    assert psi(dist, moved, NAMES)["a"] > 5


def test_nan_rows_are_dropped_on_both_sides() -> None:
    train = _normal(4000)
    with_nan = np.vstack([train, np.full((500, 2), np.nan)])
    assert FeatureDistribution.fit(with_nan, NAMES).features == FeatureDistribution.fit(train, NAMES).features
    dist = FeatureDistribution.fit(train, NAMES)
    live = _normal(1000, seed=5)
    live_nan = np.vstack([live, np.full((300, 2), np.nan), [[np.inf, np.nan]]])
    assert psi(dist, live_nan, NAMES) == pytest.approx(psi(dist, live, NAMES))
    only_nan = np.full((10, 2), np.nan)
    assert psi(dist, only_nan, NAMES) == {}  # nothing to compare: left out, not 0
    assert "a" not in FeatureDistribution.fit(np.column_stack([only_nan[:, 0], np.ones(10)]), NAMES).features


def test_calendar_features_are_skipped_unless_asked() -> None:
    names = ["ret_1", "dow_sin"]
    dist = FeatureDistribution.fit(_normal(1000), names)
    shifted = _normal(500, shift=3.0)
    assert set(psi(dist, shifted, names)) == {"ret_1"}
    assert set(psi(dist, shifted, names, skip=frozenset())) == {"ret_1", "dow_sin"}


def test_the_json_round_trip_and_a_malformed_distribution() -> None:
    dist = FeatureDistribution.fit(_normal(1000), NAMES, fitted_on=["train", "calibration"])
    again = FeatureDistribution.from_json(json.loads(json.dumps(dist.to_json())))
    assert again == dist and again.fitted_on == ("train", "calibration")
    with pytest.raises(ValueError, match="not an object"):
        FeatureDistribution.from_json([])
    broken = dist.to_json()
    broken["features"] = {"a": {"edges": [1.0, 0.0], "shares": [0.3, 0.3, 0.4]}}
    with pytest.raises(ValueError, match="'a'"):
        FeatureDistribution.from_json(broken)


def test_the_pack_distribution_is_of_the_splits_the_deployed_models_saw() -> None:
    frame = pl.DataFrame(
        {
            "split": ["train"] * 50 + ["test"] * 50,
            "a": np.r_[np.zeros(50), np.ones(50)],
            "b": np.arange(100.0),
        }
    )
    rejected = FeatureDistribution.of_deployment(frame, NAMES, {"base_models_fitted_on": ["train"]})
    assert rejected.rows == 50 and rejected.features["a"].edges == (0.0,)
    refit = FeatureDistribution.of_deployment(frame, NAMES, {"base_models_fitted_on": ["train", "test"]})
    assert refit.rows == 100 and refit.fitted_on == ("train", "test")
    assert FeatureDistribution.of_deployment(frame, NAMES, {}).rows == 100  # unknown: the whole snapshot


def _calibrated(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.exp(rng.normal(0, 0.5, (rows, 3)))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(rows)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # drawn from each row's p
    return p, y


def test_the_calibration_gap_is_small_for_a_calibrated_model_and_large_for_a_wrong_one() -> None:
    p, y = _calibrated(20_000, seed=1)
    assert calibration_gap(p, y) < 0.01
    small_p, small_y = _calibrated(200, seed=2)
    assert calibration_gap(small_p, small_y) < 0.1  # the default threshold stays above the noise
    overconfident = np.tile([0.05, 0.05, 0.9], (3000, 1))  # says "up" at 90%, the classes are uniform
    uniform = np.arange(3000) % 3
    # Two thirds of the pairs say 0.05 and a third 0.9, each realising 1/3; the decile that straddles both
    # averages 1/3 and shows no gap: (6 * (1/3 - 0.05) + 3 * (0.9 - 1/3)) / 10.
    assert calibration_gap(overconfident, uniform) == pytest.approx(0.34, abs=1e-9)
    with pytest.raises(ValueError, match="no rows"):
        calibration_gap(np.empty((0, 3)), np.empty(0, dtype=int))


BAR = datetime(2026, 12, 1, tzinfo=UTC)


def test_compare_features_counts_mismatches_and_names_the_worst() -> None:
    farm = {BAR + timedelta(hours=h): [0.1 * h, 1.0 + h] for h in range(4)}
    reported = [(bar, list(values)) for bar, values in farm.items()]
    clean = compare_features(reported, farm, NAMES)
    assert (clean.checked, clean.mismatched, clean.not_checked, clean.worst_feature) == (4, 0, 0, None)
    assert clean.mismatch_share == 0.0
    # Float noise within the tolerance is no skew; a real difference is, and the largest one is named.
    noisy = [(bar, [v + SKEW_ABS / 10 for v in values]) for bar, values in farm.items()]
    assert compare_features(noisy, farm, NAMES).mismatched == 0
    skewed = list(reported)
    skewed[1] = (skewed[1][0], [0.1, 2.5])  # b off by 0.5
    skewed[2] = (skewed[2][0], [0.2 + 1e-3, 3.0])  # a off by 1e-3
    report = compare_features(skewed, farm, NAMES)
    assert (report.checked, report.mismatched) == (4, 2)
    assert report.worst_feature == "b" and report.worst_bar == BAR + timedelta(hours=1)
    assert report.worst_difference == pytest.approx(0.5)


def test_a_bar_the_farm_lacks_is_not_checked_and_a_wrong_length_is_a_mismatch() -> None:
    farm = {BAR: [1.0, 2.0]}
    report = compare_features([(BAR, [1.0, 2.0]), (BAR + timedelta(hours=1), [9.0, 9.0])], farm, NAMES)
    assert (report.checked, report.mismatched, report.not_checked) == (1, 0, 1)
    short = compare_features([(BAR, [1.0])], farm, NAMES)
    assert short.mismatched == 1 and "1 feature values, the pack has 2" in short.problems[0]
    assert compare_features([], farm, NAMES).mismatch_share is None
