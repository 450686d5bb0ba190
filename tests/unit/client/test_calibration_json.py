"""The client applies a pack's calibrator.json exactly as the farm does, and as sklearn's curves say."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.isotonic import IsotonicRegression

from trainfarm.shared.stacking.isotonic import IsotonicCalibrator
from trainfarm_client.calibration import IsotonicCalibration

FloatArray = npt.NDArray[np.float64]


def _overconfident(n: int, seed: int) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    true_p = rng.dirichlet([2.0, 2.0, 2.0], size=n)
    y = (rng.random(n)[:, None] > np.cumsum(true_p, axis=1)).sum(axis=1).astype(np.int64)
    sharp = true_p**3
    return sharp / sharp.sum(axis=1, keepdims=True), y


@pytest.mark.parametrize("min_prob", [0.0, 1e-4, 1e-3])
def test_the_json_transform_equals_the_farms_bit_for_bit(min_prob: float) -> None:
    probs, y = _overconfident(3000, 11)
    farm = IsotonicCalibrator(min_prob=min_prob).fit(probs[:1500], y[:1500])
    doc = json.loads(json.dumps(farm.to_json(), allow_nan=False))  # as written into the pack
    client = IsotonicCalibration.from_json(doc)
    new = np.vstack([probs[1500:], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], [[np.nan] * 3]])
    np.testing.assert_array_equal(client.transform(new), farm.transform(new))
    np.testing.assert_array_equal(client.per_class(new), farm.per_class(new))
    assert client.to_json() == farm.to_json()
    assert client.min_prob == min_prob


def test_the_transform_is_sklearns_curves_renormalised_and_floored() -> None:
    """Checked against an independent computation, so the shared implementation cannot drift unseen."""
    probs, y = _overconfident(2000, 12)
    fit_p, fit_y, new = probs[:1000], y[:1000], probs[1000:]
    client = IsotonicCalibration.from_json(IsotonicCalibrator(min_prob=1e-3).fit(fit_p, fit_y).to_json())
    curves = np.column_stack(
        [
            IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            .fit(fit_p[:, k], (fit_y == k).astype(float))
            .predict(new[:, k])
            for k in range(3)
        ]
    )
    assert (curves.sum(axis=1) > 0).all()
    expected = (1.0 - 3e-3) * curves / curves.sum(axis=1, keepdims=True) + 1e-3
    np.testing.assert_allclose(client.transform(new), expected, rtol=0, atol=1e-12)


def test_malformed_documents_are_refused() -> None:
    good = IsotonicCalibrator().fit(*_overconfident(300, 14)).to_json()
    with pytest.raises(ValueError, match="kind"):
        IsotonicCalibration.from_json({**good, "kind": "platt"})
    with pytest.raises(ValueError, match="min_prob"):
        IsotonicCalibration.from_json({**good, "min_prob": 0.4})
    with pytest.raises(ValueError, match="classes"):
        IsotonicCalibration.from_json({**good, "classes": ["up", "neutral", "down"]})
    bad = json.loads(json.dumps(good))
    bad["curves"]["down"]["x_thresholds"] = bad["curves"]["down"]["x_thresholds"][::-1]
    with pytest.raises(ValueError, match=r"'down'.*non-decreasing"):
        IsotonicCalibration.from_json(bad)
    with pytest.raises(ValueError, match="one curve per class"):
        IsotonicCalibration(curves=IsotonicCalibration.from_json(good).curves[:2])
