"""Validation gates: may a candidate replace the champion? Every check is stored with its value.

A gate report is a tuple of :class:`Check` (name, value, threshold, operator, pass/fail, a sentence that
says what was compared) and the verdict: a candidate passes when every check passes. Nothing is decided
that is not in the report: a person reading ``farm models`` sees the same numbers. Every check is computed
on the candidate's TEST split (the rows nothing was fitted or tuned on).

The checks, their thresholds and why each exists: docs/ml.md#gates (the strict profile's targets:
:class:`trainfarm.shared.config.StrictGates`). Intervals come from contiguous circular blocks
(:mod:`trainfarm.shared.evaluation.block_bootstrap`), never single rows, because test rows are a time series
whose labels overlap; the champion is scored only on rows at or after :attr:`ChampionModel.fitted_until`.

Deterministic: the same inputs and ``seed`` give the same report, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from trainfarm.shared.config import GateThresholds
from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.evaluation.block_bootstrap import block_bootstrap_means, block_length
from trainfarm.shared.evaluation.book import book_pnl, sharpe_lower_bound
from trainfarm.shared.evaluation.gate_report import Check, GateReport, finite_or_none
from trainfarm.shared.evaluation.metrics import (
    check_labels,
    check_probs,
    mean_confidence,
    predicted_class_share,
)
from trainfarm.shared.evaluation.trading import TradingResult, one_bar_returns, signal_series, simulate
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.arrays import FloatArray, IntArray

PROFILES: tuple[str, ...] = ("default", "strict")
#: How many times the gates' signal floors the p* search must leave on the calibration split (see
#: :func:`p_star_floors`).
P_STAR_FLOOR_MARGIN = 2.0
#: Same clip as :func:`trainfarm.shared.evaluation.metrics.log_loss`, so per-row losses average to exactly
#: its value.
_LOG_EPS = 1e-15


@dataclass(frozen=True, eq=False)
class ScoredPredictions:
    """One model's calibrated test-split predictions and what scoring them needs.

    ``probs`` (n x 3, down/neutral/up), ``y`` (class ids) and ``fwd_return`` (log return over the label
    horizon) are the test rows; ``prior`` the train split's class shares; ``p_star`` the model's own
    decision threshold (chosen on its calibration split); ``fee`` and ``periods_per_year`` as in
    :func:`trainfarm.shared.evaluation.trading.simulate`; ``label_horizon`` (bars) sets the bootstrap's
    shortest
    block.
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
        object.__setattr__(self, "_row_ll", -np.log(np.clip(picked, _LOG_EPS, 1.0)))

    @property
    def rows(self) -> int:
        """Number of test rows."""
        return int(self.probs.shape[0])

    def row_logloss(self) -> FloatArray:
        """Per-row negative log-likelihood of the true class (its mean is :func:`log_loss`)."""
        return self._row_ll

    def prior_row_logloss(self) -> FloatArray:
        """Per-row log-loss of the class-prior baseline on the same rows."""
        out: FloatArray = -np.log(np.clip(self.prior[self.y], _LOG_EPS, 1.0))
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


class ChampionModel(Protocol):
    """What gating needs of a champion pack (:class:`trainfarm.shared.packs.predictor.Predictor` provides
    it)."""

    @property
    def version(self) -> str: ...

    @property
    def p_star(self) -> float: ...

    @property
    def fitted_until(self) -> datetime | None:
        """The latest label end any fitted part of the pack saw (None: unknown, compare on every row)."""

    def predict_features(self, x: npt.ArrayLike) -> FloatArray: ...


#: A loaded champion, or a zero-argument loader of one (so that a failure to load is gated, not raised).
ChampionSource = ChampionModel | Callable[[], ChampionModel]

if TYPE_CHECKING:  # static proof that a loaded pack is a ChampionModel (no import at run time)
    from trainfarm.shared.packs.predictor import Predictor

    _PREDICTOR: type[ChampionModel] = Predictor


# ------------------------------------------------------------------------------------------- checks

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
}


def _compare(name: str, value: float | None, op: str, threshold: float, detail: str) -> Check:
    """A numeric check; an undefined (None or NaN) value fails: a gate never passes what it cannot see."""
    ok = value is not None and math.isfinite(value) and _OPS[op](value, threshold)
    return Check(name, finite_or_none(value), threshold, op, ok, detail)


