"""Honest evaluation of a candidate: proper scores, baselines, calibration and shape, and the report.

The fee-aware trading simulation and the choice of p* are :mod:`trainfarm.shared.evaluation.trading`.

Every function is pure and works on plain arrays. Probabilities are ``n x 3`` float arrays with the columns
of :data:`trainfarm.shared.dataset.labels.CLASSES` (down, neutral, up); labels are ints 0/1/2. ``fwd_return``
is the LOG return over the label horizon (the ``fwd_return`` column of
:func:`trainfarm.shared.dataset.labels.add_labels`). PR-AUC is reported as lift over the class's
prevalence (1.0: no better than chance).

What is measured, against which baselines: docs/ml.md#evaluation. Non-finite numbers never reach the
JSON: :func:`evaluate` writes ``None`` where a value is undefined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.evaluation.trading import simulate
from trainfarm_client.arrays import FloatArray, IntArray

# One implementation, in the bot client (its stacking and calibration check with it); farm code imports
# it from here as before.
from trainfarm_client.probs import check_probs as check_probs  # noqa: PLC0414 - explicit re-export

N_CLASSES = len(CLASSES)

#: Probabilities are clipped to this before taking logs (the sklearn convention), so one impossible
#: prediction costs ~34.5 nats instead of infinity.
_LOG_EPS = 1e-15
#: Smallest share a class may take in the prior baseline: a class absent from train must not make the
#: baseline's log-loss infinite (that would flatter every candidate).
_PRIOR_FLOOR = 1e-6


# --------------------------------------------------------------------------------------------- inputs


def check_labels(y: npt.ArrayLike, n: int | None = None, name: str = "y") -> IntArray:
    """Return ``y`` as a 1-d int64 array of class ids 0..2 (of length ``n`` when given)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids 0..{N_CLASSES - 1}, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if out.size and (out.min() < 0 or out.max() >= N_CLASSES):
        raise ValueError(f"{name} must hold class ids 0..{N_CLASSES - 1}; found {sorted(set(out.tolist()))}")
    if n is not None and out.size != n:
        raise ValueError(f"{name} has {out.size} rows but the probabilities have {n}")
    return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------------------------- proper scores


def log_losses(probs: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """Each row's negative log-likelihood of its true class (natural log; probabilities clipped at 1e-15)."""
    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])
    picked = p[np.arange(labels.size), labels]
    out: FloatArray = -np.log(np.clip(picked, _LOG_EPS, 1.0))
    return out


def log_loss(probs: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Mean negative log-likelihood of the true class (natural log; probabilities clipped at 1e-15)."""
    losses = log_losses(probs, y)
    if losses.size == 0:
        raise ValueError("log_loss needs at least one row")
    return float(losses.mean())


def brier(probs: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Multiclass Brier score: mean over rows of the sum over classes of ``(p - onehot)^2`` (0 = perfect)."""
    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])
    if labels.size == 0:
        raise ValueError("brier needs at least one row")
    onehot = np.eye(N_CLASSES)[labels]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def class_prior(y_train: npt.ArrayLike) -> FloatArray:
    """Class shares of the training labels, each floored at 1e-6 and renormalised to sum to 1."""
    labels = check_labels(y_train, name="y_train")
    if labels.size == 0:
        raise ValueError("class_prior needs at least one training label")
    shares = np.bincount(labels, minlength=N_CLASSES).astype(np.float64) / labels.size
    floored: FloatArray = np.maximum(shares, _PRIOR_FLOOR)
    out: FloatArray = floored / floored.sum()
    return out


def prior_probs(prior: npt.ArrayLike, n: int) -> FloatArray:
    """The baseline's predictions: ``prior`` repeated for ``n`` rows (``n x 3``)."""
    p = check_probs(np.asarray(prior, dtype=np.float64).reshape(1, -1), "prior")
    return np.repeat(p, n, axis=0)


# ----------------------------------------------------------------------------- calibration & shape


