"""The gates' false-positive rates, measured at scale on training-free null candidates.

Every case of :mod:`tests.support.null_cases` is a random walk labelled with its true sigma and a model
whose persistent random probabilities know nothing about it, calibrated, given a p* and scored by the
farm's own code; :func:`~trainfarm.shared.evaluation.gates.evaluate_gates` (default thresholds, no
champion) must reject it. ``CASES`` (250) per timeframe, 1,000 in all, and the 100 planted cases take
about a minute of one core (a case is ~55 ms, nearly all of it the calibrator's grid search, run three
times as the judge runs it); ``TRAINFARM_NULL_CASES=1000`` runs 1,000 per timeframe (about four minutes).

Asserted: the gates pass at most 1% of the null cases, pooled and per timeframe; each skill bound
(``logloss_vs_prior_bound``, ``direction_vs_prior_bound``; nominally 5% one-sided) passes at most 6.5% of
them, pooled; the null cases are not degenerate (a good share keep varying probabilities after
calibration, p* leaves signals, and no single check rejects them all), and the same generator with a real
directional signal planted passes in most seeds, so the harness can see a pass. ``pytest -s`` prints every
rate with its 95% Clopper-Pearson interval, per timeframe and pooled, and which checks failed most often.

About half of the null cases are shrunk all the way to the class prior by the calibrator: their gains over
the prior are exactly 0, so no bound can pass on them. The ``| varying`` rows give the bounds' rates on the
other half alone (printed, not asserted: at 1,000 cases per timeframe they were 6.3% and 6.7%, above the
nominal 5%, while the pooled rates were 3.2% and 3.4%).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pytest
from scipy.stats import binomtest

from tests.support.null_cases import SimulatedCase, null_case, planted_case
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.evaluation.gates import evaluate_gates
from trainfarm.shared.timeframes import Timeframe

pytestmark = pytest.mark.slow

#: Null cases per timeframe (the issue asks for at least 1,000 in all).
CASES = int(os.environ.get("TRAINFARM_NULL_CASES", "250"))
#: The issue's limits: the whole gate, and each skill bound (nominal 5%, plus room for a finite sample).
MAX_PASS_RATE = 0.01
MAX_BOUND_RATE = 0.065
BOUND_CHECKS = ("logloss_vs_prior_bound", "direction_vs_prior_bound")
#: Planted cases per timeframe, and the correlation of their reading with the forward return (strong: the
#: persistent noise and the calibrator's shrinkage eat much of it). When this was written, 0.5 passed the
#: gates in 89 of these 100 seeds (90 since p* is carried as a count of signals; 21-25 of 25 per timeframe);
#: 0.3 in 13 of 80, 0.2 in none of 120.
PLANTED_CASES = 25
STRENGTH = 0.5
#: Floors with a margin under what was measured (84-100% per timeframe, 89% pooled, on these seeds).
MIN_PLANTED_RATE, MIN_PLANTED_RATE_POOLED = 0.6, 0.75
#: Measured 47-56% of 250 per timeframe: the calibrator shrinks the rest all the way to the prior.
MIN_VARYING_SHARE = 0.3
#: Measured 96-99.6% of 250 per timeframe: the cases where p* leaves the gates' signal floor on the test
#: split. (When p* was carried from the cross-fitted calibration probabilities as a number rather than as a
#: count of signals, 58-61%: in 36-39% it left none; trainfarm.shared.evaluation.trading.matched_threshold.)
MIN_SIGNALS_SHARE = 0.8


@dataclass(frozen=True)
class Outcome:
    """What one case's gate report and calibration came to."""

    timeframe: Timeframe
    passed: bool
    checks: tuple[str, ...]  #: every check, in report order
    failed: tuple[str, ...]
    varying: bool  #: the calibrator kept some of the model (shrink < 1): its test output is not constant
    signals: int  #: test signals at p*


def _outcome(case: SimulatedCase, config: FarmConfig) -> Outcome:
    report = evaluate_gates(
        candidate=case.candidate,
        champion=None,
        thresholds=config.params(case.timeframe).gates,
        timeframe=case.timeframe,
        profile=config.gates.profile,
        seed=case.seed,
    )
    return Outcome(
        case.timeframe,
        report.passed,
        tuple(c.name for c in report.checks),
        tuple(c.name for c in report.checks if not c.passed),
        case.calibrator.shrink < 1.0,
        case.candidate.trading().signals,
    )


@pytest.fixture(scope="module")
def config() -> FarmConfig:
    config = FarmConfig()
    assert config.gates.profile == "default"
    return config


@pytest.fixture(scope="module")
def nulls(config: FarmConfig) -> dict[Timeframe, list[Outcome]]:
    return {
        tf: [_outcome(null_case(tf, seed, config=config), config) for seed in range(CASES)]
        for tf in Timeframe
    }


