"""Gate properties on generated bars: a random walk never yields a promotion; a planted signal does.

Packs are built without Celery through the same steps as a run (snapshot -> 8 base models -> meta stage, as
the session's ``pack`` in ``tests/conftest.py``) on 1h bars resampled from
:mod:`trainfarm.shared.data.synthetic` 5m bars, with small models and the default gate thresholds. 120 days of
bars give about 1970 train, 420 calibration and 424 test rows.

The planted signal (a daily drift cycle, learnable from the hour-of-day features) is built with the first
random walk's pack as the champion, so the champion comparison runs for real on the candidate's rows; one
more planted seed is built against a champion pack that cannot be loaded. The first seed of each kind is
written as a pack (the rejected and the promoted pack the tests load); the others are judged only, through
the same steps up to the gate report and metrics (:meth:`tests.support.candidates.CandidateBench.judge`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import numpy as np
import polars as pl
import pytest

from tests.support.candidates import Built, CandidateBench, Judged, bound, final_vs_prior, table
from tests.support.packs import farm_settings
from trainfarm.shared.atomicio import sha256_file
from trainfarm.shared.data.synthetic import planted_signal_bars, random_walk_bars
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.evaluation.book import bar_returns
from trainfarm.shared.evaluation.gates import ScoredPredictions, evaluate_gates
from trainfarm.shared.evaluation.metrics import class_prior
from trainfarm.shared.evaluation.trading import periods_per_year, signal_indicator, signal_rate_error
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.timeframes import Timeframe

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


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CandidateBench]:
    home = tmp_path_factory.mktemp("gate_properties") / "home"
    with farm_settings(home, CONFIG) as settings:
        yield CandidateBench(settings, settings.load_config(), home, SYMBOL, TF)


@pytest.fixture(scope="module")
def noise(bench: CandidateBench) -> dict[int, Judged]:
    return {
        seed: (bench.build if seed == NOISE_SEEDS[0] else bench.judge)(random_walk_bars(BARS_5M, seed))
        for seed in NOISE_SEEDS
    }


@pytest.fixture(scope="module")
def rejected(noise: dict[int, Judged]) -> Built:
    """The first random walk's pack: rejected by the gates, the planted signal's champion."""
    built = noise[NOISE_SEEDS[0]]
    assert isinstance(built, Built)
    return built


@pytest.fixture(scope="module")
def signal(bench: CandidateBench, rejected: Built) -> dict[int, Judged]:
    champion = Predictor.load(rejected.version.path)
    return {
        seed: (bench.build if seed == SIGNAL_SEEDS[0] else bench.judge)(
            planted_signal_bars(BARS_5M, seed, strength=STRENGTH), champion
        )
        for seed in SIGNAL_SEEDS
    }


@pytest.fixture(scope="module")
def promoted(signal: dict[int, Judged]) -> Built:
    """The first planted seed's pack: it passed the gates, so it was refit on the whole snapshot."""
    built = signal[SIGNAL_SEEDS[0]]
    assert isinstance(built, Built)
    return built


@pytest.fixture(scope="module")
def unscored(bench: CandidateBench) -> Built:
    """A planted-signal candidate whose champion pack is gone: the run must finish, the gate must fail."""
    missing = bench.home / "artifacts" / "no-such-pack"
    return bench.build(
        planted_signal_bars(BARS_5M, UNSCORED_SEED, strength=STRENGTH),
        champion=lambda: Predictor.load(missing),
    )


_bound, _table = bound, table


def test_random_walks_never_pass_the_gates(noise: dict[int, Judged], bench: CandidateBench) -> None:
    """No seed passes; the improvement over the prior is rarely even significant.

    The bound check asks for a 95% lower bound above 0, so on noise about one seed in twenty may clear it
    by chance (and is then stopped by the point estimate's floor or another check). Twelve seeds cannot
    measure that rate (more than two of twelve passes 89% of the time at a true 10%): the rates are
    measured on thousands of cases in test_gate_null_rates.py and tests/unit/evaluation/test_bounds.py.
    """
    print("\nrandom walks:\n" + _table(noise))
    for seed, built in noise.items():
        assert not built.report.passed, f"seed {seed} promoted a model trained on a random walk"
        check = built.report.check("logloss_vs_prior_bound")
        assert check.op == ">" and check.threshold == 0.0
    significant = [seed for seed, built in noise.items() if _bound(built) > 0.0]
    assert len(significant) <= 2, f"the bound cleared 0 on {significant}"


