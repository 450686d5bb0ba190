"""One model's calibrated test-split predictions, with what the gates need to score them.

:class:`ScoredPredictions` is what :func:`trainfarm.shared.evaluation.gates.evaluate_gates` judges: the
test rows' probabilities, labels, forward and one-bar returns, bar times, the class prior and the model's
own p*. Per-row log-losses (the model's and the prior's) are computed once, so every check and bound reads
the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from trainfarm.shared.evaluation.book import book_pnl
from trainfarm.shared.evaluation.metrics import check_labels, check_probs
from trainfarm.shared.evaluation.trading import TradingResult, one_bar_returns, signal_series, simulate
from trainfarm_client.arrays import FloatArray, IntArray

#: Same clip as :func:`trainfarm.shared.evaluation.metrics.log_loss`, so per-row losses average to exactly
#: its value.
LOG_EPS = 1e-15


@dataclass(frozen=True, eq=False)
class ScoredPredictions:
    """One model's calibrated test-split predictions and what scoring them needs.

    ``probs`` (n x 3, down/neutral/up), ``y`` (class ids) and ``fwd_return`` (log return over the label
    horizon) are the test rows; ``prior`` the class shares the baseline predicts (the judge passes the
    calibration split's: the most recent rows the model itself may learn from); ``p_star`` the model's
    own decision threshold (chosen on its calibration split); ``fee`` and ``periods_per_year`` as in
    :func:`trainfarm.shared.evaluation.trading.simulate`; ``label_horizon`` (bars) sets the bounds'
    shortest block.
    """

    probs: FloatArray
    y: IntArray
    fwd_return: FloatArray
    prior: FloatArray
    p_star: float
    fee: float
    periods_per_year: float
    label_horizon: int = 1
    name: str = "candidate"
    #: each row's one-bar simple return (the overlapping book's P&L,
    #: :mod:`trainfarm.shared.evaluation.book`); may be
    #: omitted only when ``label_horizon`` is 1
    bar_return: FloatArray | None = None
    #: each row's bar time (datetime64): a champion is compared only on rows after its own data
    dates: npt.NDArray[np.datetime64] | None = None
    _row_ll: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        probs = check_probs(self.probs, f"{self.name} probs")
        n = probs.shape[0]
        if n == 0:
            raise ValueError(f"{self.name}: no test rows to gate on")
        y = check_labels(self.y, n, f"{self.name} y")
        fwd = np.asarray(self.fwd_return, dtype=np.float64)
        if fwd.shape != (n,) or not np.isfinite(fwd).all():
            raise ValueError(f"{self.name}: fwd_return must be {n} finite numbers, got shape {fwd.shape}")
        prior = check_probs(np.asarray(self.prior, dtype=np.float64).reshape(1, -1), "prior")[0]
        if self.label_horizon < 1:
            raise ValueError(f"label_horizon must be at least 1 bar, got {self.label_horizon}")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "fwd_return", fwd)
        object.__setattr__(self, "prior", prior)
        if self.bar_return is not None:
            bars = np.asarray(self.bar_return, dtype=np.float64)
            if bars.shape != (n,) or not np.isfinite(bars).all():
                raise ValueError(
                    f"{self.name}: bar_return must be {n} finite numbers, got shape {bars.shape}"
                )
            object.__setattr__(self, "bar_return", bars)
        elif self.label_horizon != 1:
            raise ValueError(f"{self.name}: a {self.label_horizon}-bar horizon needs bar_return")
        if self.dates is not None:
            dates = np.asarray(self.dates).astype("datetime64[us]")
            if dates.shape != (n,):
                raise ValueError(f"{self.name}: dates must have {n} entries, got shape {dates.shape}")
            object.__setattr__(self, "dates", dates)
        picked = probs[np.arange(n), y]
        object.__setattr__(self, "_row_ll", -np.log(np.clip(picked, LOG_EPS, 1.0)))

    @property
    def rows(self) -> int:
        """Number of test rows."""
        return int(self.probs.shape[0])

    def row_logloss(self) -> FloatArray:
        """Per-row negative log-likelihood of the true class (its mean is :func:`log_loss`)."""
        return self._row_ll

    def prior_row_logloss(self) -> FloatArray:
        """Per-row log-loss of the class-prior baseline on the same rows."""
        out: FloatArray = -np.log(np.clip(self.prior[self.y], LOG_EPS, 1.0))
        return out

    def with_probs(self, probs: npt.ArrayLike, *, p_star: float, name: str) -> ScoredPredictions:
        """Another model's predictions of the same rows, scored under the same rules (a champion)."""
        return replace(self, probs=np.asarray(probs, dtype=np.float64), p_star=p_star, name=name)

    def subset(self, rows: npt.NDArray[np.bool_]) -> ScoredPredictions:
        """The same predictions restricted to ``rows`` (a boolean mask), in order."""
        return replace(
            self,
            probs=self.probs[rows],
            y=self.y[rows],
            fwd_return=self.fwd_return[rows],
            bar_return=None if self.bar_return is None else self.bar_return[rows],
            dates=None if self.dates is None else self.dates[rows],
        )

    def trading(self) -> TradingResult:
        """The fee-aware simulation of these rows at this model's p* (:func:`simulate`)."""
        return simulate(
            self.probs,
            self.fwd_return,
            p_star=self.p_star,
            fee=self.fee,
            periods_per_year=self.periods_per_year,
            bar_return=self.bar_return,
            horizon=self.label_horizon,
        )

    def book(self) -> FloatArray:
        """Per-bar P&L of the overlapping book at this model's p*
        (:func:`trainfarm.shared.evaluation.book.book_pnl`)."""
        bars = one_bar_returns(self.bar_return, self.fwd_return, self.label_horizon)
        return book_pnl(
            signal_series(self.probs, self.p_star), bars, horizon=self.label_horizon, fee=self.fee
        )


__all__ = ["LOG_EPS", "ScoredPredictions"]