@pytest.fixture(scope="module")
def planted(config: FarmConfig) -> dict[Timeframe, list[Outcome]]:
    return {
        tf: [
            _outcome(planted_case(tf, seed, config=config, strength=STRENGTH), config)
            for seed in range(PLANTED_CASES)
        ]
        for tf in Timeframe
    }


def _rate(k: int, n: int) -> str:
    """``k/n``, its rate and 95% Clopper-Pearson interval, in percent."""
    ci = binomtest(k, n).proportion_ci(0.95)
    return f"{k}/{n} {100 * k / n:.1f}% [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def _columns(outcomes: Mapping[Timeframe, Sequence[Outcome]]) -> dict[str, list[Outcome]]:
    cols = {str(tf): list(cases) for tf, cases in outcomes.items()}
    cols["pooled"] = [o for cases in outcomes.values() for o in cases]
    return cols


def _report(outcomes: Mapping[Timeframe, Sequence[Outcome]], title: str = "null cases") -> str:
    """Every rate with its 95% Clopper-Pearson interval, per timeframe and pooled, and the checks that failed
    most often (printed with ``pytest -s``)."""
    cols = _columns(outcomes)
    pooled = cols["pooled"]
    names = list(dict.fromkeys(name for o in pooled for name in o.checks))
    rows: list[tuple[str, Callable[[Outcome], bool], Callable[[Outcome], bool]]] = [
        ("gate passed", lambda o: o.passed, lambda o: True)
    ]
    rows += [(f"  {name} passed", _passes(name), lambda o: True) for name in names]
    rows += [
        ("varying output (shrink<1)", lambda o: o.varying, lambda o: True),
        ("no test signal at p*", lambda o: o.signals == 0, lambda o: True),
    ]
    rows += [(f"  {name} | varying", _passes(name), lambda o: o.varying) for name in BOUND_CHECKS]
    width = 30
    lines = [f"{title}: rate, k/n, 95% Clopper-Pearson interval (%)"]
    lines.append(f"{'':<36}" + "".join(f"{column:>{width}}" for column in cols))
    for label, hit, among in rows:
        cells = []
        for cases in cols.values():
            pool = [o for o in cases if among(o)]
            cells.append(_rate(sum(hit(o) for o in pool), len(pool)) if pool else "-")
        lines.append(f"{label:<36}" + "".join(f"{cell:>{width}}" for cell in cells))
    failed = Counter(name for o in pooled for name in o.failed)
    sole = Counter(o.failed[0] for o in pooled if len(o.failed) == 1)
    lines.append("failed most often (pooled): " + ", ".join(f"{n} {k}" for n, k in failed.most_common()))
    lines.append(
        "the only failed check (pooled): " + (", ".join(f"{n} {k}" for n, k in sole.most_common()) or "-")
    )
    return "\n".join(lines)


def _passes(name: str) -> Callable[[Outcome], bool]:
    return lambda o: name not in o.failed


def test_gates_pass_at_most_one_percent_of_null_cases(nulls: dict[Timeframe, list[Outcome]]) -> None:
    print()
    print(_report(nulls))
    for column, cases in _columns(nulls).items():
        passed = sum(o.passed for o in cases)
        assert passed <= MAX_PASS_RATE * len(cases), (
            f"{column}: {_rate(passed, len(cases))} of null cases passed"
        )


def test_skill_bounds_false_positive_rates(nulls: dict[Timeframe, list[Outcome]]) -> None:
    pooled = _columns(nulls)["pooled"]
    for name in BOUND_CHECKS:
        hits = sum(name not in o.failed for o in pooled)
        assert hits <= MAX_BOUND_RATE * len(pooled), f"{name} passed {_rate(hits, len(pooled))} of null cases"


def test_null_cases_are_not_degenerate(nulls: dict[Timeframe, list[Outcome]]) -> None:
    """The nulls give the gates something to reject: varying output, signals, and no check that fails all."""
    for tf, cases in nulls.items():
        varying = [o for o in cases if o.varying]
        assert len(varying) >= MIN_VARYING_SHARE * len(cases), f"{tf}: {_rate(len(varying), len(cases))} vary"
        enough = sum("signals" not in o.failed for o in cases)
        assert enough >= MIN_SIGNALS_SHARE * len(cases), (
            f"{tf}: p* left enough signals in {_rate(enough, len(cases))}"
        )
    pooled = _columns(nulls)["pooled"]
    for name in pooled[0].checks:
        assert any(name not in o.failed for o in pooled), f"{name} rejects every null case"


def test_a_planted_signal_passes_in_most_seeds(planted: dict[Timeframe, list[Outcome]]) -> None:
    """The harness has power: the same generator with a real directional signal gets through the gates."""
    print()
    print(_report(planted, title=f"planted signal, strength {STRENGTH}"))
    for column, cases in _columns(planted).items():
        floor = MIN_PLANTED_RATE_POOLED if column == "pooled" else MIN_PLANTED_RATE
        passed = sum(o.passed for o in cases)
        assert passed >= floor * len(cases), (
            f"{column}: only {_rate(passed, len(cases))} planted cases passed"
        )