def test_a_planted_signal_passes_clearly(signal: dict[int, Judged], bench: CandidateBench) -> None:
    """Every seed passes every check, including the comparison with a (noise-trained) champion."""
    print("\nplanted signal:\n" + _table(signal))
    floor = bench.config.params(TF).gates.min_logloss_improvement
    for seed, built in signal.items():
        report = built.report
        assert report.passed, f"seed {seed}: {report.summary()}"
        assert _bound(built) > floor, f"seed {seed}: the signal passed only narrowly"
        assert report.check("champion_scored").passed
        for name in ("logloss_vs_champion", "brier_vs_champion", "sharpe_vs_champion"):
            assert report.check(name).passed, name


def test_a_useless_model_scores_within_half_a_percent_of_the_prior(noise: dict[int, Judged]) -> None:
    """On noise the stacker and calibrator fall back toward the prior: never worse than knowing nothing."""
    for seed, built in noise.items():
        final, prior = final_vs_prior(built)
        assert final <= 1.005 * prior, f"seed {seed}: {final:.4f} vs prior {prior:.4f}"


def test_a_promoted_pack_is_refit_on_the_whole_snapshot(promoted: Built) -> None:
    """Passing the gates refits every base model on train + calibration + test; a rejected pack is not."""
    built = promoted
    manifest: dict[str, Any] = read_manifest(built.version.path)
    deployed = manifest["data"]["deployed"]
    frame = built.snapshot.frame()
    assert deployed["refit"] is True and deployed["rows"] == frame.height
    assert deployed["base_models_fitted_on"] == ["train", "calibration", "test"]
    assert deployed["label_end"] == frame["label_end"].max().isoformat()  # type: ignore[union-attr]
    evaluated = manifest["data"]["evaluated"]
    assert evaluated["train_label_end"] < evaluated["split_first_bar"]["calibration"]
    assert evaluated["calibration_label_end"] < evaluated["split_first_bar"]["test"]
    # The shipped files are the refit ones, not the evaluated ones (which the gate report judged).
    runs = built.version.path
    for entry in manifest["base_models"]:
        assert entry["sha256"] == sha256_file(runs / entry["file"])
    predictor = Predictor.load(built.version.path, expected_manifest_sha256=built.version.manifest_sha256)
    predictor.self_check()
    assert predictor.fitted_until == datetime.fromisoformat(deployed["label_end"])


def test_a_rejected_pack_ships_the_evaluated_models(rejected: Built) -> None:
    built = rejected
    deployed = cast(dict[str, Any], read_manifest(built.version.path)["data"])["deployed"]
    assert deployed["refit"] is False and deployed["base_models_fitted_on"] == ["train"]
    test_start = built.snapshot.split_first_bar["test"]
    assert deployed["label_end"] < test_start


def test_the_champion_is_compared_only_after_its_own_data(promoted: Built, bench: CandidateBench) -> None:
    """A refit champion saw every row of its snapshot: the successor is compared only on later rows.

    The successor's window is the champion's moved on by ten days, so its test split starts inside the
    champion's data. Every row the champion was fitted on (train, calibration and test of its snapshot,
    by label end) ends at or before the first row the comparison uses.
    """
    champion_built = promoted
    champion = Predictor.load(champion_built.version.path)
    bars = planted_signal_bars(BARS_5M + 10 * 288, SIGNAL_SEEDS[0], strength=STRENGTH)
    successor = bench.judge(bars, champion)
    fitted = champion_built.snapshot.frame()["label_end"].max()
    assert champion.fitted_until == fitted
    test = successor.snapshot.frame().filter(pl.col("split") == "test")
    compared = test.filter(pl.col("date") >= fitted)
    assert 0 < compared.height < test.height  # the windows overlap, and later rows exist
    assert fitted <= compared["date"].min()  # type: ignore[operator]
    detail = successor.report.check("champion_scored").detail
    assert f"{compared.height} of the candidate's {test.height} test rows" in detail
    assert {"logloss_vs_champion", "brier_vs_champion"} <= {c.name for c in successor.report.checks}


def test_a_champion_that_cannot_be_loaded_blocks_the_promotion(unscored: Built) -> None:
    report = unscored.report
    assert [c.name for c in report.failed()] == ["champion_scored"], report.summary()
    assert "no-such-pack" in report.check("champion_scored").detail
    assert unscored.version.path.is_dir()  # the candidate was still written, for the registry to record


