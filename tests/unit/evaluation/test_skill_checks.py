"""The skill checks on hand-built rows: direction is told apart from knowing the neutral band."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.evaluation.bounds import block_mean_bound
from trainfarm.shared.evaluation.metrics import class_prior
from trainfarm.shared.evaluation.scored import ScoredPredictions
from trainfarm.shared.evaluation.skill_checks import direction_checks, prior_checks
from trainfarm.shared.evaluation.trading import periods_per_year
from trainfarm.shared.timeframes import Timeframe

TF = Timeframe.H1
TH = FarmConfig().params(TF).gates


def _scored(probs: npt.ArrayLike, y: npt.ArrayLike, prior: npt.ArrayLike | None = None) -> ScoredPredictions:
    labels = np.asarray(y, dtype=np.int64)
    returns = (labels - 1) * 0.01
    return ScoredPredictions(
        probs=np.asarray(probs, dtype=np.float64),
        y=labels,
        fwd_return=returns.astype(np.float64),
        prior=class_prior(labels) if prior is None else np.asarray(prior, dtype=np.float64),
        p_star=0.5,
        fee=0.002,
        periods_per_year=periods_per_year(TF.minutes),
        label_horizon=1,
    )


def _drawn(probs: npt.NDArray[np.float64], seed: int) -> npt.NDArray[np.int64]:
    """One label per row drawn from that row's probabilities: a model that is calibrated by construction."""
    rng = np.random.default_rng(seed)
    cum = probs.cumsum(axis=1)
    return (rng.random(probs.shape[0])[:, None] > cum).sum(axis=1).astype(np.int64)


def _band_only(n: int = 1200, seed: int = 3) -> ScoredPredictions:
    """Knows when the price will sit still (calm or wild spells of 24 rows), never which way it moves."""
    rng = np.random.default_rng(seed)
    calm = np.repeat(rng.random(n // 24 + 1) < 0.5, 24)[:n]
    probs = np.where(calm[:, None], [0.15, 0.70, 0.15], [0.40, 0.20, 0.40])
    return _scored(probs, _drawn(probs, seed + 1))


def _directional(n: int = 1200, seed: int = 5, lean: float = 0.2) -> ScoredPredictions:
    """Knows which way spells of 24 rows lean: up/down probabilities 0.4 +- ``lean``, neutral 0.2."""
    rng = np.random.default_rng(seed)
    sign = np.repeat(rng.choice([-1.0, 1.0], n // 24 + 1), 24)[:n]
    probs = np.column_stack([0.4 - lean * sign, np.full(n, 0.2), 0.4 + lean * sign])
    return _scored(probs, _drawn(probs, seed + 1))


def test_knowing_the_neutral_band_beats_the_prior_but_is_no_direction() -> None:
    """The edge the label's volatility band gives on any random walk: real, and worth nothing to the book."""
    cand = _band_only()
    prior = {c.name: c for c in prior_checks(cand, TH)}
    assert prior["logloss_vs_prior"].passed and prior["logloss_vs_prior_bound"].passed
    direction = {c.name: c for c in direction_checks(cand, TH)}
    point, bound = direction["direction_vs_prior"], direction["direction_vs_prior_bound"]
    assert point.value is not None and abs(point.value) < 0.01 and not point.passed
    assert not bound.passed


def test_a_directional_model_passes_with_its_numbers() -> None:
    cand = _directional()
    checks = {c.name: c for c in direction_checks(cand, TH)}
    point, bound = checks["direction_vs_prior"], checks["direction_vs_prior_bound"]
    moved = cand.y != 1
    up = cand.y[moved] == 2
    q = cand.probs[moved, 2] / (cand.probs[moved, 2] + cand.probs[moved, 0])
    r = cand.prior[2] / (cand.prior[2] + cand.prior[0])
    model = -np.log(np.where(up, q, 1 - q))
    base = -np.log(np.where(up, r, 1 - r))
    assert point.value == pytest.approx((base.mean() - model.mean()) / base.mean(), rel=1e-12)
    expected = block_mean_bound(base - model, label_horizon=1).lower(TH.confidence) / base.mean()
    assert bound.value == pytest.approx(expected, rel=1e-12)
    assert point.passed and bound.passed and point.threshold == TH.min_direction_improvement
    assert f"on the {int(moved.sum())} test rows labelled up or down" in point.detail
    lift = float(point.detail.split("PR-AUC lift of up over down ")[1].split(" ")[0])
    assert lift > 1.2  # the up rows rank well above the up share


def test_a_model_leaning_the_wrong_way_fails_direction() -> None:
    cand = _directional()
    flipped = cand.with_probs(cand.probs[:, ::-1], p_star=0.5, name="flipped")
    checks = {c.name: c for c in direction_checks(flipped, TH)}
    assert not checks["direction_vs_prior"].passed and not checks["direction_vs_prior_bound"].passed
    assert checks["direction_vs_prior"].value is not None and checks["direction_vs_prior"].value < 0


def test_direction_cannot_be_judged_without_up_or_down_labels() -> None:
    cand = _scored(np.tile([0.3, 0.4, 0.3], (100, 1)), np.ones(100), prior=[0.3, 0.4, 0.3])
    for check in direction_checks(cand, TH):
        assert (
            not check.passed and check.value is None and "no test row is labelled up or down" in check.detail
        )
