"""Gate properties on generated bars: a random walk never yields a promotion; a planted signal does.

Packs are built without Celery through the same steps as a run (snapshot -> 8 base models -> meta stage,
as in ``test_predictor.py``) on 1h bars resampled from :mod:`trainfarm.shared.synthetic` 5m bars, with
small models and the default gate thresholds. 120 days of bars give about 1970 train, 420 calibration
and 424 test rows.

The planted signal (a daily drift cycle, learnable from the hour-of-day features) is built with the first
random walk's pack as the champion, so the champion comparison runs for real on the candidate's rows; one
more planted seed is built against a champion pack that cannot be loaded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.packs import farm_settings, train_base_models
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset import DatasetSnapshot, build_snapshot
from trainfarm.shared.evaluation import class_prior, periods_per_year
from trainfarm.shared.features import FEATURE_NAMES
from trainfarm.shared.gates import ChampionSource, GateReport, ScoredPredictions, evaluate_gates
from trainfarm.shared.predictor import Predictor
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.synthetic import planted_signal_bars, random_walk_bars
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.meta_stage import BuiltVersion, build_version

SYMBOL, TF = "SYN_USDT", Timeframe.H1
DAYS = 120
BARS_5M = DAYS * 288
NOISE_SEEDS = tuple(range(101, 113))
SIGNAL_SEEDS = (201, 202, 203)
UNSCORED_SEED = 205
STRENGTH = 0.25
CONFIG = f"""
[universe]
symbols = ["{SYMBOL}"]
timeframes = ["1h"]
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
[timeframes.1h]
training_window = "{DAYS}d"
"""


@dataclass(frozen=True)
class Built:
    version: BuiltVersion
    snapshot: DatasetSnapshot
    report: GateReport


@dataclass
class Farm:
    settings: FarmSettings
    config: FarmConfig
    home: Path

    def build(self, bars: pl.DataFrame, champion: ChampionSource | None = None) -> Built:
        snapshot = build_snapshot(
            bars, symbol=SYMBOL, timeframe=TF, config=self.config, root=self.settings.datasets_dir
        )
        work_dir = self.home / "runs" / uuid.uuid4().hex
        stage, results = train_base_models(snapshot, work_dir, self.config, symbol=SYMBOL, timeframe=TF)
        built = build_version(
            stage, snapshot, results, work_dir, threads=1, run_created_at=datetime.now(UTC), champion=champion
        )
        assert built.gate_report is not None
        return Built(built, snapshot, GateReport.from_json(built.gate_report))


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    home = tmp_path_factory.mktemp("gate_properties") / "home"
    with farm_settings(home, CONFIG) as settings:
        yield Farm(settings, settings.load_config(), home)


@pytest.fixture(scope="module")
def noise(farm: Farm) -> dict[int, Built]:
    return {seed: farm.build(random_walk_bars(BARS_5M, seed)) for seed in NOISE_SEEDS}


@pytest.fixture(scope="module")
def signal(farm: Farm, noise: dict[int, Built]) -> dict[int, Built]:
    champion = Predictor.load(noise[NOISE_SEEDS[0]].version.path)
    return {
        seed: farm.build(planted_signal_bars(BARS_5M, seed, strength=STRENGTH), champion=champion)
        for seed in SIGNAL_SEEDS
    }


@pytest.fixture(scope="module")
def unscored(farm: Farm) -> Built:
    """A planted-signal candidate whose champion pack is gone: the run must finish, the gate must fail."""
    missing = farm.home / "artifacts" / "no-such-pack"
    return farm.build(
        planted_signal_bars(BARS_5M, UNSCORED_SEED, strength=STRENGTH),
        champion=lambda: Predictor.load(missing),
    )


def _bound(built: Built) -> float:
    value = built.report.check("logloss_vs_prior_bootstrap").value
    assert value is not None
    return value


def _table(builds: dict[int, Built]) -> str:
    lines = []
    for seed, b in builds.items():
        values = {c.name: c.value for c in b.report.checks}
        lines.append(
            f"seed {seed}: {'PASS' if b.report.passed else 'fail'} improvement {values['logloss_vs_prior']} "
            f"lower bound {values['logloss_vs_prior_bootstrap']} sharpe {values['sharpe']} "
            f"failed {[c.name for c in b.report.failed()]}"
        )
    return "\n".join(lines)


def test_random_walks_never_pass_the_gates(noise: dict[int, Built], farm: Farm) -> None:
    """No seed passes; the log-loss bootstrap alone rejects every one, with room to spare.

    The lower bound of the relative improvement over the prior stays below 0 (the gate needs +1%): on
    noise no candidate can even show, at 95%, that it beats the class shares at all.
    """
    print("\nrandom walks:\n" + _table(noise))
    floor = farm.config.params(TF).gates.min_logloss_improvement
    for seed, built in noise.items():
        assert not built.report.passed, f"seed {seed} promoted a model trained on a random walk"
        assert not built.report.check("logloss_vs_prior_bootstrap").passed, seed
        assert _bound(built) < 0.0 < floor, f"seed {seed}: the bootstrap bound came close to passing"


def test_a_planted_signal_passes_clearly(signal: dict[int, Built], farm: Farm) -> None:
    """Every seed passes every check, including the comparison with a (noise-trained) champion."""
    print("\nplanted signal:\n" + _table(signal))
    floor = farm.config.params(TF).gates.min_logloss_improvement
    for seed, built in signal.items():
        report = built.report
        assert report.passed, f"seed {seed}: {report.summary()}"
        assert _bound(built) > 5 * floor, f"seed {seed}: the signal passed only narrowly"
        assert report.check("champion_scored").passed
        for name in ("logloss_vs_champion", "brier_vs_champion", "sharpe_vs_champion"):
            assert report.check(name).passed, name


def test_a_champion_that_cannot_be_loaded_blocks_the_promotion(unscored: Built) -> None:
    report = unscored.report
    assert [c.name for c in report.failed()] == ["champion_scored"], report.summary()
    assert "no-such-pack" in report.check("champion_scored").detail
    assert unscored.version.path.is_dir()  # the candidate was still written, for the registry to record


def _rescore(built: Built, farm: Farm) -> ScoredPredictions:
    """The candidate's test predictions, rebuilt from its pack alone (as a promotion step could)."""
    frame = built.snapshot.frame()
    test, train = (frame.filter(pl.col("split") == s) for s in ("test", "train"))
    predictor = Predictor.load(built.version.path, expected_manifest_sha256=built.version.manifest_sha256)
    params = farm.config.params(TF)
    return ScoredPredictions(
        probs=predictor.predict_features(test.select(FEATURE_NAMES).to_numpy()),
        y=test["label"].cast(pl.Int64).to_numpy(),
        fwd_return=test["fwd_return"].to_numpy(),
        prior=class_prior(train["label"].cast(pl.Int64).to_numpy()),
        p_star=predictor.p_star,
        fee=farm.config.evaluation.fee,
        periods_per_year=periods_per_year(TF.minutes),
        label_horizon=params.label_horizon,
    )


