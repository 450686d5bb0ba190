"""The temperature/shrinkage calibrator: fitted on the calibration split, cross-fitted for p*."""

from __future__ import annotations

import numpy as np
import pytest

from trainfarm.shared.evaluation.metrics import log_loss
from trainfarm.shared.stacking.temperature import cross_fitted, fit_temperature_shrink, min_shrink
from trainfarm_client.calibration import TemperatureShrinkCalibration, load_calibration


def _overconfident(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are right in ranking but far too sure (as a model trained on few rows is)."""
    y = rng.choice(3, size=n, p=[0.3, 0.4, 0.3]).astype(np.int64)
    logits = rng.normal(0, 1, size=(n, 3)) + 1.0 * np.eye(3)[y]
    z = 4.0 * logits
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True), y


def test_an_overconfident_model_is_cooled_and_improves() -> None:
    probs, y = _overconfident(np.random.default_rng(5), 2000)
    calibrator = fit_temperature_shrink(probs, y)
    assert calibrator.temperature > 1.5
    assert log_loss(calibrator.transform(probs), y) < 0.8 * log_loss(probs, y)


def test_a_model_without_signal_falls_back_to_the_prior() -> None:
    rng = np.random.default_rng(6)
    y = rng.choice(3, size=1500, p=[0.2, 0.5, 0.3]).astype(np.int64)
    noise = rng.dirichlet([1.0, 1.0, 1.0], size=y.size)
    calibrator = fit_temperature_shrink(noise, y)
    assert calibrator.shrink >= 0.9
    out = calibrator.transform(noise)
    assert np.abs(out - np.asarray(calibrator.prior)).max() < 0.1
    np.testing.assert_allclose(calibrator.prior, np.bincount(y, minlength=3) / y.size, atol=1e-3)


def test_cross_fitted_rows_come_from_the_other_halfs_fit() -> None:
    probs, y = _overconfident(np.random.default_rng(7), 400)
    out = cross_fitted(probs, y, purge=10)
    first, second = np.arange(200), np.arange(210, 400)
    on_second = fit_temperature_shrink(probs[second], y[second])
    on_first = fit_temperature_shrink(probs[first], y[first])
    np.testing.assert_array_equal(out[first], on_second.transform(probs[first]))
    np.testing.assert_array_equal(out[200:], on_first.transform(probs[200:]))


def test_json_round_trip_and_refusals() -> None:
    calibrator = TemperatureShrinkCalibration(1.7, 0.25, (0.3, 0.4, 0.3))
    again = load_calibration(calibrator.to_json())
    assert again == calibrator
    with pytest.raises(ValueError, match="kind"):
        load_calibration({**calibrator.to_json(), "kind": "platt"})
    with pytest.raises(ValueError, match="shrink"):
        TemperatureShrinkCalibration(1.0, 1.5, (0.3, 0.4, 0.3))
    with pytest.raises(ValueError, match="temperature"):
        TemperatureShrinkCalibration(0.0, 0.5, (0.3, 0.4, 0.3))


def test_the_probability_floor_is_tied_to_the_calibration_size() -> None:
    """Even a near-perfect model keeps prior / rows on every class: one surprise costs a bounded loss."""
    rng = np.random.default_rng(9)
    for n in (200, 2000):
        y = rng.choice(3, size=n).astype(np.int64)
        sure = np.full((n, 3), 1e-9)
        sure[np.arange(n), y] = 1.0
        sure /= sure.sum(axis=1, keepdims=True)
        calibrator = fit_temperature_shrink(sure, y)
        assert calibrator.shrink >= min_shrink(n) == 1.0 / n
        wrong = np.roll(sure, 1, axis=1)  # every row now sure of a wrong class
        floor = np.asarray(calibrator.prior).min() / n
        assert calibrator.transform(wrong).min() >= floor * (1 - 1e-9)
