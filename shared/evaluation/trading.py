"""The fee-aware trading simulation of a candidate, and the choice of its decision threshold p*.

A signal is a bar where max(p_up, p_down) >= p*; its direction is the larger of the two. Returns are LOG
returns over the label horizon (the ``fwd_return`` column of
:func:`trainfarm.shared.dataset.labels.add_labels`); the overlapping book of
:mod:`trainfarm.shared.evaluation.book` turns them into per-bar P&L, fees charged on position changes.
:func:`choose_p_star` takes calibration arrays and nothing else, so p* never sees the test split it is then
applied to once. What is measured and why: docs/ml.md#evaluation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from trainfarm.shared.evaluation.book import annualised_sharpe, book_pnl
from trainfarm.shared.evaluation.bounds import block_mean_bound
from trainfarm_client.arrays import FloatArray
from trainfarm_client.probs import check_probs

DOWN, NEUTRAL, UP = 0, 1, 2

_MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0
#: Coarse grid of p* candidates, added to the calibration quantiles (see :func:`choose_p_star`).
_P_STAR_GRID = np.round(np.arange(0.34, 0.9001, 0.01), 2)
_P_STAR_QUANTILES = np.linspace(0.0, 1.0, 101)


def check_returns(fwd_return: npt.ArrayLike, n: int, name: str = "fwd_return") -> FloatArray:
    """``fwd_return`` as a 1-d float array of ``n`` finite log returns (raises ValueError naming it)."""
    arr = np.asarray(fwd_return, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be 1-d with {n} rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values; drop unlabelled rows first")
    return arr


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
    return check_returns(bar_return, fwd_return.shape[0], name)


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

    The Sharpe, drawdown and total return are the overlapping book's
    (:mod:`trainfarm.shared.evaluation.book`): each signal opens a position of ``1/horizon`` of the capital
    for ``horizon`` bars, fees are paid on every change of the book's position, and the Sharpe of the
    per-bar P&L is annualised by ``sqrt(periods_per_year)``.
    ``bar_return`` is each row's one-bar simple return; with ``horizon == 1`` it may be omitted (it is
    then ``exp(fwd_return) - 1``, the same thing). Fewer than two bars or a zero std give Sharpe 0.0,
    never NaN or infinity, so the gate stays a plain comparison.
    """
    p = check_probs(probs)
    n = p.shape[0]
    r = check_returns(fwd_return, n)
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
    r = check_returns(fwd_return_cal, n, "fwd_return_cal")
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


@dataclass(frozen=True)
class ThresholdRule:
    """How a run chooses p*: :func:`choose_p_star`'s settings, applied to whichever rows a fit never saw.

    The judge applies it to the calibration split's cross-fitted probabilities (the gated p*), and a
    refit pack to the calibration and test splits' (:mod:`trainfarm.shared.training.deploy`): one rule,
    so the shipped threshold is chosen exactly as the evaluated one was.
    """

    fee: float
    min_signals: int
    min_eligible_share: float
    periods_per_year: float
    horizon: int

    def choose(self, probs: npt.ArrayLike, fwd_return: npt.ArrayLike, bar_return: npt.ArrayLike) -> float:
        """p* for these rows (see :func:`choose_p_star`)."""
        return choose_p_star(
            probs,
            fwd_return,
            fee=self.fee,
            min_signals=self.min_signals,
            periods_per_year=self.periods_per_year,
            min_eligible_share=self.min_eligible_share,
            bar_return_cal=bar_return,
            horizon=self.horizon,
        )


def signal_indicator(probs: npt.ArrayLike, p_star: float) -> FloatArray:
    """Per row, 1.0 where ``max(p_up, p_down) >= p_star`` (a signal), else 0.0; its mean is the rate."""
    out: FloatArray = np.abs(signal_series(probs, p_star))
    return out


def matched_threshold(chosen_on: npt.ArrayLike, p_star: float, apply_to: npt.ArrayLike) -> float:
    """The threshold that leaves on ``apply_to`` as many signals as ``p_star`` leaves on ``chosen_on``.

    Both are probabilities of the same rows from two calibrations: p* is chosen on cross-fitted ones
    (each half calibrated by a fit on the other, so the choice is out of sample), but the test split is
    calibrated by the fit on all of them, which may shrink more or less. A threshold carried over as a
    number then leaves another share of signals (on a third of the null cases of
    tests/support/null_cases.py it lay above every test probability); carried over as a count, the
    selectivity the rule chose is kept. Without signals at ``p_star``, ``p_star`` itself.
    """
    chosen, target = check_probs(chosen_on, "chosen_on"), check_probs(apply_to, "apply_to")
    if chosen.shape != target.shape:
        raise ValueError(f"both calibrations must be of the same rows: {chosen.shape} vs {target.shape}")
    count = int((_directions(chosen)[0] >= p_star).sum())
    if count == 0:
        return float(p_star)
    return float(np.sort(_directions(target)[0])[::-1][count - 1])


#: Confidence of a signal rate's interval (:func:`signal_rate_error`).
SIGNAL_RATE_CONFIDENCE = 0.95


def signal_rate_error(signals: npt.ArrayLike, label_horizon: int) -> float:
    """Half-width of the 95% interval of a signal rate (``signals``: 1.0 per signal row, in time order):
    Student's t over contiguous blocks (:func:`trainfarm.shared.evaluation.bounds.block_mean_bound`)."""
    bound = block_mean_bound(signals, label_horizon=label_horizon)
    return bound.half_width(SIGNAL_RATE_CONFIDENCE)