def test_the_stored_report_is_reproduced_from_the_pack(signal: dict[int, Built], farm: Farm) -> None:
    """Gating is deterministic: re-gating the pack's own outputs reproduces its stored report exactly."""
    built = signal[SIGNAL_SEEDS[0]]
    again = evaluate_gates(
        candidate=_rescore(built, farm),
        champion=None,
        thresholds=farm.config.params(TF).gates,
        timeframe=TF,
        profile="default",
        seed=farm.config.training.seed,
    )
    stored = [c for c in built.report.checks if "champion" not in c.name]
    assert list(again.checks) == stored


def test_the_strict_profile_applies_the_1h_row(signal: dict[int, Built], farm: Farm) -> None:
    built = signal[SIGNAL_SEEDS[0]]
    gates = farm.config.params(TF).gates
    report = evaluate_gates(
        candidate=_rescore(built, farm),
        champion=None,
        thresholds=gates,
        timeframe=TF,
        profile="strict",
        seed=farm.config.training.seed,
    )
    assert report.profile == "strict"
    names = {c.name for c in report.checks}
    classes = ("down", "neutral", "up")
    assert {f"class_share_{c}_vs_target" for c in classes} <= names
    assert not names & {f"class_share_{c}" for c in classes}
    assert report.check("mean_confidence").threshold == 0.60
    assert report.check("eligible_share").threshold == 0.30
    assert report.check("class_share_neutral_vs_target").threshold == gates.strict.class_share_tolerance
    # Everything the strict table does not name is checked exactly as under the default profile.
    default = {c.name: c for c in built.report.checks}
    for name in ("logloss_vs_prior", "logloss_vs_prior_bootstrap", "output_not_constant", "sharpe"):
        assert report.check(name) == default[name]
    assert np.isfinite(report.check("class_share_up_vs_target").value or np.nan)
