"""Choosing the stacker by purged out-of-fold log-loss: never worse than the prior, better with signal."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from trainfarm.shared.evaluation.metrics import log_loss
from trainfarm.shared.stacking.selection import (
    MIN_STACK_ROWS,
    BoosterParams,
    choose_stacker,
    class_shares,
    fit_linear,
    purged_folds,
)
from trainfarm.shared.stacking.temperature import fit_temperature_shrink
from trainfarm_client.stackers import LinearStacker, linear_inputs

MODELS = tuple(f"m{i}" for i in range(8))
BOOSTER = BoosterParams(rounds=50, learning_rate=0.1, early_stopping_rounds=5, holdout_fraction=0.2, seed=7)
SHARES = np.array([0.3, 0.4, 0.3])


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(3, size=n, p=SHARES).astype(np.int64)


def _noise(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Base models that know nothing: confident-looking random distributions."""
    return {m: rng.dirichlet([2.0, 2.0, 2.0], size=n) for m in MODELS}


def _informed(rng: np.random.Generator, y: np.ndarray) -> dict[str, np.ndarray]:
    """Noise, except model m3, which puts extra mass on the true class."""
    base = _noise(rng, y.size)
    onehot = np.eye(3)[y]
    base["m3"] = 0.6 * base["m3"] + 0.4 * onehot
    return base


def test_purged_folds_cover_every_row_once_and_keep_the_purge() -> None:
    folds = purged_folds(100, 4, purge=5)
    assert np.array_equal(np.sort(np.concatenate([v for _, v in folds])), np.arange(100))
    for train, val in folds:
        assert np.all(np.diff(val) == 1)  # contiguous, in time order
        gaps = np.abs(train[:, None] - val[None, :]).min(axis=1)
        assert gaps.min() > 5  # no training row within the purge of the block
    with pytest.raises(ValueError):
        purged_folds(3, 4, purge=0)


def test_on_noise_the_chosen_stacker_is_no_worse_than_the_prior_out_of_sample() -> None:
    rng = np.random.default_rng(1)
    y, y_cal, y_test = _labels(rng, 3000), _labels(rng, 600), _labels(rng, 2000)
    choice = choose_stacker(_noise(rng, y.size), y, MODELS, purge=3, booster=BOOSTER, threads=1)
    assert choice.scores["prior"] is not None
    assert choice.scores[choice.chosen] <= choice.scores["prior"]  # chosen by the same yardstick
    cal_raw = choice.stacker.predict(_noise(rng, y_cal.size), y_cal.size)
    calibrator = fit_temperature_shrink(cal_raw, y_cal)
    test_probs = calibrator.transform(choice.stacker.predict(_noise(rng, y_test.size), y_test.size))
    prior_loss = log_loss(np.repeat(class_shares(y_cal)[None, :], y_test.size, axis=0), y_test)
    assert log_loss(test_probs, y_test) <= prior_loss * 1.005


def test_with_signal_a_learned_stacker_wins_and_beats_the_prior_clearly() -> None:
    rng = np.random.default_rng(2)
    y = _labels(rng, 3000)
    choice = choose_stacker(_informed(rng, y), y, MODELS, purge=3, booster=BOOSTER, threads=1)
    assert choice.chosen != "prior" and choice.best_base == "m3"
    prior, chosen = choice.scores["prior"], choice.scores[choice.chosen]
    assert prior is not None and chosen is not None and chosen < 0.9 * prior
    assert choice.scores["lightgbm"] is not None  # enough rows for the 55-feature booster to compete


def test_too_few_rows_give_the_prior() -> None:
    rng = np.random.default_rng(3)
    y = _labels(rng, MIN_STACK_ROWS - 1)
    choice = choose_stacker(_informed(rng, y), y, MODELS, purge=3, booster=BOOSTER, threads=1)
    assert choice.chosen == "prior" and all(v is None for v in choice.scores.values())
    probs = choice.stacker.predict(_noise(rng, 5), 5)
    assert np.allclose(probs, class_shares(y))


@pytest.mark.parametrize("inputs", ["models", "pool"])
def test_a_linear_stacker_applies_exactly_what_sklearn_fitted_and_survives_json(inputs: str) -> None:
    rng = np.random.default_rng(4)
    y = _labels(rng, 800)
    base = _informed(rng, y)
    stacker = fit_linear(base, y, list(MODELS), inputs, c=0.5)
    x = linear_inputs(base, MODELS, inputs, y.size)
    reference = LogisticRegression(C=0.5, max_iter=2000).fit(x, y)
    np.testing.assert_allclose(stacker.predict(base, y.size), reference.predict_proba(x), atol=1e-9)
    again = LinearStacker.from_json(stacker.to_json())
    np.testing.assert_array_equal(again.predict(base, y.size), stacker.predict(base, y.size))
