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

Rates are printed and written with 95% Clopper-Pearson intervals into docs/gate_power.json (every case
kept as soon as it is judged, with the sha256 of the code: a run cut short goes on where it stopped) and
the ``<!-- bench gate-power -->`` section of docs/QUALITY.md. A candidate takes seconds at 5m to about a
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


def _key() -> dict[str, object]:
    """What stored cases are valid for: the code (as the replay's key) and the cases asked for."""
    from bench.replay import code_sha256

    return {"code_sha256": code_sha256(), "signals": [f"{s} at {tf}" for s, tf in SIGNALS]}


def _stored(key: dict[str, object]) -> list[Case]:
    """The cases an interrupted run with the same key already judged (else none)."""
    if not FIGURES.is_file():
        return []
    stored = json.loads(FIGURES.read_text())
    if not isinstance(stored, dict) or stored.get("key") != key:
        return []
    return [
        Case(c["signal"], Timeframe(c["timeframe"]), c["seed"], c["passed"], tuple(c["failed"]), c["seconds"])
        for c in stored.get("cases", [])
    ]


def _save(key: dict[str, object], cases: list[Case], summary: dict[str, object] | None = None) -> None:
    from trainfarm.shared.atomicio import atomic_write_text

    figures: dict[str, object] = {
        "key": key,
        "cases": [
            {
                "signal": c.signal,
                "timeframe": c.timeframe.value,
                "seed": c.seed,
                "passed": c.passed,
                "failed": list(c.failed),
                "seconds": c.seconds,
            }
            for c in cases
        ],
    }
    if summary is not None:
        figures |= summary
    atomic_write_text(FIGURES, json.dumps(figures, indent=1) + "\n")


def main() -> None:
    """Judge every case (each kept in docs/gate_power.json at once: an interrupted run goes on where it
    stopped, for the same code), then write the summary and the docs/QUALITY.md section."""
    noise_seeds = int(os.environ.get("TRAINFARM_NOISE_SEEDS", "60"))
    signal_seeds = int(os.environ.get("TRAINFARM_SIGNAL_SEEDS", "20"))
    key = _key()
    cases = _stored(key)
    done = {(c.signal, c.timeframe, c.seed) for c in cases}
    plan: list[tuple[str, Timeframe, int, Bars]] = [
        ("noise", Timeframe.D1, 7000 + seed, random_walk_bars) for seed in range(noise_seeds)
    ]
    plan += [
        (signal, timeframe, 8000 + seed, bars)
        for (signal, timeframe), bars in SIGNALS.items()
        for seed in range(signal_seeds)
    ]
    for signal, timeframe, seed, bars in plan:
        if (signal, timeframe, seed) in done:
            continue
        case = judge_case(signal, timeframe, seed, bars)
        verdict = "PASS" if case.passed else "fail"
        console.print(f"{signal} at {timeframe} seed {seed}: {verdict} {case.failed} ({case.seconds} s)")
        cases.append(case)
        _save(key, cases)
    wanted = {(s, tf, seed) for s, tf, seed, _ in plan}
    judged = [c for c in cases if (c.signal, c.timeframe, c.seed) in wanted]
    noise = [c for c in judged if c.signal == "noise"]
    power: dict[str, list[Case]] = {}
    for c in judged:
        if c.signal != "noise":
            power.setdefault(f"{c.signal} at {c.timeframe}", []).append(c)
    summary = {
        "noise_24h": _summary(noise),
        "power": {name: _summary(group) for name, group in power.items()},
    }
    _save(key, cases, summary)
    write_marked("gate-power", section(noise, power))
    console.print(f"written: {FIGURES} and docs/QUALITY.md")