def expected_calibration_error(probs: npt.ArrayLike, y: npt.ArrayLike, bins: int = 10) -> float:
    """Top-label ECE with ``bins`` equal-width confidence bins on [0, 1].

    For each bin: |accuracy of the argmax class - mean top probability|, weighted by the bin's share of
    rows. A confidence of exactly 1.0 falls into the last bin. Empty bins contribute nothing.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])
    if labels.size == 0:
        raise ValueError("expected_calibration_error needs at least one row")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    idx = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    conf_sum = np.bincount(idx, weights=confidence, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=bins)
    # Per bin: count * |mean acc - mean conf| = |acc_sum - conf_sum|; summing and dividing by n weights it.
    return float(np.sum(np.abs(acc_sum - conf_sum)) / labels.size)


def pr_auc_lift(probs: npt.ArrayLike, y: npt.ArrayLike) -> dict[str, float | None]:
    """Per class: average precision of ``probs[:, k]`` for ``y == k``, divided by the class's prevalence.

    1.0 is what a random ranking scores on average; above 1 the model ranks the class better than chance.
    A class absent from ``y`` has no defined PR-AUC: its value is ``None`` (JSON null), never NaN.
    """
    from sklearn.metrics import average_precision_score

    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])
    out: dict[str, float | None] = {}
    for k, name in enumerate(CLASSES):
        positives = labels == k
        prevalence = float(positives.mean()) if labels.size else 0.0
        if prevalence == 0.0:
            out[name] = None
            continue
        ap = float(average_precision_score(positives, p[:, k]))
        out[name] = ap / prevalence
    return out


def predicted_class_share(probs: npt.ArrayLike) -> dict[str, float]:
    """Share of rows whose argmax is each class, keyed down / neutral / up (zeros for no rows)."""
    p = check_probs(probs)
    counts = np.bincount(p.argmax(axis=1), minlength=N_CLASSES).astype(np.float64)
    shares = counts / max(p.shape[0], 1)
    return {name: float(shares[k]) for k, name in enumerate(CLASSES)}


def label_share(y: npt.ArrayLike) -> dict[str, float]:
    """Share of rows of each true class, keyed down / neutral / up (zeros for no rows)."""
    labels = check_labels(y)
    counts = np.bincount(labels, minlength=N_CLASSES).astype(np.float64)
    return {name: float(counts[k] / max(labels.size, 1)) for k, name in enumerate(CLASSES)}


def mean_confidence(probs: npt.ArrayLike) -> float:
    """Mean top-class probability (0.0 for no rows)."""
    p = check_probs(probs)
    return float(p.max(axis=1).mean()) if p.shape[0] else 0.0


# ------------------------------------------------------------------------------------ the report


def evaluate(
    *,
    meta_probs_test: npt.ArrayLike,
    y_test: npt.ArrayLike,
    fwd_return_test: npt.ArrayLike,
    y_prior: npt.ArrayLike,
    base_probs_test: Mapping[str, npt.ArrayLike],
    p_star: float,
    fee: float,
    periods_per_year: float,
    ece_bins: int,
    best_base: str | None = None,
    bar_return_test: npt.ArrayLike | None = None,
    horizon: int = 1,
) -> dict[str, object]:
    """Score the calibrated meta-learner on the test split; returns a JSON-safe nested dict.

    Keys: ``meta`` (logloss, brier, ece, mean_confidence, predicted_share, pr_auc_lift), ``prior`` (the
    class shares of ``y_prior`` as a constant prediction: logloss, brier; the farm passes the calibration
    split's labels, the most recent the model may use and the same baseline its gates use),
    ``best_base`` (``best_base`` when given, the base
    model chosen out of fold, never on test; else the one with the lowest test log-loss: model, logloss,
    brier), ``logloss_vs_prior`` (``(prior - meta) / prior``, positive = better than the baseline),
    ``trading`` (:class:`TradingResult` fields at ``p_star``; ``bar_return_test`` and ``horizon`` as in
    :func:`simulate`), ``p_star``, ``rows`` and ``label_share``
    (true class shares of the test rows).
    """
    meta = check_probs(meta_probs_test, "meta_probs_test")
    n = meta.shape[0]
    y = check_labels(y_test, n, "y_test")
    if n == 0:
        raise ValueError("evaluate needs at least one test row")
    if not base_probs_test:
        raise ValueError("evaluate needs the base models' test probabilities to find the best one")
    prior = prior_probs(class_prior(y_prior), n)
    meta_ll = log_loss(meta, y)
    prior_ll = log_loss(prior, y)
    base_scores = {
        name: (log_loss(check_probs(bp, f"base_probs_test[{name!r}]"), y), brier(bp, y))
        for name, bp in base_probs_test.items()
    }
    if best_base is not None and best_base not in base_scores:
        raise ValueError(f"best_base {best_base!r} is not among the base models")
    best_name = best_base or min(base_scores, key=lambda name: (base_scores[name][0], name))
    trading = simulate(
        meta,
        fwd_return_test,
        p_star=p_star,
        fee=fee,
        periods_per_year=periods_per_year,
        bar_return=bar_return_test,
        horizon=horizon,
    )
    return {
        "meta": {
            "logloss": meta_ll,
            "brier": brier(meta, y),
            "ece": expected_calibration_error(meta, y, ece_bins),
            "mean_confidence": mean_confidence(meta),
            "predicted_share": predicted_class_share(meta),
            "pr_auc_lift": pr_auc_lift(meta, y),
        },
        "prior": {"logloss": prior_ll, "brier": brier(prior, y)},
        "best_base": {
            "model": best_name,
            "logloss": base_scores[best_name][0],
            "brier": base_scores[best_name][1],
        },
        "logloss_vs_prior": _finite_or_none((prior_ll - meta_ll) / prior_ll) if prior_ll > 0 else None,
        "trading": trading.to_json(),
        "p_star": float(p_star),
        "rows": n,
        "label_share": label_share(y),
    }


def headline(metrics: Mapping[str, object]) -> dict[str, float]:
    """The few numbers a CLI table shows, flattened from an :func:`evaluate` dict (NaN where absent)."""

    def get(*path: str) -> float:
        node: object = metrics
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                return math.nan
            node = node[key]
        return float(node) if isinstance(node, int | float) else math.nan

    return {
        "meta_logloss": get("meta", "logloss"),
        "prior_logloss": get("prior", "logloss"),
        "best_base_logloss": get("best_base", "logloss"),
        "brier": get("meta", "brier"),
        "ece": get("meta", "ece"),
        "sharpe": get("trading", "sharpe"),
        "win_rate": get("trading", "win_rate"),
        "signals": get("trading", "signals"),
    }
