"""decide(): the bot's trading rule is the one the farm's trading simulation evaluated the pack with."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trainfarm.shared.evaluation.trading import simulate
from trainfarm_client.predictor import Decision, decide


def test_a_signal_needs_the_larger_move_at_or_above_p_star() -> None:
    assert decide([0.2, 0.3, 0.5], 0.5) == Decision(signal="up", probability=0.5, p_star=0.5)
    assert decide([0.2, 0.3, 0.5], 0.51) == Decision(signal=None, probability=0.5, p_star=0.51)
    assert decide([0.6, 0.3, 0.1], 0.55) == Decision(signal="down", probability=0.6, p_star=0.55)
    # Neutral dominating gives no signal however sure it is: only moves trade.
    assert decide([0.05, 0.9, 0.05], 0.34).signal is None
    # An exact tie between the moves goes up, as in the simulation (p_up >= p_down is long).
    assert decide([0.45, 0.1, 0.45], 0.4).signal == "up"


def test_rows_in_any_array_form_and_nan_rows() -> None:
    row = [0.1, 0.2, 0.7]
    expected = decide(row, 0.6)
    assert decide(tuple(row), 0.6) == expected
    assert decide(np.array(row), 0.6) == expected
    assert decide(np.array([row]), 0.6) == expected  # a 1 x 3 slice of predict_features' output
    nan = decide([math.nan, math.nan, math.nan], 0.0)
    assert nan.signal is None and math.isnan(nan.probability)
    with pytest.raises(ValueError, match="one row"):
        decide(np.full((2, 3), 1 / 3), 0.5)
    with pytest.raises(ValueError, match="one row"):
        decide([0.5, 0.5], 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        expected.signal = None  # type: ignore[misc]


def test_decide_agrees_with_the_trading_simulation_row_by_row() -> None:
    """For one row and a positive forward return, the simulation counts a signal exactly when decide()
    gives one, and makes money exactly when decide() says up."""
    rng = np.random.default_rng(7)
    rows = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    rows[:20, 0] = rows[:20, 2]  # exact ties between the moves
    rows[:20] /= rows[:20].sum(axis=1, keepdims=True)
    for row, p_star in zip(rows, rng.uniform(0.3, 0.8, size=rows.shape[0]), strict=True):
        result = simulate(row[None, :], np.array([0.01]), p_star=p_star, fee=0.0, periods_per_year=1.0)
        decision = decide(row, p_star)
        assert (result.signals == 1) == (decision.signal is not None)
        if decision.signal is not None:
            assert (result.mean_return > 0) == (decision.signal == "up")
