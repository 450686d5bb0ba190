"""Gate properties at each timeframe's real size: 5m, 12h and 24h (1h: ``test_gate_properties.py``).

Each case is the timeframe's default training window of generated bars (plus warm-up), the default
gate thresholds and small models (:mod:`tests.support.candidates`):

========  ===========  =====================  ==========================================================
tf        window       calibration / test     planted signal
========  ===========  =====================  ==========================================================
5m        60 days      ~2,580 / ~2,590        a volume spike announces the next hour's move (the
                                              ``volume_z`` and ``ret`` features; no clock, no trend)
12h       1,095 days   ~330 / ~330            a weekly cycle (the ``dow`` features); label horizon 1 day
24h       1,460 days   ~220 / ~220            a weekly cycle: the size where the bound is widest
========  ===========  =====================  ==========================================================

At every size: random walks never pass, and the lower bound clears 0 on at most two seeds of
twelve (or one of six; 5% expected); a useless model's test log-loss stays within 0.5% of the prior's;
at least two of three planted seeds pass every check (three seeds show a real signal can pass, not the
power).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl
import pytest

from tests.support.candidates import CandidateBench, Judged, bound, final_vs_prior, table
from tests.support.packs import farm_settings
from trainfarm.shared.data.synthetic import planted_signal_bars, random_walk_bars, volume_signal_bars
from trainfarm.shared.timeframes import Timeframe

SYMBOL = "SYN_USDT"
SIGNAL_SEEDS = (501, 502, 503)


def _weekly(strength: float) -> Callable[[int, int], pl.DataFrame]:
    """A weekly cycle whose peak drift per 5m bar is ``strength`` bar sigmas (0.04: a day at the peak
    moves about 0.6 of a day's noise std)."""

    def make(n: int, seed: int) -> pl.DataFrame:
        return planted_signal_bars(n, seed, strength=strength, period_days=7)

    return make


@dataclass(frozen=True)
class Case:
    timeframe: Timeframe
    days: int  #: the default training window plus warm-up for features and label volatility
    noise_seeds: tuple[int, ...]
    signal: Callable[[int, int], pl.DataFrame]
    calibration_rows: tuple[int, int]  #: the real size this case must reproduce

    @property
    def bars(self) -> int:
        return self.days * 288


CASES = {
    "5m": Case(Timeframe.M5, 70, tuple(range(401, 407)), volume_signal_bars, (2000, 3000)),
    "12h": Case(Timeframe.H12, 1160, tuple(range(401, 413)), _weekly(0.05), (280, 380)),
    "24h": Case(Timeframe.D1, 1560, tuple(range(401, 413)), _weekly(0.04), (180, 260)),
}


@dataclass
class Built3:
    case: Case
    noise: dict[int, Judged]
    signal: dict[int, Judged]


@pytest.fixture(scope="module", params=list(CASES))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built3]:
    case = CASES[request.param]
    config = f"""
[universe]
symbols = ["{SYMBOL}"]
timeframes = ["{case.timeframe.value}"]
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
"""
    home = tmp_path_factory.mktemp(f"gate_sizes_{request.param}") / "home"
    with farm_settings(home, config) as settings:
        bench = CandidateBench(settings, settings.load_config(), home, SYMBOL, case.timeframe)
        # Judged only: these tests read gate reports and metrics, which a written pack would only repeat.
        noise = {seed: bench.judge(random_walk_bars(case.bars, seed)) for seed in case.noise_seeds}
        signal = {seed: bench.judge(case.signal(case.bars, seed)) for seed in SIGNAL_SEEDS}
        yield Built3(case, noise, signal)


def test_the_splits_have_the_real_size(built: Built3) -> None:
    rows = next(iter(built.noise.values())).snapshot.split_rows
    low, high = built.case.calibration_rows
    assert low <= rows["calibration"] <= high and low <= rows["test"] <= high, rows


def test_noise_never_passes(built: Built3) -> None:
    print(f"\nrandom walks, {built.case.timeframe}:\n" + table(built.noise))
    for seed, b in built.noise.items():
        assert not b.report.passed, f"seed {seed} promoted a model trained on a random walk"
    significant = [seed for seed, b in built.noise.items() if bound(b) > 0.0]
    assert len(significant) <= len(built.noise) // 6, f"the bound cleared 0 on {significant}"


def test_a_useless_model_stays_within_half_a_percent_of_the_prior(built: Built3) -> None:
    for seed, b in built.noise.items():
        final, prior = final_vs_prior(b)
        assert final <= 1.005 * prior, f"seed {seed}: {final:.4f} vs prior {prior:.4f}"


def test_a_planted_signal_passes(built: Built3) -> None:
    """At least two of the three seeds pass every check (three seeds cannot show the 80% power the gates
    are asked for; at 24h one seed failed only the directional bound, on about 120 rows that moved)."""
    print(f"\nplanted signal, {built.case.timeframe}:\n" + table(built.signal))
    passed = [seed for seed, b in built.signal.items() if b.report.passed]
    failed = {seed: b.report.summary() for seed, b in built.signal.items() if not b.report.passed}
    assert len(passed) >= 2, failed