def _prior_checks(cand: ScoredPredictions, th: GateThresholds, seed: int) -> list[Check]:
    cand_ll, prior_row = cand.row_logloss(), cand.prior_row_logloss()
    prior_ll, model_ll = float(prior_row.mean()), float(cand_ll.mean())
    rel = (prior_ll - model_ll) / prior_ll if prior_ll > 0 else None
    block = block_length(cand.rows, cand.label_horizon)
    # Prior and candidate losses are resampled together (paired), and the relative improvement is taken
    # per resample: a resample richer in one class changes both losses, not only the candidate's.
    means = block_bootstrap_means(
        np.column_stack([prior_row, cand_ll]), block=block, samples=th.bootstrap_samples, seed=seed
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_samples = (means[:, 0] - means[:, 1]) / means[:, 0]
    lower = float(np.quantile(rel_samples, 1.0 - th.bootstrap_confidence)) if rel is not None else None
    pct = round(100 * th.bootstrap_confidence)
    return [
        _compare(
            "logloss_vs_prior",
            rel,
            ">=",
            th.min_logloss_improvement,
            f"relative improvement of the test log-loss {model_ll:.4f} over the class prior's {prior_ll:.4f} "
            f"on {cand.rows} rows",
        ),
        _compare(
            "logloss_vs_prior_bootstrap",
            lower,
            ">",
            0.0,
            f"{pct}% one-sided lower bound of that relative improvement: circular block bootstrap, "
            f"{th.bootstrap_samples} resamples of {block}-row blocks, seed {seed}",
        ),
    ]


def _shape_checks(
    cand: ScoredPredictions, th: GateThresholds, profile: str, tf: Timeframe, seed: int
) -> list[Check]:
    p = cand.probs
    # Constant output has neither a varying lean nor a varying confidence; a useful model may keep one of
    # the two steady (always 60% sure, switching between up and down), so the larger std is compared.
    direction_std = float(np.std(p[:, 2] - p[:, 0]))
    top_std = float(np.std(p.max(axis=1)))
    checks = [
        _compare(
            "output_not_constant",
            max(direction_std, top_std),
            ">=",
            th.min_output_std,
            f"larger of the std of p_up - p_down ({direction_std:.4f}) and of the top probability "
            f"({top_std:.4f})",
        )
    ]
    shares = predicted_class_share(p)
    strict = th.strict
    if profile == "strict":
        tol = strict.class_share_tolerance
        for name, target in zip(CLASSES, strict.class_share, strict=True):
            share = shares[name]
            checks.append(
                _compare(
                    f"class_share_{name}_vs_target",
                    abs(share - target),
                    "<=",
                    tol,
                    f"strict {tf}: predicted {name} share {share:.3f}, target {target:.2f} +- {tol:.2f}",
                )
            )
        conf_floor, source = strict.min_mean_confidence, "strict"
    else:
        for name in CLASSES:
            checks.append(
                _compare(
                    f"class_share_{name}",
                    shares[name],
                    "<=",
                    th.max_class_share,
                    f"share of test rows predicted {name}",
                )
            )
        conf_floor, source = th.min_mean_confidence, "default"
    trading = cand.trading()
    if th.sharpe_bootstrap:
        sharpe = sharpe_lower_bound(
            cand.book(),
            periods_per_year=cand.periods_per_year,
            horizon=cand.label_horizon,
            confidence=th.bootstrap_confidence,
            samples=th.bootstrap_samples,
            seed=seed,
        )
        what = f"{round(100 * th.bootstrap_confidence)}% block-bootstrap lower bound of the annualised"
    else:
        sharpe, what = trading.sharpe, "annualised"
    checks += [
        _compare(
            "mean_confidence", mean_confidence(p), ">=", conf_floor, f"{source} {tf}: mean top probability"
        ),
        _compare(
            "eligible_share",
            trading.eligible_share,
            ">=",
            eligible_floor(th, profile),
            f"{source} {tf}: share of test rows with max(p_up, p_down) >= p* = {cand.p_star:.3f}",
        ),
        _compare(
            "sharpe",
            sharpe,
            ">=",
            th.min_sharpe,
            f"{what} Sharpe of the overlapping book's per-bar P&L ({trading.signals} signals, each "
            f"1/{cand.label_horizon} of the capital for {cand.label_horizon} bars, a {cand.fee:g} round-trip "
            f"fee; win rate {trading.win_rate:.2f}, mean {trading.mean_return:+.5f} per signal)",
        ),
        _compare("signals", float(trading.signals), ">=", float(th.min_signals), "test signals at p*"),
    ]
    return checks


def _worse_pct(
    champ_rows: FloatArray, cand_rows: FloatArray, th: GateThresholds, horizon: int, seed: int
) -> tuple[float, float]:
    """Point estimate and one-sided lower bound of how much worse (%) the candidate's mean score is.

    Paired circular block bootstrap of the two per-row scores (same blocks for both): a positive lower
    bound means the candidate is worse than the champion beyond what the luck of this window explains.
    """
    theirs, mine = float(champ_rows.mean()), float(cand_rows.mean())
    if theirs <= 0:
        point = 0.0 if mine <= theirs else math.inf
        return point, point
    means = block_bootstrap_means(
        np.column_stack([champ_rows, cand_rows]),
        block=block_length(champ_rows.size, horizon),
        samples=th.bootstrap_samples,
        seed=seed,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (means[:, 1] - means[:, 0]) / means[:, 0] * 100.0
    return (mine - theirs) / theirs * 100.0, float(np.quantile(pct, 1.0 - th.bootstrap_confidence))


def _row_brier(s: ScoredPredictions) -> FloatArray:
    out: FloatArray = np.sum((s.probs - np.eye(s.probs.shape[1])[s.y]) ** 2, axis=1)
    return out


def _champion_checks(
    cand: ScoredPredictions, champ: ScoredPredictions, th: GateThresholds, seed: int, where: str
) -> list[Check]:
    # Same rows and labels: evaluate_gates checked it before taking both subsets.
    checks = [Check("champion_scored", float(cand.rows), None, "ok", True, f"{champ.name} on {where}")]
    pct = round(100 * th.bootstrap_confidence)
    for metric, rows in (
        ("logloss", lambda s: s.row_logloss()),
        ("brier", _row_brier),
    ):
        point, lower = _worse_pct(rows(champ), rows(cand), th, cand.label_horizon, seed)
        checks.append(
            _compare(
                f"{metric}_vs_champion",
                lower,
                "<=",
                th.max_regression_pct,
                f"{pct}% lower bound of how much worse (%) the candidate's {metric} is than the "
                f"champion's (paired block bootstrap of per-row scores); point estimate {point:+.2f}% "
                f"({float(rows(cand).mean()):.4f} vs {float(rows(champ).mean()):.4f})",
            )
        )
    mine_sr, theirs_sr = cand.trading().sharpe, champ.trading().sharpe
    if theirs_sr > 0:
        checks.append(
            _compare(
                "sharpe_vs_champion",
                mine_sr,
                ">=",
                th.min_sharpe_fraction * theirs_sr,
                f"{th.min_sharpe_fraction:g} x the champion's book Sharpe {theirs_sr:.3f} (at its own p*)",
            )
        )
    else:
        checks.append(
            Check(
                "sharpe_vs_champion",
                finite_or_none(mine_sr),
                None,
                ">=",
                True,
                f"champion book Sharpe {theirs_sr:.3f} <= 0 on these rows: no edge to keep (the sharpe "
                "floor still applies)",
            )
        )
    return checks


def _uncomparable(rows: int, th: GateThresholds, detail: str) -> Check:
    """Too few rows after the champion's data for an honest comparison: reported, not failed."""
    return Check(
        "champion_comparable_rows",
        float(rows),
        float(th.min_champion_rows),
        ">=",
        True,
        f"{detail}: fewer than {th.min_champion_rows} of the candidate's test rows lie after the "
        "champion's data, and a champion scored on rows it was fitted on would win by memory, not skill; "
        "not compared (the candidate stands on the prior checks)",
    )


def evaluate_gates(
    *,
    candidate: ScoredPredictions,
    champion: ScoredPredictions | None,
    thresholds: GateThresholds,
    timeframe: Timeframe,
    profile: str,
    seed: int,
    champion_error: str | None = None,
    champion_rows: npt.NDArray[np.bool_] | None = None,
    champion_note: str = "",
) -> GateReport:
    """Run every gate check on ``candidate`` (and against ``champion`` when given); see the module docs.

    ``champion`` must be scored on the same test rows as ``candidate``; ``champion_rows`` (a boolean mask,
    default all) picks the rows the comparison may use: those after the champion's own data. Fewer than
    ``min_champion_rows`` of them give a passing ``champion_comparable_rows`` check that says so instead
    of a comparison. ``champion_error`` says why an existing champion could not be scored: the report
    then carries a failing ``champion_scored`` check. ``profile`` is "default" or "strict".
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown gate profile {profile!r}; expected one of {', '.join(PROFILES)}")
    checks = _prior_checks(candidate, thresholds, seed)
    checks += _shape_checks(candidate, thresholds, profile, timeframe, seed)
    if champion_error is not None:
        checks.append(Check("champion_scored", None, None, "ok", False, champion_error))
    elif champion is not None:
        if champion.rows != candidate.rows or not np.array_equal(champion.y, candidate.y):
            raise ValueError("the champion must be scored on the candidate's test rows")
        rows = np.ones(candidate.rows, dtype=bool) if champion_rows is None else np.asarray(champion_rows)
        if rows.shape != (candidate.rows,) or rows.dtype != np.bool_:
            raise ValueError(f"champion_rows must be a boolean mask of {candidate.rows} rows")
        kept = int(rows.sum())
        where = f"{kept} of the candidate's {candidate.rows} test rows{champion_note}"
        if kept < thresholds.min_champion_rows:
            checks.append(Check("champion_scored", float(kept), None, "ok", True, f"{champion.name} loaded"))
            checks.append(_uncomparable(kept, thresholds, f"{champion.name}: {where}"))
        else:
            checks += _champion_checks(candidate.subset(rows), champion.subset(rows), thresholds, seed, where)
    return GateReport(checks=tuple(checks), passed=all(c.passed for c in checks), profile=profile)


def unseen_rows(
    dates: npt.NDArray[np.datetime64] | None, fitted_until: datetime | None
) -> npt.NDArray[np.bool_] | None:
    """Mask of the rows whose bar lies at or after ``fitted_until`` (None when either is unknown).

    ``fitted_until`` is the latest label end any fitted part of a pack saw: a row at or after it looks at
    prices the pack never learned from, so a comparison on it is out of sample for both models.
    """
    if dates is None or fitted_until is None:
        return None
    until = np.datetime64(fitted_until.astimezone(UTC).replace(tzinfo=None), "us")
    out: npt.NDArray[np.bool_] = np.asarray(dates).astype("datetime64[us]") >= until
    return out


def gate_candidate(
    candidate: ScoredPredictions,
    champion: ChampionSource | None,
    x_test: npt.ArrayLike,
    *,
    thresholds: GateThresholds,
    timeframe: Timeframe,
    profile: str,
    seed: int,
) -> GateReport:
    """:func:`evaluate_gates` with the champion scored here on ``x_test``, the candidate's test features.

    ``champion`` is a loaded pack or a zero-argument loader (so a pack that fails to load is caught too).
    Any failure to load or score it becomes a failing ``champion_scored`` check instead of an exception:
    the run still records its candidate, which simply cannot replace a champion it was not compared with.
    The comparison uses only the test rows at or after the champion's ``fitted_until`` (when the candidate
    carries ``dates``): the champion's training and calibration rows end before them.
    """
    scored: ScoredPredictions | None = None
    error: str | None = None
    rows: npt.NDArray[np.bool_] | None = None
    note = ""
    if champion is not None:
        try:
            model = champion() if callable(champion) else champion
            scored = candidate.with_probs(
                model.predict_features(x_test), p_star=float(model.p_star), name=f"champion {model.version}"
            )
            until = model.fitted_until
            rows = unseen_rows(candidate.dates, until)
            if until is not None:
                note = f" at or after {until.isoformat()}, where the champion's data ends"
        except Exception as exc:  # any failure: the comparison is missing, so the gate must fail
            error = f"could not score the champion on the test rows: {type(exc).__name__}: {exc}"
    return evaluate_gates(
        candidate=candidate,
        champion=scored,
        thresholds=thresholds,
        timeframe=timeframe,
        profile=profile,
        seed=seed,
        champion_error=error,
        champion_rows=rows,
        champion_note=note,
    )


def eligible_floor(thresholds: GateThresholds, profile: str) -> float:
    """The eligible-share floor in force under ``profile``."""
    return thresholds.strict.min_eligible_share if profile == "strict" else thresholds.min_eligible_share


def p_star_floors(thresholds: GateThresholds, profile: str, min_signals: int) -> tuple[int, float]:
    """``(min_signals, min_eligible_share)`` for :func:`trainfarm.shared.evaluation.trading.choose_p_star`.

    The p* search maximises the mean return per signal, which drives it to the fewest signals it may
    leave; the test split is another sample of the same size, so its signal count scatters around that
    floor and a good candidate would fail the gate's ``signals`` / ``eligible_share`` floors about half
    the time by chance. Leaving ``P_STAR_FLOOR_MARGIN`` (2) times the gate floors on calibration puts the
    expected test count at twice the floor. ``min_signals`` is the evaluation's own floor, kept if higher.
    """
    signals = max(min_signals, math.ceil(P_STAR_FLOOR_MARGIN * thresholds.min_signals))
    share = min(1.0, P_STAR_FLOOR_MARGIN * eligible_floor(thresholds, profile))
    return signals, share


__all__ = [
    "PROFILES",
    "P_STAR_FLOOR_MARGIN",
    "ChampionModel",
    "ChampionSource",
    "Check",
    "GateReport",
    "ScoredPredictions",
    "eligible_floor",
    "evaluate_gates",
    "gate_candidate",
    "p_star_floors",
    "unseen_rows",
]
