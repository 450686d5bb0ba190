"""Choosing the stacker of a run: the candidate with the lowest purged out-of-fold log-loss.

The base models' out-of-fold probabilities on the train split are the only rows a stacker may learn
from. Every candidate is scored the same way on them: a time-ordered K-fold whose validation blocks are
contiguous and whose training rows keep ``purge`` rows away from each block on both sides (labels of
neighbouring rows overlap by up to the label horizon). The candidates (``prior``, ``best_base``, ``pool``,
``logreg``, ``lightgbm`` with at least :data:`MIN_BOOSTER_ROWS` rows) and the rule that keeps the prior
unless another beats it by more than one standard error (:func:`_choose`): docs/ml.md#stacking-calibration-p.

Regression strength comes from :data:`C_GRID`, chosen by the same purged folds. No candidate is fitted with
class weights, so nothing needs undoing before scoring. The result is a :mod:`trainfarm_client.stackers`
stacker, so the farm and bots apply it with the same code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.evaluation.bounds import block_mean_bound
from trainfarm.shared.evaluation.metrics import log_loss
from trainfarm.shared.stacking.learner import MetaModel, fit_meta
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.stackers import LinearStacker, linear_inputs
from trainfarm_client.stacking import meta_feature_names, stack_features

N_CLASSES = len(CLASSES)
#: Regularisation strengths (inverse L2 weight) tried for every linear stacker.
C_GRID = (0.01, 0.1, 1.0)
#: Time-ordered folds used to score the candidates.
N_FOLDS = 4
#: The 55-feature LightGBM stacker needs at least this many rows to be a candidate.
MIN_BOOSTER_ROWS = 2000
#: Fewer out-of-fold rows than this cannot tell a candidate from the prior: the stacker is then the prior.
#: Below it the four validation folds hold under 50 rows each, and the standard error the choice rule
#: compares against is itself too noisy (on a year of daily bars, ~110 rows, a candidate chosen this way
#: scored 2% worse than the prior on test). The real 24h window gives ~500 rows; 12h ~750.
MIN_STACK_ROWS = 200
_PRIOR_FLOOR = 1e-4
CANDIDATES = ("prior", "best_base", "pool", "logreg", "lightgbm")


class _Predicts(Protocol):
    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray: ...


@dataclass(frozen=True)
class BoosterParams:
    """How the LightGBM candidate trains (from the config's training section)."""

    rounds: int
    learning_rate: float
    early_stopping_rounds: int
    holdout_fraction: float
    seed: int


@dataclass(frozen=True)
class FittedBooster:
    """The 55-feature LightGBM stacker with the model order it stacks, applied like a linear stacker."""

    model: MetaModel
    models: tuple[str, ...]

    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray:
        return self.model.predict_proba(stack_features([base[m] for m in self.models], self.models))


@dataclass(frozen=True)
class StackerChoice:
    """The chosen stacker, refitted on every row, and every candidate's purged out-of-fold log-loss.

    ``stacker`` is a :class:`LinearStacker` or, for ``lightgbm``, a :class:`FittedBooster`. ``scores`` holds
    ``None`` for a candidate that was not eligible (too few rows). ``best_base`` names the base model the
    ``best_base`` candidate used.
    """

    chosen: str
    stacker: LinearStacker | FittedBooster
    scores: dict[str, float | None]
    best_base: str
    rows: int
    c: float | None  #: the regularisation strength of a linear stacker

    def to_json(self) -> dict[str, object]:
        return {
            "chosen": self.chosen,
            "cv_logloss": dict(self.scores),
            "best_base": self.best_base,
            "rows": self.rows,
            "c": self.c,
            "folds": N_FOLDS,
        }


def purged_folds(n: int, k: int, purge: int) -> list[tuple[IntArray, IntArray]]:
    """``k`` contiguous validation blocks in time order; training rows keep ``purge`` rows away from each."""
    if n < k:
        raise ValueError(f"{n} rows cannot make {k} folds")
    bounds = np.linspace(0, n, k + 1).astype(int)
    rows = np.arange(n)
    folds = []
    for start, stop in itertools.pairwise(bounds):
        val = rows[start:stop]
        train = rows[(rows < start - purge) | (rows >= stop + purge)]
        folds.append((train, val))
    return folds


def class_shares(y: IntArray) -> FloatArray:
    """Class shares of ``y``, floored (no class ever gets zero) and renormalised."""
    shares = np.bincount(y, minlength=N_CLASSES).astype(np.float64) / max(1, y.size)
    floored = np.maximum(shares, _PRIOR_FLOOR)
    out: FloatArray = floored / floored.sum()
    return out


def prior_stacker(y: IntArray) -> LinearStacker:
    """The class prior of ``y`` as a stacker (no inputs, log-shares as intercept)."""
    return LinearStacker((), "models", np.zeros((0, N_CLASSES)), np.log(class_shares(y)))


def fit_linear(
    base: Mapping[str, FloatArray], y: IntArray, models: Sequence[str], inputs: str, c: float
) -> LinearStacker:
    """Multinomial logistic regression on the log-probabilities of ``models`` (unweighted)."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < N_CLASSES:
        return prior_stacker(y)  # a class never seen: nothing to learn its odds from
    x = linear_inputs(base, models, inputs, y.size)
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(x, y)
    return LinearStacker(
        tuple(models), inputs, np.asarray(model.coef_, dtype=np.float64).T.copy(), model.intercept_.copy()
    )


def choose_stacker(
    base: Mapping[str, FloatArray],
    y: IntArray,
    order: Sequence[str],
    *,
    purge: int,
    booster: BoosterParams,
    threads: int,
) -> StackerChoice:
    """Score every candidate on purged time-ordered folds of ``base`` (out-of-fold rows), refit the best."""
    n = int(y.size)
    if n == 0:
        raise DatasetError("no out-of-fold rows to choose a stacker on")
    oof_loss = {m: log_loss(base[m], y) for m in order}
    best = min(order, key=lambda m: oof_loss[m])
    if n < MIN_STACK_ROWS or n < N_FOLDS * (2 * purge + 10):
        scores: dict[str, float | None] = dict.fromkeys(CANDIDATES)
        return StackerChoice("prior", prior_stacker(y), scores, best, n, None)
    folds = purged_folds(n, N_FOLDS, purge)
    linear = {
        "best_base": ([best], "models"),
        "pool": (list(order), "pool"),
        "logreg": (list(order), "models"),
    }
    rows = {"prior": _cv(folds, y, lambda tr: prior_stacker(y[tr]), base)}
    chosen_c: dict[str, float] = {}
    for name, (models, inputs) in linear.items():
        by_c = {c: _cv(folds, y, _linear_fitter(base, y, models, inputs, c), base) for c in C_GRID}
        chosen_c[name] = min(by_c, key=lambda c: float(by_c[c].mean()))
        rows[name] = by_c[chosen_c[name]]
    if n >= MIN_BOOSTER_ROWS:
        rows["lightgbm"] = _cv(folds, y, _booster_fitter(base, y, order, booster, threads), base)
    scores = {k: (float(rows[k].mean()) if k in rows else None) for k in CANDIDATES}
    chosen = _choose(rows, purge)
    if chosen == "prior":
        return StackerChoice(chosen, prior_stacker(y), scores, best, n, None)
    if chosen == "lightgbm":
        model = _booster_fitter(base, y, order, booster, threads)(np.arange(n))
        return StackerChoice(chosen, model, scores, best, n, None)
    models, inputs = linear[chosen]
    stacker = fit_linear(base, y, models, inputs, chosen_c[chosen])
    return StackerChoice(chosen, stacker, scores, best, n, chosen_c[chosen])


def _choose(rows: Mapping[str, FloatArray], purge: int) -> str:
    """The candidate with the lowest out-of-fold log-loss among those that beat the prior clearly.

    A candidate must beat the prior by more than one standard error of the paired per-row difference. The
    rows are in time order (the validation folds, concatenated) and dependent (overlapping labels,
    persistent inputs), so the standard error is that of the means of about 20 contiguous blocks of at
    least ``purge`` rows (:func:`trainfarm.shared.evaluation.bounds.block_mean_bound`), not of the rows
    divided by the horizon, which assumed the dependence ends with the label window. On a few hundred
    noisy rows a lead of a fraction of a percent is as likely luck as skill, and the prior is what a run
    without signal should ship.
    """
    prior = rows["prior"]
    clear = []
    for name, losses in rows.items():
        if name == "prior" or not np.isfinite(losses).all():
            continue
        gain = block_mean_bound(prior - losses, label_horizon=max(1, purge))
        if gain.mean - gain.se > 0:
            clear.append(name)
    return min(clear, key=lambda k: float(rows[k].mean())) if clear else "prior"


def _linear_fitter(
    base: Mapping[str, FloatArray], y: IntArray, models: Sequence[str], inputs: str, c: float
) -> Callable[[IntArray], _Predicts]:
    def fit(train: IntArray) -> _Predicts:
        return fit_linear(_rows(base, train), y[train], models, inputs, c)

    return fit


def _rows(base: Mapping[str, FloatArray], idx: IntArray) -> dict[str, FloatArray]:
    return {m: p[idx] for m, p in base.items()}


def _cv(
    folds: list[tuple[IntArray, IntArray]],
    y: IntArray,
    fit: Callable[[IntArray], _Predicts],
    base: Mapping[str, FloatArray],
) -> FloatArray:
    """Per-row log-loss on every validation row, of stackers fitted on each fold's training rows."""
    losses = []
    for train, val in folds:
        stacker = fit(train)
        losses.append(_row_losses(stacker.predict(_rows(base, val), val.size), y[val]))
    return np.concatenate(losses)


def _row_losses(probs: FloatArray, y: IntArray) -> FloatArray:
    out: FloatArray = -np.log(np.clip(probs[np.arange(y.size), y], 1e-15, 1.0))
    return out


def _booster_fitter(
    base: Mapping[str, FloatArray], y: IntArray, order: Sequence[str], params: BoosterParams, threads: int
) -> Callable[[IntArray], FittedBooster]:
    def fit(train: IntArray) -> FittedBooster:
        models = tuple(order)
        model = fit_meta(
            stack_features([base[m][train] for m in models], models),
            y[train],
            np.ones(train.size),
            rounds=params.rounds,
            learning_rate=params.learning_rate,
            early_stopping_rounds=params.early_stopping_rounds,
            holdout_fraction=params.holdout_fraction,
            threads=threads,
            seed=params.seed,
            feature_names=meta_feature_names(list(models)),
        )
        return FittedBooster(model, models)

    return fit
