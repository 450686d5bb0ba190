"""`python -m bench gates` (`make bench-gates`): the gates' error rates at scale, in docs/QUALITY.md.

Repeated testing (issue 22, point 6): :mod:`tests.support.retests` re-tests one null market over a freshness
period at every timeframe, with one model throughout (``same``) and with a new model at each re-test
(``fresh``), ``TRAINFARM_RETEST_PERIODS`` periods each (1,000 by default; a period is 0.1 s at 24h to 2 s at
1h of one core, so 1,000 of each are about an hour on two cores). Each rate is printed and written with its
95% Clopper-Pearson interval into docs/gates.json and into the ``<!-- bench gates -->`` section of
docs/QUALITY.md (:func:`write_marked`; ``make bench-quality`` keeps that section as it is).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scipy.stats import binomtest

from bench.sections import write_section
from tests.support.retests import MODELS, Period, retest_period
from trainfarm.cli.output import console
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.zoo.threads import available_cores

DOCS = Path(__file__).resolve().parents[1] / "docs"
REPORT = DOCS / "QUALITY.md"
FIGURES = DOCS / "gates.json"


def _periods(job: tuple[Timeframe, str, int, int]) -> list[Period]:
    timeframe, model, first, count = job
    config = FarmConfig()
    return [
        retest_period(timeframe, seed, config=config, model=model) for seed in range(first, first + count)
    ]


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` and its 95% Clopper-Pearson interval."""

    k: int
    n: int

    def interval(self) -> tuple[float, float]:
        if self.n == 0:
            return 0.0, 1.0  # nothing measured: nothing known
        ci = binomtest(self.k, self.n).proportion_ci(0.95)
        return float(ci.low), float(ci.high)

    def text(self) -> str:
        low, high = self.interval()
        return f"{self.k}/{self.n} ({100 * low:.1f}-{100 * high:.1f}%)"

    def to_json(self) -> dict[str, object]:
        low, high = self.interval()
        rate = self.k / self.n if self.n else None
        return {"k": self.k, "n": self.n, "rate": rate, "low": low, "high": high}


@dataclass(frozen=True)
class Row:
    """One (timeframe, model) of the repeated-testing Monte Carlo."""

    timeframe: str
    model: str
    retests: int
    with_rule: Rate  #: periods with a promotion on two consecutive passes
    without_rule: Rate  #: ... on one pass
    bounds_anywhere: Rate  #: periods where both skill bounds passed at some re-test
    bounds_twice: Rate  #: ... at two consecutive re-tests

    @classmethod
    def of(cls, timeframe: Timeframe, model: str, runs: list[Period]) -> Row:
        n = len(runs)
        return cls(
            str(timeframe),
            model,
            runs[0].retests,
            Rate(sum(p.promoted_with_rule for p in runs), n),
            Rate(sum(p.promoted_without_rule for p in runs), n),
            Rate(sum(p.bound_passes > 0 for p in runs), n),
            Rate(sum(p.bounds_twice for p in runs), n),
        )

    def cells(self) -> list[str]:
        rates = (self.with_rule, self.without_rule, self.bounds_anywhere, self.bounds_twice)
        return [self.timeframe, self.model, str(self.retests), *(r.text() for r in rates)]

    def to_json(self) -> dict[str, object]:
        return {
            "timeframe": self.timeframe,
            "model": self.model,
            "retests": self.retests,
            "promoted_with_rule": self.with_rule.to_json(),
            "promoted_without_rule": self.without_rule.to_json(),
            "bounds_anywhere": self.bounds_anywhere.to_json(),
            "bounds_twice": self.bounds_twice.to_json(),
        }


def repeated_testing(periods: int) -> list[Row]:
    """Every (timeframe, model): its periods' rates (see the module docs)."""
    chunk = max(1, periods // 10)
    jobs = [
        (tf, model, first, min(chunk, periods - first))
        for tf in Timeframe
        for model in MODELS
        for first in range(0, periods, chunk)
    ]
    done: dict[tuple[Timeframe, str], list[Period]] = {}
    with ProcessPoolExecutor(max_workers=max(1, available_cores())) as pool:
        for job, runs in zip(jobs, pool.map(_periods, jobs), strict=True):
            done.setdefault((job[0], job[1]), []).extend(runs)
    rows = [Row.of(tf, model, runs) for (tf, model), runs in done.items()]
    for row in rows:
        console.print(" | ".join(row.cells()))
    return rows


def section(rows: list[Row], periods: int) -> str:
    """The docs/QUALITY.md section (without its markers)."""
    table = "".join("| " + " | ".join(row.cells()) + " |\n" for row in rows)
    return (
        "## Repeated testing\n\n"
        f"Written by `python -m bench gates` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. A market's "
        "candidates are judged again and again on almost the same test rows (meta-only runs hourly at 5m "
        "and every 6 h at 1h, full retrains, triggers), each judgement a test at the bounds' 95%: over a "
        "freshness period a market gets many chances to pass by luck. **The farm promotes on the second "
        "consecutive pass** of a market's judgements (the `confirmed` check, "
        "`shared/evaluation/repeat_checks.py`; the first candidate a market ever has judged needs one). "
        "The alternative, judging each candidate only on test rows its market was not judged on, was not "
        "chosen: rows accrue one freshness period per period, a small part of a test split (3 days of a "
        "55-day 1h split), so every candidate after the first would be judged on a few days of rows with "
        "almost no power, while two passes keep every judgement at full size and a real edge, which "
        "persists, passes twice about as often as once.\n\nThe Monte Carlo (`tests/support/retests.py`, "
        f"{periods} freshness periods per row): a null market (a random walk labelled with its true "
        "sigma, persistent random probabilities, the farm's own calibration, p* and gates) re-judged at "
        "every hour new bars close (5m: 24 a day; 1h: 72 in 3 days) or at every new bar (12h and 24h: 28 "
        "and 14 in 14 days), the windows moving on by the new bars. `same`: one model throughout "
        "(meta-only re-tests of the same base models), the hard case for two passes; `fresh`: a new "
        "model each time, the hard case for one. A period counts once, however many re-tests passed. "
        "Counts with 95% Clopper-Pearson intervals:\n\n| timeframe | model | re-tests | promoted (two "
        "passes) | promoted (one pass) | both skill bounds passed somewhere | ... twice in a row "
        "|\n|---|---|---:|---:|---:|---:|---:|\n"
        + table
        + "\nThe whole gate passes null candidates so rarely (the book's Sharpe after fees and the signal "
        "floor reject most of them; tests/integration/evaluation/test_gate_null_rates.py) that the false "
        "promotions per freshness period stay under the 5% limit with or without the rule. The last two "
        "columns are the multiplicity the rule controls where the other checks do not: with fresh models the "
        "skill bounds pass somewhere in many periods, twice in a row in few; with one model throughout a "
        "lucky pass tends to repeat, so there two passes cost little more than one, and that case relies on "
        "the other checks and on the champion comparison.\n"
    )


def write_marked(name: str, body: str) -> None:
    """Replace the section ``name`` of docs/QUALITY.md (:func:`bench.sections.write_section`);
    `make bench-quality` keeps such sections as they are."""
    write_section(REPORT, name, body)


def main() -> None:
    periods = int(os.environ.get("TRAINFARM_RETEST_PERIODS", "1000"))
    rows = repeated_testing(periods)
    figures: dict[str, object] = {"periods": periods, "repeated_testing": [r.to_json() for r in rows]}
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    write_marked("gates", section(rows, periods))
    console.print(f"written: {FIGURES} and {REPORT}")
