"""Honest evaluation of a candidate: scores, baselines, calibration and a fee-aware trading simulation.

Every function is pure and works on plain arrays. Probabilities are ``n x 3`` float arrays with the columns
of :data:`trainfarm.shared.labels.CLASSES` (down, neutral, up); labels are ints 0/1/2. ``fwd_return`` is the
LOG return over the label horizon (the ``fwd_return`` column of :func:`trainfarm.shared.labels.add_labels`).

What "honest" means here (DESIGN.md, "Data and ML rules"):

* the meta-learner's test log-loss and Brier score are compared with the class-prior baseline (the
  calibration split's class shares, the most recent the model may use, predicted for every row) and
  with the best single base model on the same rows;
* per-class PR-AUC is reported as *lift* over the class's prevalence, so 1.0 means "no better than chance";
* the decision threshold ``p*`` of the trading simulation is chosen on the calibration split only
  (:func:`choose_p_star` takes calibration arrays and nothing else) and then applied once to test.

Non-finite numbers never reach the JSON: :func:`evaluate` writes ``None`` where a value is undefined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from trainfarm.shared.book import annualised_sharpe, book_pnl
from trainfarm.shared.labels import CLASSES

# One implementation, in the bot client (its stacking and calibration check with it); farm code imports
# it from here as before.
from trainfarm_client.probs import check_probs as check_probs  # noqa: PLC0414 - explicit re-export

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_CLASSES = len(CLASSES)
DOWN, NEUTRAL, UP = 0, 1, 2

#: Probabilities are clipped to this before taking logs (the sklearn convention), so one impossible
#: prediction costs ~34.5 nats instead of infinity.
_LOG_EPS = 1e-15
#: Smallest share a class may take in the prior baseline: a class absent from train must not make the
#: baseline's log-loss infinite (that would flatter every candidate).
_PRIOR_FLOOR = 1e-6
_MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0
#: Coarse grid of p* candidates, added to the calibration quantiles (see :func:`choose_p_star`).
_P_STAR_GRID = np.round(np.arange(0.34, 0.9001, 0.01), 2)
_P_STAR_QUANTILES = np.linspace(0.0, 1.0, 101)


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


def _check_returns(fwd_return: npt.ArrayLike, n: int, name: str = "fwd_return") -> FloatArray:
    arr = np.asarray(fwd_return, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be 1-d with {n} rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values; drop unlabelled rows first")
    return arr


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------------------------- proper scores


def log_loss(probs: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Mean negative log-likelihood of the true class (natural log; probabilities clipped at 1e-15)."""
    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])
    if labels.size == 0:
        raise ValueError("log_loss needs at least one row")
    picked = p[np.arange(labels.size), labels]
    return float(-np.mean(np.log(np.clip(picked, _LOG_EPS, 1.0))))


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


# ------------------------------------------------------------------------------ trading simulation


def periods_per_year(timeframe_minutes: int) -> float:
    """Bars per year of a timeframe; crypto trades around the clock, so a year is 365 x 24 x 60 minutes."""
    if timeframe_minutes <= 0:
        raise ValueError(f"timeframe_minutes must be positive, got {timeframe_minutes}")
    return _MINUTES_PER_YEAR / timeframe_minutes


@dataclass(frozen=True)
class TradingResult:
    """Outcome of :func:`simulate`. Returns are fractions (0.01 = 1%), fee included."""

    signals: int  #: bars where max(p_up, p_down) >= p*
    eligible_share: float  #: signals / bars
    win_rate: float  #: share of signals with a positive realised return
    mean_return: float  #: mean realised return per signal (its whole horizon, one round-trip fee)
    sharpe: float  #: annualised Sharpe of the overlapping book's per-bar P&L, see :func:`simulate`
    max_drawdown: float  #: largest peak-to-trough fall of the book's cumulative P&L, >= 0
    total_return: float  #: sum of the book's per-bar P&L (additive, not compounded)

    def to_json(self) -> dict[str, float | int]:
        """The fields as a JSON-safe dict."""
        return asdict(self)


