"""`python -m bench gate-power` (`make bench-gates`): the gates end to end at each timeframe's real size.

Every case is a real candidate: generated 5m bars of the timeframe's default training window (plus
warm-up), the snapshot, the 8 base models with the default recipe, the stacker, calibration, p* and the
gates with the default thresholds (:class:`tests.support.candidates.CandidateBench`, the steps of a run
without Celery). Two questions (issue 22, point 4):

- **Noise**: ``TRAINFARM_NOISE_SEEDS`` (60) random walks at 24h, the size where the bounds are widest:
  how many pass (the issue's target: none).
- **Power**: each planted signal at the timeframes where its bars can show it, ``TRAINFARM_SIGNAL_SEEDS``
  (20) seeds each: how many pass (the issue's target: at least 80%). The signals and their strengths are
  :data:`SIGNALS`; what each plants: :mod:`trainfarm.shared.data.synthetic`.

Rates are printed and written with 95% Clopper-Pearson intervals into docs/gate_power.json and the
``<!-- bench gate-power -->`` section of docs/QUALITY.md. A candidate takes seconds at 5m to about a
minute at 1h on two cores; the defaults take about an hour and a half.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bench.gates import DOCS, Rate, write_marked
from tests.support.candidates import CandidateBench
from tests.support.packs import farm_settings
from trainfarm.cli.output import console
from trainfarm.shared.data.synthetic import (
    mean_reverting_bars,
    planted_signal_bars,
    random_walk_bars,
    trending_bars,
    volume_signal_bars,
)
from trainfarm.shared.timeframes import Timeframe

FIGURES = DOCS / "gate_power.json"
SYMBOL = "SYN_USDT"
#: Days of 5m bars per timeframe: its default training window plus warm-up for features and volatility.
DAYS = {Timeframe.M5: 70, Timeframe.H1: 380, Timeframe.H12: 1160, Timeframe.D1: 1560}
Bars = Callable[[int, int], pl.DataFrame]


def _cycle(strength: float, period_days: int) -> Bars:
    return lambda n, seed: planted_signal_bars(n, seed, strength=strength, period_days=period_days)


#: (signal, timeframe) -> bars: a daily cycle (hour-of-day features) where a bar is shorter than a day; a
#: weekly cycle (day-of-week) at 12h and 24h; a volume spike announcing the next hour at 5m; mean
#: reversion and a trend around a one-day moving average at 5m and 1h (a 12h or 24h bar averages them out).
#: The strengths are those of the suite's gate tests (tests/integration/evaluation/test_gate_properties*.py
#: and the synthetic defaults), not tuned here.
SIGNALS: dict[tuple[str, Timeframe], Bars] = {
    ("volume", Timeframe.M5): lambda n, seed: volume_signal_bars(n, seed, strength=0.5),
    ("daily cycle", Timeframe.M5): _cycle(0.25, 1),
    ("mean reversion", Timeframe.M5): mean_reverting_bars,
    ("trend", Timeframe.M5): trending_bars,
    ("daily cycle", Timeframe.H1): _cycle(0.25, 1),
    ("mean reversion", Timeframe.H1): mean_reverting_bars,
    ("trend", Timeframe.H1): trending_bars,
    ("weekly cycle", Timeframe.H12): _cycle(0.05, 7),
    ("weekly cycle", Timeframe.D1): _cycle(0.04, 7),
}


@dataclass(frozen=True)
class Case:
    """One judged candidate."""

    signal: str  #: "noise" for a random walk
    timeframe: Timeframe
    seed: int
    passed: bool
    failed: tuple[str, ...]
    seconds: float


def judge_case(signal: str, timeframe: Timeframe, seed: int, bars: Bars) -> Case:
    """Build and judge one candidate in a home of its own, with the default config for ``timeframe``."""
    started = time.perf_counter()
    config = f'[universe]\nsymbols = ["{SYMBOL}"]\ntimeframes = ["{timeframe.value}"]\n'
    with tempfile.TemporaryDirectory(prefix="bench-gate-power-") as tmp:
        home = Path(tmp) / "home"
        with farm_settings(home, config) as settings:
            bench = CandidateBench(settings, settings.load_config(), home, SYMBOL, timeframe)
            judged = bench.judge(bars(DAYS[timeframe] * 288, seed))
    report = judged.report
    failed = tuple(c.name for c in report.failed())
    return Case(signal, timeframe, seed, report.passed, failed, round(time.perf_counter() - started, 1))


def _summary(cases: list[Case]) -> dict[str, object]:
    failed = Counter(name for c in cases for name in c.failed)
    rate = Rate(sum(c.passed for c in cases), len(cases))
    return {
        "passed": rate.to_json(),
        "failed_most": dict(failed.most_common(4)),
        "seconds": round(sum(c.seconds for c in cases), 1),
    }


def section(noise: list[Case], power: dict[str, list[Case]]) -> str:
    """The docs/QUALITY.md section (without its markers)."""
    rows = []
    for name, cases in power.items():
        rate = Rate(sum(c.passed for c in cases), len(cases))
        failed = Counter(n for c in cases for n in c.failed).most_common(3)
        rows.append(f"| {name} | {rate.text()} | {', '.join(f'{n} {k}' for n, k in failed) or '-'} |\n")
    noise_rate = Rate(sum(c.passed for c in noise), len(noise))
    return (
        "## The gates end to end at real sizes\n\n"
        f"Written by `python -m bench gate-power` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Every case is "
        "a real candidate: generated bars of the timeframe's default training window, the 8 base models "
        "with the default recipe, the stacker, calibration, p* and the default gates "
        "(`bench/gate_power.py`). Counts of candidates passing every check, with 95% Clopper-Pearson "
        "intervals.\n\n"
        f"- **Noise at 24h** (random walks, the widest bounds): {noise_rate.text()} passed (target: none).\n"
        "- **Power** (target: at least 80% of seeds):\n\n"
        "| signal | passed | failed most often |\n|---|---:|---|\n" + "".join(rows)
    )


def main() -> None:
    noise_seeds = int(os.environ.get("TRAINFARM_NOISE_SEEDS", "60"))
    signal_seeds = int(os.environ.get("TRAINFARM_SIGNAL_SEEDS", "20"))
    noise = []
    for seed in range(noise_seeds):
        case = judge_case("noise", Timeframe.D1, 7000 + seed, random_walk_bars)
        console.print(f"noise 24h seed {case.seed}: {'PASS' if case.passed else 'fail'} ({case.seconds} s)")
        noise.append(case)
    power: dict[str, list[Case]] = {}
    for (signal, timeframe), bars in SIGNALS.items():
        name = f"{signal} at {timeframe}"
        for seed in range(signal_seeds):
            case = judge_case(signal, timeframe, 8000 + seed, bars)
            console.print(f"{name} seed {case.seed}: {'PASS' if case.passed else 'fail'} {case.failed}")
            power.setdefault(name, []).append(case)
    figures = {
        "noise_24h": _summary(noise),
        "power": {name: _summary(cases) for name, cases in power.items()},
    }
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    write_marked("gate-power", section(noise, power))
    console.print(f"written: {FIGURES} and docs/QUALITY.md")
