"""The gates' skill checks: does the candidate know more than the class prior, in direction too?

Two questions, each answered on the test rows with a t bound over contiguous blocks
(:mod:`trainfarm.shared.evaluation.bounds`):

- ``logloss_vs_prior`` / ``logloss_vs_prior_bound``: the three-class log-loss against the class prior.
  This gain is not all skill: the label's neutral band is drawn from the trailing volatility, which is
  itself a feature, so even on a random walk a model can learn P(neutral | volatility) and beat the prior
  (the oracle's gain there is 0.1-0.7% by timeframe) without knowing where the price goes.
- ``direction_vs_prior`` / ``direction_vs_prior_bound``: on the rows whose label is up or down, the
  log-loss of p_up / (p_up + p_down) against the prior's up/down ratio. Its true gain is zero on any
  random walk, so a positive bound here is direction, the only thing the book trades. The up/down PR-AUC
  lift is shown beside it.

A series too short to cut into ``min_bound_blocks`` blocks of a label window each fails its bound check
and says so: a gate never passes what it cannot bound.
"""

from __future__ import annotations

import numpy as np

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.evaluation.bounds import MeanBound, block_mean_bound
from trainfarm.shared.evaluation.gate_params import GateThresholds
from trainfarm.shared.evaluation.gate_report import Check, numeric_check
from trainfarm.shared.evaluation.scored import LOG_EPS, ScoredPredictions

DOWN, NEUTRAL, UP = (CLASSES.index(c) for c in ("down", "neutral", "up"))


def bound_check(name: str, bound: MeanBound, scale: float, th: GateThresholds, what: str) -> Check:
    """``name`` passes when the one-sided lower bound of ``bound``'s mean, over ``scale``, is above 0.

    Fails, saying why, when the series is too short for ``th.min_bound_blocks`` blocks.
    """
    pct = round(100 * th.confidence)
    if not bound.honest(th.min_bound_blocks):
        return Check(
            name,
            None,
            0.0,
            ">",
            False,
            f"{what}: {bound.rows} rows make only {bound.blocks} blocks of {bound.block} (a block holds at "
            f"least one label window), fewer than the {th.min_bound_blocks} an honest bound needs: not "
            "bounded, so not passed",
        )
    return numeric_check(
        name,
        bound.lower(th.confidence) / scale,
        ">",
        0.0,
        f"{pct}% one-sided lower bound of {what}: {bound.describe()}",
    )


def prior_checks(cand: ScoredPredictions, th: GateThresholds) -> list[Check]:
    """``logloss_vs_prior`` (point estimate) and ``logloss_vs_prior_bound`` (its lower bound)."""
    prior_row = cand.prior_row_logloss()
    prior_ll, model_ll = float(prior_row.mean()), float(cand.row_logloss().mean())
    rel = (prior_ll - model_ll) / prior_ll if prior_ll > 0 else None
    # The per-row gain is bounded; dividing its bound by the prior's mean loss keeps the sign (the
    # question) and states it in the point estimate's relative units.
    gain = block_mean_bound(prior_row - cand.row_logloss(), label_horizon=cand.label_horizon)
    return [
        numeric_check(
            "logloss_vs_prior",
            rel,
            ">=",
            th.min_logloss_improvement,
            f"relative improvement of the test log-loss {model_ll:.4f} over the class prior's {prior_ll:.4f} "
            f"on {cand.rows} rows",
        ),
        bound_check(
            "logloss_vs_prior_bound", gain, prior_ll if prior_ll > 0 else np.nan, th, "that improvement"
        ),
    ]


def direction_checks(cand: ScoredPredictions, th: GateThresholds) -> list[Check]:
    """``direction_vs_prior`` (point estimate, with the PR-AUC lift) and ``direction_vs_prior_bound``."""
    rows = cand.y != NEUTRAL
    moved = int(rows.sum())
    if moved == 0:
        detail = "no test row is labelled up or down: direction cannot be judged"
        return [
            Check("direction_vs_prior", None, th.min_direction_improvement, ">=", False, detail),
            Check("direction_vs_prior_bound", None, 0.0, ">", False, detail),
        ]
    p = cand.probs[rows]
    up = cand.y[rows] == UP
    q = np.clip(p[:, UP] / np.maximum(p[:, UP] + p[:, DOWN], LOG_EPS), LOG_EPS, 1.0 - LOG_EPS)
    prior = cand.prior
    r = float(np.clip(prior[UP] / (prior[UP] + prior[DOWN]), LOG_EPS, 1.0 - LOG_EPS))
    model = -np.log(np.where(up, q, 1.0 - q))
    base = -np.log(np.where(up, r, 1.0 - r))
    base_ll, model_ll = float(base.mean()), float(model.mean())
    rel = (base_ll - model_ll) / base_ll
    lift = _pr_auc_lift(up, q)
    shown = "undefined (one direction only)" if lift is None else f"{lift:.3f}"
    gain = block_mean_bound(base - model, label_horizon=cand.label_horizon)
    return [
        numeric_check(
            "direction_vs_prior",
            rel,
            ">=",
            th.min_direction_improvement,
            f"relative improvement of the up/down log-loss of p_up / (p_up + p_down), {model_ll:.4f}, over "
            f"the prior's up share {r:.3f}, {base_ll:.4f}, on the {moved} test rows labelled up or down; "
            f"PR-AUC lift of up over down {shown} (1 = no better than the up share)",
        ),
        bound_check("direction_vs_prior_bound", gain, base_ll, th, "that directional improvement"),
    ]


def _pr_auc_lift(up: np.ndarray, q: np.ndarray) -> float | None:
    # Imported here, as in metrics.pr_auc_lift: the worker's parent process imports the gates and must not
    # load scikit-learn (tests/unit/workers/test_celery_config.py).
    from sklearn.metrics import average_precision_score

    share = float(up.mean())
    if share in (0.0, 1.0):
        return None
    return float(average_precision_score(up, q)) / share


__all__ = ["bound_check", "direction_checks", "prior_checks"]