def _rescore(built: Built, bench: CandidateBench) -> ScoredPredictions:
    """The candidate's test predictions, rebuilt from its pack alone (as a promotion step could).

    Only a rejected pack ships the evaluated models (a passing one is refit on everything), so the
    reproduction is checked on one.
    """
    frame = built.snapshot.frame()
    test, calibration = (frame.filter(pl.col("split") == s) for s in ("test", "calibration"))
    predictor = Predictor.load(built.version.path, expected_manifest_sha256=built.version.manifest_sha256)
    params = bench.config.params(TF)
    return ScoredPredictions(
        probs=predictor.predict_features(test.select(FEATURE_NAMES).to_numpy()),
        y=test["label"].cast(pl.Int64).to_numpy(),
        fwd_return=test["fwd_return"].to_numpy(),
        prior=class_prior(calibration["label"].cast(pl.Int64).to_numpy()),
        p_star=predictor.p_star,
        fee=bench.config.evaluation.fee,
        periods_per_year=periods_per_year(TF.minutes),
        label_horizon=params.label_horizon,
        bar_return=bar_returns(test["close"].to_numpy(), test["segment"].to_numpy()),
    )


def test_the_stored_report_is_reproduced_from_the_pack(rejected: Built, bench: CandidateBench) -> None:
    """Gating is deterministic: re-gating the pack's own outputs reproduces its stored report exactly."""
    built = rejected
    again = evaluate_gates(
        candidate=_rescore(built, bench),
        champion=None,
        thresholds=bench.config.params(TF).gates,
        timeframe=TF,
        profile="default",
        seed=bench.config.training.seed,
    )
    stored = [c for c in built.report.checks if "champion" not in c.name]
    assert list(again.checks) == stored


def test_the_strict_profile_applies_the_1h_row(rejected: Built, bench: CandidateBench) -> None:
    built = rejected
    gates = bench.config.params(TF).gates
    report = evaluate_gates(
        candidate=_rescore(built, bench),
        champion=None,
        thresholds=gates,
        timeframe=TF,
        profile="strict",
        seed=bench.config.training.seed,
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
    for name in ("logloss_vs_prior", "logloss_vs_prior_bound", "output_not_constant", "sharpe"):
        assert report.check(name) == default[name]
    assert np.isfinite(report.check("class_share_up_vs_target").value or np.nan)


def test_a_promoted_pack_ships_the_gated_calibrator_and_p_star_and_trades_like_them(
    promoted: Built, bench: CandidateBench
) -> None:
    """The refit pack keeps the calibrator and p* the gates judged, and on the bars after its data (out of
    sample for every part of it) it signals as often as the gated pipeline did on its test split, within
    the sampling error of the difference. The manifest records its in-sample rate beside the gated one."""
    manifest: dict[str, Any] = read_manifest(promoted.version.path)
    deployed = manifest["data"]["deployed"]
    assert manifest["p_star"] == promoted.metrics["p_star"]
    assert deployed["calibrator_fitted_on"] == ["calibration"]
    recorded = deployed["signal_rate"]
    assert recorded["rows"] == promoted.snapshot.split_rows["test"] and recorded["in_sample"] is True
    assert recorded["sampling_error"] is not None and recorded["sampling_error"] > 0

    pack = Predictor.load(promoted.version.path)
    later = bench.snapshot(planted_signal_bars(BARS_5M + 30 * 288, SIGNAL_SEEDS[0], strength=STRENGTH))
    assert pack.fitted_until is not None
    after = later.frame().filter(pl.col("date") >= pack.fitted_until)
    assert after.height >= 500  # 30 days of 1h rows, less the label horizon
    probs = pack.predict_features(after.select(FEATURE_NAMES).to_numpy().astype(np.float64))
    signals = signal_indicator(probs, pack.p_star)
    error = math.hypot(recorded["sampling_error"], signal_rate_error(signals, label_horizon=6))
    out_of_sample = float(signals.mean())
    print(
        f"gated {recorded['gated_rate']:.3f}, in sample {recorded['shipped_rate']:.3f}, after "
        f"{out_of_sample:.3f} +- {error:.3f}"
    )
    assert abs(out_of_sample - recorded["gated_rate"]) <= error


def test_a_rejected_pack_records_no_shipped_rate(rejected: Built) -> None:
    manifest: dict[str, Any] = read_manifest(rejected.version.path)
    assert manifest["p_star"] == rejected.metrics["p_star"]
    assert "signal_rate" not in manifest["data"]["deployed"]