def _directions(p: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per bar: the directional confidence max(p_up, p_down) and the direction (+1 long, -1 short)."""
    max_dir = np.maximum(p[:, UP], p[:, DOWN])
    direction = np.where(p[:, UP] >= p[:, DOWN], 1.0, -1.0)
    return max_dir, direction


def _realised(direction: FloatArray, fwd_return: FloatArray, fee: float) -> FloatArray:
    # fwd_return is a log return; a position earns the simple return exp(r) - 1 in its direction.
    return direction * np.expm1(fwd_return) - fee


def max_drawdown(returns: npt.ArrayLike) -> float:
    """Largest fall from a running peak of ``cumsum(returns)`` (the curve starts at 0); a positive number."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return 0.0
    equity = np.concatenate([[0.0], np.cumsum(r)])
    return float(np.max(np.maximum.accumulate(equity) - equity))


def signal_series(probs: npt.ArrayLike, p_star: float) -> FloatArray:
    """Per row: +1 (long) / -1 (short) where ``max(p_up, p_down) >= p_star``, else 0."""
    p = check_probs(probs)
    max_dir, direction = _directions(p)
    out: FloatArray = np.where(max_dir >= p_star, direction, 0.0)
    return out


def one_bar_returns(
    bar_return: npt.ArrayLike | None, fwd_return: FloatArray, horizon: int, name: str = "bar_return"
) -> FloatArray:
    """Each row's one-bar simple return for the overlapping book, checked against ``fwd_return``'s rows.

    With ``horizon == 1`` it may be omitted: the label's forward return is then the one-bar return
    (``exp(fwd_return) - 1``). A longer horizon needs it (``ValueError`` naming ``name`` otherwise).
    """
    if bar_return is None:
        if horizon != 1:
            raise ValueError(f"a horizon of {horizon} bars needs each row's one-bar return ({name})")
        out: FloatArray = np.expm1(fwd_return)
        return out
    return _check_returns(bar_return, fwd_return.shape[0], name)


def simulate(
    probs: npt.ArrayLike,
    fwd_return: npt.ArrayLike,
    *,
    p_star: float,
    fee: float,
    periods_per_year: float,
    bar_return: npt.ArrayLike | None = None,
    horizon: int = 1,
) -> TradingResult:
    """Fee-aware trading simulation: per-signal statistics and the overlapping book's Sharpe.

    A bar is a signal when ``max(p_up, p_down) >= p_star``; the direction is long when ``p_up >= p_down``,
    short otherwise. Per signal, the realised return is ``direction * (exp(fwd_return) - 1) - fee``
    (``fee`` is the round-trip cost) and the win rate the share of signals with a realised return > 0.

    The Sharpe, drawdown and total return are the overlapping book's (:mod:`trainfarm.shared.book`): each
    signal opens a position of ``1/horizon`` of the capital for ``horizon`` bars, fees are paid on every
    entry and exit, and the Sharpe of the per-bar P&L is annualised by ``sqrt(periods_per_year)``.
    ``bar_return`` is each row's one-bar simple return; with ``horizon == 1`` it may be omitted (it is
    then ``exp(fwd_return) - 1``, the same thing). Fewer than two bars or a zero std give Sharpe 0.0,
    never NaN or infinity, so the gate stays a plain comparison.
    """
    p = check_probs(probs)
    n = p.shape[0]
    r = _check_returns(fwd_return, n)
    if not 0.0 <= fee < 1.0:
        raise ValueError(f"fee must be a fraction in [0, 1), got {fee}")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    if not math.isfinite(p_star):
        raise ValueError(f"p_star must be a finite number, got {p_star}")
    bars = one_bar_returns(bar_return, r, horizon, "bar_return")
    signal = signal_series(p, p_star)
    mask = signal != 0.0
    signals = int(mask.sum())
    if signals == 0:
        return TradingResult(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    realised = _realised(signal[mask], r[mask], fee)
    pnl = book_pnl(signal, bars, horizon=horizon, fee=fee)
    return TradingResult(
        signals=signals,
        eligible_share=signals / n,
        win_rate=float((realised > 0.0).mean()),
        mean_return=float(realised.mean()),
        sharpe=annualised_sharpe(pnl, periods_per_year),
        max_drawdown=max_drawdown(pnl),
        total_return=float(pnl.sum()),
    )


def choose_p_star(
    probs_cal: npt.ArrayLike,
    fwd_return_cal: npt.ArrayLike,
    *,
    fee: float,
    min_signals: int,
    periods_per_year: float | None = None,
    min_eligible_share: float = 0.0,
    bar_return_cal: npt.ArrayLike | None = None,
    horizon: int = 1,
) -> float:
    """The decision threshold p*, chosen on the CALIBRATION split only (it takes no other data).

    Candidates are the 0%, 1%, ..., 100% quantiles of ``max(p_up, p_down)`` on the calibration rows, the
    coarse grid 0.34, 0.35, ..., 0.90, and the value that keeps exactly the ``floor`` most confident bars
    (``floor`` is ``min_signals``, or more, see below). Among candidates leaving at least ``floor``
    signals, the one whose overlapping book (:func:`simulate`; ``bar_return_cal`` and ``horizon`` as
    there) has the highest Sharpe wins: the quantity the gates check. Ties go to the higher threshold.

    (The mean return per signal, the earlier objective, pulls p* to the fewest signals allowed: a very
    confident model then traded a few dozen bars on calibration and fell below the signal floor on test.
    The book's Sharpe rewards a steady P&L, which many moderately sure signals give as much as a few very
    sure ones.) ``min_eligible_share`` raises the floor to ``ceil(min_eligible_share * rows)`` when that
    is larger (pass the gate's floors so a p* chosen here can pass them on test).

    When the calibration split has fewer rows than the floor no candidate qualifies; p* is then the
    lowest directional confidence seen, so every bar is a signal, and the gates judge the result.
    ``periods_per_year`` is only validated: the annualisation does not change which candidate wins.
    """
    p = check_probs(probs_cal, "probs_cal")
    n = p.shape[0]
    r = _check_returns(fwd_return_cal, n, "fwd_return_cal")
    if min_signals < 1:
        raise ValueError(f"min_signals must be at least 1, got {min_signals}")
    if not 0.0 <= min_eligible_share <= 1.0:
        raise ValueError(f"min_eligible_share must be in [0, 1], got {min_eligible_share}")
    if n == 0:
        raise ValueError("choose_p_star needs at least one calibration row")
    if periods_per_year is not None and periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    bars = one_bar_returns(bar_return_cal, r, horizon, "bar_return_cal")
    max_dir, direction = _directions(p)
    sorted_conf = np.sort(max_dir)[::-1]
    floor = max(min_signals, math.ceil(min_eligible_share * n))
    if n < floor:
        return float(sorted_conf[-1])
    candidates = np.unique(
        np.concatenate([np.quantile(max_dir, _P_STAR_QUANTILES), _P_STAR_GRID, [sorted_conf[floor - 1]]])
    )
    counts = n - np.searchsorted(sorted_conf[::-1], candidates, side="left")
    best_t, best_sharpe = float(sorted_conf[-1]), -math.inf
    for threshold in candidates[counts >= floor]:  # ascending: ">=" hands ties to the higher threshold
        signal = np.where(max_dir >= threshold, direction, 0.0)
        sharpe = annualised_sharpe(book_pnl(signal, bars, horizon=horizon, fee=fee), 1.0)
        if sharpe >= best_sharpe:
            best_t, best_sharpe = float(threshold), sharpe
    return best_t


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
