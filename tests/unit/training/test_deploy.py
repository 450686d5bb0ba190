"""What a refit pack records of itself: its signal rate on the newest rows beside the gated pipeline's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainfarm.shared.training.deploy import SignalRates
from trainfarm_client.arrays import FloatArray
from trainfarm_client.calibration import TemperatureShrinkCalibration

PRIOR = (0.3, 0.4, 0.3)


def _probs(seed: int, rows: int = 600) -> FloatArray:
    """Calibrated-looking probabilities that move slowly, as a stacker's do on slowly moving features."""
    rng = np.random.default_rng(seed)
    logits = np.cumsum(rng.normal(0.0, 0.1, (rows, 3)), axis=0) * 0.3 + rng.normal(0.0, 0.3, (rows, 3))
    raw = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out: FloatArray = TemperatureShrinkCalibration(1.0, 0.3, PRIOR).transform(raw)
    return out


def _p_star(probs: FloatArray, share: float) -> float:
    """The threshold that makes ``share`` of the rows signals."""
    return float(np.quantile(np.max(probs[:, [0, 2]], axis=1), 1.0 - share))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_pipeline_is_consistent_with_itself(seed: int) -> None:
    probs = _probs(seed)
    rates = SignalRates.of(probs, probs, _p_star(probs, 0.2), label_horizon=6)
    assert rates.shipped_rate == rates.gated_rate == pytest.approx(0.2, abs=0.01)
    assert 0 < rates.sampling_error < 0.2 and rates.rows == 600
    assert rates.consistent and rates.to_json()["consistent"] is True


@pytest.mark.parametrize("seed", [1, 2])
def test_a_sharper_shipped_pipeline_is_caught(seed: int) -> None:
    """The check can fail: the same outputs made sharper (a temperature of 0.5 on the probabilities, as an
    in-sample refit would make them) signal on far more rows at the same p*. (Not every series: where
    sharpening lifts p_neutral on the rows near p*, the directional rate barely moves, as in seed 3.)"""
    probs = _probs(seed)
    sharper = TemperatureShrinkCalibration(0.5, 0.0, PRIOR).transform(probs)
    rates = SignalRates.of(probs, sharper, _p_star(probs, 0.2), label_horizon=6)
    assert rates.shipped_rate > rates.gated_rate + rates.sampling_error
    assert not rates.consistent


def test_too_few_rows_leave_the_sampling_error_unknown() -> None:
    probs = _probs(4, rows=8)
    rates = SignalRates.of(probs, probs, _p_star(probs, 0.5), label_horizon=6)
    assert math.isinf(rates.sampling_error)
    assert rates.to_json()["sampling_error"] is None
