"""Isotonic calibration: equals sklearn, JSON round trip without sklearn, rows sum to 1, ECE drops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.isotonic import IsotonicRegression

from trainfarm.shared.errors import DatasetError
from trainfarm.shared.evaluation.metrics import expected_calibration_error, log_loss
from trainfarm.shared.stacking.isotonic import IsotonicCalibrator

REPO = Path(__file__).resolve().parents[3]


def overconfident(n: int, seed: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Labels drawn from true probabilities; the "model" reports them sharpened (p**3, renormalised)."""
    rng = np.random.default_rng(seed)
    true_p = rng.dirichlet([2.0, 2.0, 2.0], size=n)
    y = (rng.random(n)[:, None] > np.cumsum(true_p, axis=1)).sum(axis=1).astype(np.int64)
    sharp = true_p**3
    return sharp / sharp.sum(axis=1, keepdims=True), y


def test_per_class_curve_equals_sklearn() -> None:
    probs, y = overconfident(3000, 1)
    cal = IsotonicCalibrator().fit(probs[:2000], y[:2000])
    new = np.vstack([probs[2000:], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])  # also outside the fitted range
    ours = cal.per_class(new)
    for k in range(3):
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(probs[:2000, k], (y[:2000] == k).astype(float))
        np.testing.assert_allclose(ours[:, k], iso.predict(new[:, k]), rtol=0, atol=1e-12)


def test_json_round_trip_is_exact() -> None:
    probs, y = overconfident(1500, 2)
    cal = IsotonicCalibrator(min_prob=1e-4).fit(probs[:1000], y[:1000])
    blob = json.dumps(cal.to_json(), allow_nan=False)
    loaded = IsotonicCalibrator.from_json(json.loads(blob))
    assert loaded.to_json() == cal.to_json()
    assert loaded.min_prob == 1e-4
    np.testing.assert_array_equal(loaded.transform(probs[1000:]), cal.transform(probs[1000:]))


def test_loading_and_applying_needs_no_sklearn(tmp_path: Path) -> None:
    probs, y = overconfident(500, 3)
    cal = IsotonicCalibrator().fit(probs, y)
    (tmp_path / "cal.json").write_text(json.dumps(cal.to_json()))
    np.save(tmp_path / "probs.npy", probs)
    np.save(tmp_path / "expected.npy", cal.transform(probs))
    script = (
        "import sys, json, numpy as np\n"
        "sys.modules['sklearn'] = None  # any sklearn import now fails\n"
        "from trainfarm.shared.stacking.isotonic import IsotonicCalibrator\n"
        f"d = {str(tmp_path)!r}\n"
        "cal = IsotonicCalibrator.from_json(json.load(open(d + '/cal.json')))\n"
        "out = cal.transform(np.load(d + '/probs.npy'))\n"
        "assert np.array_equal(out, np.load(d + '/expected.npy'))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)


def test_rows_sum_to_one_with_floor_and_nan_rows_stay_nan() -> None:
    probs, y = overconfident(2000, 4)
    cal = IsotonicCalibrator().fit(probs[:1000], y[:1000])
    test = probs[1000:].copy()
    test[5] = np.nan
    out = cal.transform(test)
    assert np.isnan(out[5]).all()
    finite = np.delete(out, 5, axis=0)
    np.testing.assert_allclose(finite.sum(axis=1), 1.0, atol=1e-12)
    assert finite.min() >= 1e-3 - 1e-15


def test_zero_sum_row_falls_back_to_uncalibrated() -> None:
    # Without a floor, a row where every curve gives 0 cannot be renormalised: it keeps its input.
    probs = np.array([[0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    y = np.array([2, 2, 0, 1])
    cal = IsotonicCalibrator(min_prob=0.0).fit(probs, y)
    row = np.array([[0.05, 0.05, 0.9]])
    raw = cal.per_class(row)
    if raw.sum() == 0.0:
        np.testing.assert_array_equal(cal.transform(row), row)
    weird = IsotonicCalibrator.from_json(
        {
            "kind": "isotonic",
            "classes": ["down", "neutral", "up"],
            "min_prob": 0.0,
            "curves": {
                c: {"x_thresholds": [0.0, 1.0], "y_thresholds": [0.0, 0.0]} for c in ("down", "neutral", "up")
            },
        }
    )
    np.testing.assert_allclose(weird.transform([[0.2, 0.3, 0.5]]), [[0.2, 0.3, 0.5]])


def test_calibration_lowers_ece_on_held_out_rows() -> None:
    probs, y = overconfident(8000, 5)
    fit_p, fit_y, held_p, held_y = probs[:4000], y[:4000], probs[4000:], y[4000:]
    cal = IsotonicCalibrator().fit(fit_p, fit_y)
    before = expected_calibration_error(held_p, held_y)
    after = expected_calibration_error(cal.transform(held_p), held_y)
    assert before > 0.08
    assert after < 0.04 and after < before / 3
    assert log_loss(cal.transform(held_p), held_y) < log_loss(held_p, held_y)


def test_refusals() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        IsotonicCalibrator().transform(np.full((1, 3), 1 / 3))
    with pytest.raises(DatasetError, match="up absent"):
        IsotonicCalibrator().fit(np.full((4, 3), 1 / 3), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="min_prob"):
        IsotonicCalibrator(min_prob=0.5)
    with pytest.raises(ValueError, match="kind"):
        IsotonicCalibrator.from_json({"kind": "platt"})
    good = IsotonicCalibrator().fit(*overconfident(300, 6)).to_json()
    bad = json.loads(json.dumps(good))
    bad["curves"]["up"]["x_thresholds"] = bad["curves"]["up"]["x_thresholds"][:-1]
    with pytest.raises(ValueError, match="'up'"):
        IsotonicCalibrator.from_json(bad)
    del bad["curves"]["up"]
    with pytest.raises(ValueError, match="a curve for each"):
        IsotonicCalibrator.from_json(bad)
