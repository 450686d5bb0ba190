"""One market re-tested over a freshness period: the Monte Carlo of repeated testing (issue 22, point 6).

A period is the timeframe's freshness limit (5m: 1 d, 1h: 3 d, 12h and 24h: 14 d). The market's candidate is
judged again every hour new bars close, as the farm can (meta-only runs hourly at 5m, full retrains and
triggers in between), each time on windows moved on by the new bars: 24 re-tests of 12 new bars at 5m, 72
of one bar at 1h, and at 12h and 24h one per new bar (28 and 14; re-running a seeded retrain on the same bars
re-judges the same candidate). Everything else is :mod:`tests.support.null_cases`: a random walk labelled
with its true sigma, persistent random probabilities, the farm's calibration, p* and gates.

Two models of how the candidates relate, bracketing a real farm:

- ``same``: one model's probabilities over the whole period; the re-tests differ by their windows and
  recalibration only (meta-only re-tests of the same base models, retrains that learn the same noise). The
  hard case for two passes in a row: a lucky pass is likely to be lucky again.
- ``fresh``: a new random model at every re-test. The hard case for a single pass: every re-test is another
  draw.

A period is a false promotion under a rule when any of its re-tests would have been promoted: with the
``confirmed`` check (:mod:`trainfarm.shared.evaluation.repeat_checks`: the previous re-test's evidence), and
without it (any pass promotes, as before issue 22). No champion is held meanwhile: one only adds checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from tests.support.null_cases import (
    BIAS_SD,
    LOGIT_SCALES,
    PERSISTENCE,
    TEST_ROWS,
    _ar1,
    _posterior,
    _softmax,
    judged,
    null_walk,
)
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.evaluation.gates import evaluate_gates
from trainfarm.shared.evaluation.repeat_checks import (
    NOT_EVIDENCE,
    Lineage,
    PreviousJudgement,
    evidence_passed,
)
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.arrays import FloatArray

MODELS: tuple[str, ...] = ("same", "fresh")
SKILL_BOUNDS: tuple[str, ...] = ("logloss_vs_prior_bound", "direction_vs_prior_bound")
_STREAM: Mapping[Timeframe, int] = {tf: 10 + i for i, tf in enumerate(Timeframe)}


@dataclass(frozen=True)
class Period:
    """One freshness period of re-tests and what each rule would have promoted."""

    timeframe: Timeframe
    seed: int
    model: str
    retests: int
    passes: int  #: re-tests whose evidence passed (a promotion without the rule)
    promoted_with_rule: bool  #: some re-test passed every check, ``confirmed`` included
    promoted_without_rule: bool  #: some re-test's evidence passed
    #: Re-tests where both skill bounds (log-loss and direction against the prior) passed, and whether two
    #: consecutive re-tests did: the repeated-testing inflation at the bounds alone, before the other checks.
    bound_passes: int
    bounds_twice: bool


def schedule(timeframe: Timeframe, freshness: timedelta) -> tuple[int, int]:
    """``(re-tests, new bars per re-test)`` over one freshness period (see the module docs)."""
    hour = timedelta(hours=1)
    if timeframe.duration < hour:
        step = round(hour / timeframe.duration)
        return round(freshness / hour), step
    return round(freshness / timeframe.duration), 1


def retest_period(timeframe: Timeframe, seed: int, *, config: FarmConfig, model: str) -> Period:
    """Re-test one null market over a freshness period under ``model`` (``same`` or ``fresh``)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    params = config.params(timeframe)
    horizon, n = params.label_horizon, TEST_ROWS[timeframe]
    retests, step = schedule(timeframe, params.freshness_limit)
    rng = np.random.default_rng([seed, _STREAM[timeframe], MODELS.index(model)])
    rows = 2 * n + horizon + step * (retests - 1)
    walk = null_walk(rng, timeframe, config, rows)
    known = np.log(np.broadcast_to(_posterior(np.zeros(1), 0.0, params.label_threshold), (rows, 3)))

    def model_probs() -> FloatArray:
        persistence, logit_scale = float(rng.choice(PERSISTENCE)), float(rng.choice(LOGIT_SCALES))
        return _softmax(known + rng.normal(0.0, BIAS_SD, 3) + _ar1(rng, rows, persistence, logit_scale))

    raw = model_probs()
    market = f"null {timeframe}"
    previous: PreviousJudgement | None = None
    passes, with_rule, bound_passes, bounds_twice, bounds_before = 0, False, 0, False, False
    for j in range(retests):
        if model == "fresh" and j > 0:
            raw = model_probs()
        o = j * step
        _, candidate = judged(
            timeframe,
            config,
            walk,
            raw,
            cal=slice(o, o + n),
            test=slice(o + n + horizon, o + 2 * n + horizon),
        )
        report = evaluate_gates(
            candidate=candidate,
            champion=None,
            thresholds=params.gates,
            timeframe=timeframe,
            profile=config.gates.profile,
            seed=seed,
            lineage=Lineage(market, previous),
        )
        with_rule = with_rule or report.passed
        evidence = evidence_passed(report.checks)
        passes += evidence
        failed = tuple(c.name for c in report.failed() if c.name not in NOT_EVIDENCE)
        previous = PreviousJudgement(f"re-test {j}", evidence, failed)
        bounds = all(report.check(name).passed for name in SKILL_BOUNDS)
        bound_passes += bounds
        bounds_twice = bounds_twice or (bounds and bounds_before)
        bounds_before = bounds
    return Period(timeframe, seed, model, retests, passes, with_rule, passes > 0, bound_passes, bounds_twice)


__all__ = ["MODELS", "SKILL_BOUNDS", "Period", "retest_period", "schedule"]
