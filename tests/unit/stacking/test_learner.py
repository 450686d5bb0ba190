"""Meta-learner: time-ordered early stopping, exact text round trip, determinism, refusals, and the whole
meta stage on data with a planted signal (beats the class prior on a later hold-out)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from trainfarm.shared.dataset.labels import class_weights, sample_weights
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.evaluation.metrics import class_prior, evaluate, log_loss, prior_probs
from trainfarm.shared.evaluation.trading import choose_p_star, periods_per_year
from trainfarm.shared.stacking.isotonic import IsotonicCalibrator
from trainfarm.shared.stacking.layout import meta_feature_names, stack_features
from trainfarm.shared.stacking.learner import MIN_META_ROWS, MetaModel, fit_meta

MODELS = [f"m{i}" for i in range(8)]
FIT = {
    "rounds": 300,
    "learning_rate": 0.05,
    "early_stopping_rounds": 20,
    "holdout_fraction": 0.2,
    "threads": 1,
    "seed": 7,
}


def softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass
class Planted:
    """Rows in time order: 8 base models' probabilities, labels and forward log returns."""

    probs: list[npt.NDArray[np.float64]]
    y: npt.NDArray[np.int64]
    fwd: npt.NDArray[np.float64]


def planted(n: int, seed: int, strength: float = 1.5) -> Planted:
    """A latent signal ``s`` drives the class (down/neutral/up ~ softmax(-a s, 0.4, a s)), unbalanced.

    Each base model sees ``s`` through its own noise and has its own confidence (some over-, some
    under-confident), so the models disagree and a stack of them carries more than any one.
    """
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    true_p = softmax(np.stack([-strength * s - 0.3, np.full(n, 0.4), strength * s], axis=1))
    y = np.array([rng.choice(3, p=p) for p in true_p], dtype=np.int64)
    move = np.array([-0.01, 0.0, 0.01])[y]
    fwd = move + rng.normal(scale=0.004, size=n)
    probs = []
    for j in range(8):
        seen = s + rng.normal(scale=0.5 + 0.15 * j, size=n)
        conf = 0.5 + 0.25 * j
        probs.append(softmax(np.stack([-conf * seen, np.full(n, 0.2 * (j % 3)), conf * seen], axis=1)))
    return Planted(probs=probs, y=y, fwd=fwd)


def noise_rows(n: int, seed: int, k: int = 10) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)), rng.integers(0, 3, size=n)


def test_text_round_trip_is_exact_and_keeps_only_best_iteration() -> None:
    x, y = noise_rows(600, 1)
    model = fit_meta(x, y, np.ones(600), **FIT)
    assert 1 <= model.best_iteration < FIT["rounds"]  # pure noise: early stopping fires
    assert model.holdout_logloss is not None and model.holdout_logloss > 0
    assert model.booster.num_trees() == 3 * model.best_iteration
    text = model.to_text()
    loaded = MetaModel.from_text(text)
    assert loaded.to_text() == text
    assert loaded.best_iteration == model.best_iteration
    assert loaded.holdout_logloss is None
    assert loaded.feature_names == model.feature_names
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    probs = model.predict_proba(x)
    assert probs.shape == (600, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert model.predict_proba(x[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match="n x 10"):
        model.predict_proba(x[:, :9])


def test_deterministic_with_several_threads() -> None:
    x, y = noise_rows(800, 2)
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=800)
    a = fit_meta(x, y, w, **{**FIT, "threads": 2})
    b = fit_meta(x, y, w, **{**FIT, "threads": 2})
    assert a.to_text() == b.to_text()
    assert a.holdout_logloss == b.holdout_logloss


def test_holdout_is_the_time_ordered_tail() -> None:
    # x0 predicts the class in the first 80% of rows; in the last 20% down and up swap (neutral stays).
    # Early stopping on the tail therefore stops after the few rounds that still help neutral. Were the
    # hold-out drawn at random (mostly from the first 80%), the signal would keep validation improving
    # for many rounds, as it does when the tail is consistent.
    rng = np.random.default_rng(4)
    n = 2000
    x = rng.normal(size=(n, 5))
    y = np.digitize(x[:, 0], [-0.5, 0.5]).astype(np.int64)
    tail = slice(int(n * 0.8), n)
    y[tail] = 2 - y[tail]
    reversed_tail = fit_meta(x, y, np.ones(n), **FIT)
    y_same = np.digitize(x[:, 0], [-0.5, 0.5]).astype(np.int64)
    consistent = fit_meta(x, y_same, np.ones(n), **FIT)
    assert reversed_tail.best_iteration <= 10
    assert consistent.best_iteration > 50


def test_refuses_too_few_rows_and_missing_class() -> None:
    x, y = noise_rows(MIN_META_ROWS - 1, 5)
    with pytest.raises(DatasetError, match="at least 50"):
        fit_meta(x, y, np.ones(y.size), **FIT)
    x, _ = noise_rows(200, 6)
    y = np.zeros(200, dtype=np.int64)
    y[::2] = 1
    y[-10:] = 2  # "up" only in the early-stopping tail: the fitted part never sees it
    with pytest.raises(DatasetError, match="up absent"):
        fit_meta(x, y, np.ones(200), **FIT)
    x, y = noise_rows(100, 7)
    with pytest.raises(ValueError, match="positive"):
        fit_meta(x, y, np.zeros(100), **FIT)
    with pytest.raises(ValueError, match="holdout_fraction"):
        fit_meta(x, y, np.ones(100), **{**FIT, "holdout_fraction": 1.0})


def test_planted_signal_meta_stage_end_to_end() -> None:
    """Train 60% / calibrate 20% / test 20%, in time order, like a retrain run's meta stage."""
    data = planted(5000, seed=11)
    n = data.y.size
    tr, cal = slice(0, int(0.6 * n)), slice(int(0.6 * n), int(0.8 * n))
    te = slice(int(0.8 * n), n)
    x = stack_features(data.probs, MODELS)
    names = meta_feature_names(MODELS)

    weights = sample_weights(data.y[tr], class_weights(data.y[tr]))
    model = fit_meta(x[tr], data.y[tr], weights, **FIT, feature_names=names)
    assert model.feature_names == tuple(names)

    calibrator = IsotonicCalibrator().fit(model.predict_proba(x[cal]), data.y[cal])
    cal_probs = calibrator.transform(model.predict_proba(x[cal]))
    test_probs = calibrator.transform(model.predict_proba(x[te]))
    np.testing.assert_allclose(test_probs.sum(axis=1), 1.0, atol=1e-12)

    prior = prior_probs(class_prior(data.y[tr]), test_probs.shape[0])
    assert log_loss(test_probs, data.y[te]) < 0.9 * log_loss(prior, data.y[te])

    p_star = choose_p_star(cal_probs, data.fwd[cal], fee=0.002, min_signals=20)
    base_test = {name: p[te] for name, p in zip(MODELS, data.probs, strict=True)}
    metrics = evaluate(
        meta_probs_test=test_probs,
        y_test=data.y[te],
        fwd_return_test=data.fwd[te],
        y_prior=data.y[tr],
        base_probs_test=base_test,
        p_star=p_star,
        fee=0.002,
        periods_per_year=periods_per_year(60),
        ece_bins=10,
    )
    json.dumps(metrics, allow_nan=False)
    assert isinstance(metrics["logloss_vs_prior"], float) and metrics["logloss_vs_prior"] > 0.1
    trading = metrics["trading"]
    assert isinstance(trading, dict)
    assert trading["signals"] > 0 and trading["sharpe"] > 0 and trading["win_rate"] > 0.5
