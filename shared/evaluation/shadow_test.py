"""The shadow test: a challenger against the champion on the same live bars, decided once.

Bots score every newest bar with both versions and act on the champion only; once a bar's label is known
(its horizon has passed in the farm's own bars) it is a paired observation. With ``n`` labelled paired
bars, two paired differences, challenger minus champion:

* per-bar log-loss, ``d_ll[t] = ll_challenger[t] - ll_champion[t]`` over the paired bars (lower is better);
* the book's P&L (:func:`~trainfarm.shared.evaluation.book.book_pnl`: each signal held ``h`` bars with
  ``1/h`` of the capital, fees paid on every change), ``d_pnl[t]`` over every bar of the window, each
  version's book flat where the bar was not scored by both.

Both series are autocorrelated (labels overlap for ``h - 1`` bars, features persist), so their means are
resampled with the circular block bootstrap of the gates
(:func:`~trainfarm.shared.evaluation.block_bootstrap.block_bootstrap_means`, blocks of
:func:`~trainfarm.shared.evaluation.block_bootstrap.block_length`). The one decision, at
``shadow_min_bars`` labelled paired bars:

* **retire** when the challenger is significantly worse: the one-sided ``confidence`` lower bound of
  ``mean(d_ll)`` is above 0, or the upper bound of ``mean(d_pnl)`` is below 0;
* **promote** when it is better in point estimate (``mean(d_ll) < 0``) and not significantly worse;
* **retire** otherwise (not better: the champion stays, and the next candidate gets the slot).

Before that the verdict is **wait**. The test is not a proof that the challenger is better: with an equal
challenger the point estimate favours it half of the time, and such a promotion costs nothing in
expectation. What it guarantees is the other side: a challenger that is truly no worse is retired as
"significantly worse" in about ``1 - confidence`` of cases per series (tests/unit/evaluation/
test_shadow_test.py measures both rates on 1,000 simulated cases each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm.shared.evaluation.block_bootstrap import block_bootstrap_means, block_length
from trainfarm.shared.evaluation.book import book_pnl
from trainfarm.shared.evaluation.metrics import log_losses
from trainfarm_client.arrays import FloatArray

Decision = Literal["promote", "retire", "wait"]


@dataclass(frozen=True)
class ShadowBars:
    """Every bar of a shadow window in time order (n rows).

    ``paired`` marks the bars scored by both versions whose label is known; ``label`` is the class
    (0 down, 1 neutral, 2 up; anything where not paired), ``champion`` and ``challenger`` the (n x 3)
    probabilities (anything where not paired), the signals -1, 0 or +1 (0 where not paired: that book is
    flat there), ``bar_return`` each bar's simple return to the next close (0 across a gap).
    """

    paired: npt.NDArray[np.bool_]
    label: npt.NDArray[np.int64]
    champion: FloatArray
    challenger: FloatArray
    champion_signal: FloatArray
    challenger_signal: FloatArray
    bar_return: FloatArray

    def __post_init__(self) -> None:
        n = self.paired.shape[0]
        shapes = {
            "label": (self.label.shape, (n,)),
            "champion": (self.champion.shape, (n, 3)),
            "challenger": (self.challenger.shape, (n, 3)),
            "champion_signal": (self.champion_signal.shape, (n,)),
            "challenger_signal": (self.challenger_signal.shape, (n,)),
            "bar_return": (self.bar_return.shape, (n,)),
        }
        for name, (shape, expected) in shapes.items():
            if shape != expected:
                raise ValueError(f"ShadowBars.{name} has shape {shape}, expected {expected}")

    @property
    def bars(self) -> int:
        """Labelled bars scored by both versions."""
        return int(self.paired.sum())


@dataclass(frozen=True)
class ShadowVerdict:
    """The decision and the figures it rests on (differences are challenger minus champion)."""

    decision: Decision
    reason: str
    #: labelled bars scored by both (a wait taken before the bars were loaded: the bars scored by both,
    #: labelled or not, an upper bound)
    bars: int
    min_bars: int
    logloss_champion: float | None = None
    logloss_challenger: float | None = None
    logloss_diff: float | None = None  #: mean per-bar log-loss difference (< 0: challenger better)
    logloss_diff_lower: float | None = None  #: its one-sided lower bound (> 0: significantly worse)
    pnl_champion: float | None = None  #: the champion's book, total P&L over the window (fraction)
    pnl_challenger: float | None = None
    pnl_diff: float | None = None  #: mean per-bar P&L difference
    pnl_diff_upper: float | None = None  #: its one-sided upper bound (< 0: significantly worse)
    block: int | None = None
    confidence: float | None = None

    def to_json(self) -> dict[str, object]:
        """Plain JSON (what the registry keeps as the challenger's verdict)."""
        return asdict(self)


def shadow_verdict(
    window: ShadowBars,
    *,
    min_bars: int,
    horizon: int,
    fee: float,
    confidence: float,
    samples: int,
    seed: int,
) -> ShadowVerdict:
    """The shadow test's decision on ``window`` (see the module docs); ``wait`` below ``min_bars`` bars."""
    n = window.bars
    if n < min_bars:
        return ShadowVerdict("wait", f"{n} of {min_bars} labelled live bars scored by both", n, min_bars)
    rows = window.paired
    ll_champion = log_losses(window.champion[rows], window.label[rows])
    ll_challenger = log_losses(window.challenger[rows], window.label[rows])
    d_ll = ll_challenger - ll_champion
    pnl_champion = book_pnl(window.champion_signal, window.bar_return, horizon=horizon, fee=fee)
    pnl_challenger = book_pnl(window.challenger_signal, window.bar_return, horizon=horizon, fee=fee)
    d_pnl = pnl_challenger - pnl_champion
    ll_means = block_bootstrap_means(d_ll, block=block_length(d_ll.size, horizon), samples=samples, seed=seed)
    block = block_length(d_pnl.size, horizon)
    pnl_means = block_bootstrap_means(d_pnl, block=block, samples=samples, seed=seed + 1)
    ll_lower = float(np.quantile(ll_means, 1.0 - confidence))
    pnl_upper = float(np.quantile(pnl_means, confidence))
    mean_ll, mean_pnl = float(d_ll.mean()), float(d_pnl.mean())
    figures = ShadowVerdict(
        "wait",
        "",
        n,
        min_bars,
        logloss_champion=float(ll_champion.mean()),
        logloss_challenger=float(ll_challenger.mean()),
        logloss_diff=mean_ll,
        logloss_diff_lower=ll_lower,
        pnl_champion=float(pnl_champion.sum()),
        pnl_challenger=float(pnl_challenger.sum()),
        pnl_diff=mean_pnl,
        pnl_diff_upper=pnl_upper,
        block=block_length(d_ll.size, horizon),
        confidence=confidence,
    )
    level = f"{confidence:.0%}"
    if ll_lower > 0:
        decision: Decision = "retire"
        reason = (
            f"log-loss significantly worse on {n} live bars: {mean_ll:+.4f} per bar "
            f"({level} lower bound {ll_lower:+.4f})"
        )
    elif pnl_upper < 0:
        decision = "retire"
        reason = (
            f"book P&L significantly worse on {n} live bars: {mean_pnl:+.3g} per bar "
            f"({level} upper bound {pnl_upper:+.3g})"
        )
    elif mean_ll < 0:
        decision = "promote"
        reason = (
            f"better log-loss on {n} live bars ({mean_ll:+.4f} per bar) and not significantly worse "
            f"(P&L {mean_pnl:+.3g} per bar, {level} upper bound {pnl_upper:+.3g})"
        )
    else:
        decision = "retire"
        reason = f"not better on {n} live bars: log-loss {mean_ll:+.4f} per bar"
    return replace(figures, decision=decision, reason=reason)


class ScoredPair(Protocol):
    """One bar scored by both versions (a registry's paired score, or a replay's)."""

    @property
    def champion_probabilities(self) -> tuple[float, float, float]: ...
    @property
    def challenger_probabilities(self) -> tuple[float, float, float]: ...
    @property
    def champion_signal(self) -> str | None: ...
    @property
    def challenger_signal(self) -> str | None: ...


def shadow_window(truth: pl.DataFrame, scored: Mapping[datetime, ScoredPair]) -> ShadowBars:
    """The shadow window of ``scored`` bars: every bar of ``truth`` (``date``, ``label``, ``bar_return``,
    oldest first, starting at the first scored bar) up to the last scored bar whose label is known."""
    labelled = truth.filter(pl.col("label").is_not_null())
    last = max((d for d in labelled["date"] if d in scored), default=None)
    window = truth.filter(pl.col("date") <= last) if last is not None else truth.head(0)
    dates = list(window["date"])
    labels = window["label"].fill_null(-1).to_numpy()
    paired = np.array([d in scored and lab >= 0 for d, lab in zip(dates, labels, strict=True)], dtype=bool)
    n = len(dates)
    champion, challenger = np.full((n, 3), 1 / 3), np.full((n, 3), 1 / 3)
    signals: list[list[str | None]] = [[None] * n, [None] * n]
    for i, date in enumerate(dates):
        if paired[i]:
            pair = scored[date]
            champion[i], challenger[i] = pair.champion_probabilities, pair.challenger_probabilities
            signals[0][i], signals[1][i] = pair.champion_signal, pair.challenger_signal
    return ShadowBars(
        paired=paired,
        label=np.where(paired, labels, 0).astype(np.int64),
        champion=champion,
        challenger=challenger,
        champion_signal=signal_values(signals[0]),
        challenger_signal=signal_values(signals[1]),
        bar_return=window["bar_return"].to_numpy().astype(np.float64),
    )


def signal_values(signals: Sequence[str | None]) -> FloatArray:
    """``up``/``down``/empty (or None) as +1/-1/0."""
    table = {"up": 1.0, "down": -1.0}
    out: FloatArray = np.array([table.get(s or "", 0.0) for s in signals], dtype=np.float64)
    return out


__all__ = [
    "Decision",
    "ScoredPair",
    "ShadowBars",
    "ShadowVerdict",
    "shadow_verdict",
    "shadow_window",
    "signal_values",
]
