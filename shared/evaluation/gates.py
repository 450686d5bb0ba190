"""Validation gates: may a candidate replace the champion? Every check is stored with its value.

A gate report is a tuple of :class:`Check` (name, value, threshold, operator, pass/fail, a sentence that
says what was compared) and the verdict: a candidate passes when every check passes. Nothing is decided
that is not in the report: a person reading ``farm models`` sees the same numbers. Every check is computed
on the candidate's TEST split (the rows nothing was fitted or tuned on).

The checks, in report order (thresholds and why each exists: docs/ml.md#gates):

- skill (:mod:`trainfarm.shared.evaluation.skill_checks`): log-loss against the class prior, and the same
  for direction alone (up against down);
- shape and trading: output not constant, eligible share (the strict profile adds its class share targets
  and a mean confidence floor: :class:`trainfarm.shared.evaluation.gate_params.StrictGates`), the book's
  Sharpe and signal count.
  The default profile has no check of the predicted class mix: a cap on each predicted class rejected
  calibrated models (an honest p_neutral is the largest on most rows where 40-50% of labels are neutral
  and direction is weak, and the book trades max(p_up, p_down) >= p*, never the argmax), and a band
  around each class's test share rejected them whenever the mix moved between calibration and test
  (docs/ml.md#gates); the log-loss checks already charge miscalibration;
- the champion (:mod:`trainfarm.shared.evaluation.champion_checks`), on test rows at or after its own
  data's end, or, with too few of them, whether it may be replaced without a comparison;
- repeated testing (:mod:`trainfarm.shared.evaluation.repeat_checks`): the market's previous judged
  candidate passed too, or this is its first.

Bounds are Student-t bounds over contiguous blocks (:mod:`trainfarm.shared.evaluation.bounds`), never
single rows, because test rows are a time series whose labels overlap. The baseline's class shares are the
calibration split's (the most recent rows the model may learn from), passed in by the judge.

Deterministic: the same inputs and ``seed`` give the same report, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.evaluation.book import sharpe_lower_bound
from trainfarm.shared.evaluation.champion_checks import (
    ChampionStanding,
    champion_checks,
    comparable_floor,
    replaceable_check,
)
from trainfarm.shared.evaluation.gate_params import GateThresholds
from trainfarm.shared.evaluation.gate_report import Check, GateReport, numeric_check
from trainfarm.shared.evaluation.metrics import mean_confidence, predicted_class_share
from trainfarm.shared.evaluation.repeat_checks import Lineage, confirmed_check
from trainfarm.shared.evaluation.scored import ScoredPredictions
from trainfarm.shared.evaluation.skill_checks import direction_checks, prior_checks
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.arrays import FloatArray

PROFILES: tuple[str, ...] = ("default", "strict")
#: How many times the gates' signal floors the p* search must leave on the calibration split (see
#: :func:`p_star_floors`).
P_STAR_FLOOR_MARGIN = 2.0


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


def _shape_checks(
    cand: ScoredPredictions, th: GateThresholds, profile: str, tf: Timeframe, seed: int
) -> list[Check]:
    p = cand.probs
    # Constant output has neither a varying lean nor a varying confidence; a useful model may keep one of
    # the two steady (always 60% sure, switching between up and down), so the larger std is compared.
    direction_std = float(np.std(p[:, 2] - p[:, 0]))
    top_std = float(np.std(p.max(axis=1)))
    checks = [
        numeric_check(
            "output_not_constant",
            max(direction_std, top_std),
            ">=",
            th.min_output_std,
            f"larger of the std of p_up - p_down ({direction_std:.4f}) and of the top probability "
            f"({top_std:.4f})",
        )
    ]
    strict = th.strict
    if profile == "strict":
        shares = predicted_class_share(p)
        tol = strict.class_share_tolerance
        for name, target in zip(CLASSES, strict.class_share, strict=True):
            share = shares[name]
            checks.append(
                numeric_check(
                    f"class_share_{name}_vs_target",
                    abs(share - target),
                    "<=",
                    tol,
                    f"strict {tf}: predicted {name} share {share:.3f}, target {target:.2f} +- {tol:.2f}",
                )
            )
        # A floor on sharpness, not skill: in the default profile it rejected calibrated candidates with a
        # real but weak signal (docs/ml.md#gates), so only the strict profile keeps it.
        checks.append(
            numeric_check(
                "mean_confidence",
                mean_confidence(p),
                ">=",
                strict.min_mean_confidence,
                f"strict {tf}: mean top probability",
            )
        )
        source = "strict"
    else:
        source = "default"
    trading = cand.trading()
    if th.sharpe_bootstrap:
        sharpe = sharpe_lower_bound(
            cand.book(),
            periods_per_year=cand.periods_per_year,
            horizon=cand.label_horizon,
            confidence=th.confidence,
            samples=th.bootstrap_samples,
            seed=seed,
        )
        what = f"{round(100 * th.confidence)}% block-bootstrap lower bound of the annualised"
    else:
        sharpe, what = trading.sharpe, "annualised"
    checks += [
        numeric_check(
            "eligible_share",
            trading.eligible_share,
            ">=",
            eligible_floor(th, profile),
            f"{source} {tf}: share of test rows with max(p_up, p_down) >= p* = {cand.p_star:.3f}",
        ),
        numeric_check(
            "sharpe",
            sharpe,
            ">=",
            th.min_sharpe,
            f"{what} Sharpe of the overlapping book's per-bar P&L ({trading.signals} signals, each "
            f"1/{cand.label_horizon} of the capital for {cand.label_horizon} bars, a {cand.fee:g} round-trip "
            f"fee; win rate {trading.win_rate:.2f}, mean {trading.mean_return:+.5f} per signal)",
        ),
        numeric_check("signals", float(trading.signals), ">=", float(th.min_signals), "test signals at p*"),
    ]
    return checks


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
    standing: ChampionStanding | None = None,
    lineage: Lineage | None = None,
) -> GateReport:
    """Run every gate check on ``candidate`` (and against ``champion`` when given); see the module docs.

    ``champion`` must be scored on the same test rows as ``candidate``; ``champion_rows`` (a boolean mask,
    default all) picks the rows the comparison may use: those after the champion's own data. With fewer
    than :func:`~trainfarm.shared.evaluation.champion_checks.comparable_floor` of them there is no
    comparison: a ``champion_replaceable`` check passes only when ``standing`` says the champion is stale
    or a live trigger fired (unknown standing: it stays). ``champion_error`` says why an existing champion
    could not be scored: the report then carries a failing ``champion_scored`` check. ``lineage`` (the
    market's previous judged candidate) adds the ``confirmed`` check of
    :mod:`trainfarm.shared.evaluation.repeat_checks` (None: not known here, no check). ``profile`` is
    "default" or "strict"; ``seed`` drives the optional Sharpe bootstrap only.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown gate profile {profile!r}; expected one of {', '.join(PROFILES)}")
    th = thresholds
    checks = prior_checks(candidate, th) + direction_checks(candidate, th)
    checks += _shape_checks(candidate, th, profile, timeframe, seed)
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
        floor = comparable_floor(th, candidate.label_horizon)
        if kept < floor:
            checks.append(Check("champion_scored", float(kept), None, "ok", True, f"{champion.name} loaded"))
            checks.append(replaceable_check(kept, floor, standing, f"{champion.name}: {where}"))
        else:
            checks += champion_checks(candidate.subset(rows), champion.subset(rows), th, where)
    if lineage is not None:
        checks.append(confirmed_check(lineage))
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
    standing: ChampionStanding | None = None,
    lineage: Lineage | None = None,
    champion_features: Callable[[ChampionModel], npt.ArrayLike] | None = None,
) -> GateReport:
    """:func:`evaluate_gates` with the champion scored here on ``x_test``, the candidate's test features.

    ``champion_features`` gives the champion's own feature rows of the same test bars instead, for a
    champion that sees other features than the candidate (the feature sets changed between them).

    ``champion`` is a loaded pack or a zero-argument loader (so a pack that fails to load is caught too).
    Any failure to load or score it becomes a failing ``champion_scored`` check instead of an exception:
    the run still records its candidate, which simply cannot replace a champion it was not compared with.
    The comparison uses only the test rows at or after the champion's ``fitted_until`` (when the candidate
    carries ``dates``): the champion's training and calibration rows end before them. ``standing`` (the
    champion's age and the live triggers behind the run) decides whether a champion with too few such
    rows may be replaced, and ``lineage`` whether its pass needs confirming (see :func:`evaluate_gates`).
    """
    scored: ScoredPredictions | None = None
    error: str | None = None
    rows: npt.NDArray[np.bool_] | None = None
    note = ""
    if champion is not None:
        try:
            model = champion() if callable(champion) else champion
            x = x_test if champion_features is None else champion_features(model)
            scored = candidate.with_probs(
                model.predict_features(x), p_star=float(model.p_star), name=f"champion {model.version}"
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
        standing=standing,
        lineage=lineage,
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
    "ChampionStanding",
    "Check",
    "GateReport",
    "Lineage",
    "ScoredPredictions",
    "eligible_floor",
    "evaluate_gates",
    "gate_candidate",
    "p_star_floors",
    "unseen_rows",
]
