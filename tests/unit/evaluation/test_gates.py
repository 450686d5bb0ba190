"""Validation gates on hand-built arrays: every check passes and fails where it should, with its numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from trainfarm.shared.config import FarmConfig, load_config
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.evaluation.block_bootstrap import block_bootstrap_means, block_length
from trainfarm.shared.evaluation.bounds import block_mean_bound
from trainfarm.shared.evaluation.gate_params import GateThresholds
from trainfarm.shared.evaluation.gate_report import Check, GateReport
from trainfarm.shared.evaluation.gates import (
    ChampionSource,
    ScoredPredictions,
    evaluate_gates,
    gate_candidate,
    p_star_floors,
)
from trainfarm.shared.evaluation.metrics import brier, class_prior, log_loss
from trainfarm.shared.evaluation.trading import periods_per_year
from trainfarm.shared.timeframes import Timeframe

FloatArray = npt.NDArray[np.float64]
TF = Timeframe.H1
TH = FarmConfig().params(TF).gates
DEFAULT_NAMES = [
    "logloss_vs_prior",
    "logloss_vs_prior_bound",
    "direction_vs_prior",
    "direction_vs_prior_bound",
    "output_not_constant",
    "eligible_share",
    "sharpe",
    "signals",
]
#: Three regimes a good model tells apart: mostly down, mostly neutral, mostly up.
REGIMES = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [0.1, 0.2, 0.7]])


def _scored(
    probs: npt.ArrayLike,
    y: npt.ArrayLike,
    fwd: npt.ArrayLike | None = None,
    *,
    prior: npt.ArrayLike = (1 / 3, 1 / 3, 1 / 3),
    p_star: float = 0.6,
    horizon: int = 1,
) -> ScoredPredictions:
    labels = np.asarray(y, dtype=np.int64)
    returns = np.asarray((labels - 1) * 0.01 if fwd is None else fwd, dtype=np.float64)
    return ScoredPredictions(
        probs=np.asarray(probs, dtype=np.float64),
        y=labels,
        fwd_return=returns,
        prior=np.asarray(prior, dtype=np.float64),
        p_star=p_star,
        fee=0.002,
        periods_per_year=periods_per_year(TF.minutes),
        label_horizon=horizon,
        # Hand-built rows: each of the horizon's bars carries an equal part of the row's move.
        bar_return=np.expm1(returns) / horizon,
    )


def _good(n: int = 600, seed: int = 0) -> ScoredPredictions:
    """A model that knows each row's regime (in runs of 8 rows) and labels drawn from that regime."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.integers(0, 3, size=n // 8 + 1), 8)[:n]
    probs = REGIMES[regime]
    y = np.array([rng.choice(3, p=row) for row in probs])
    return _scored(probs, y, prior=class_prior(y), horizon=6)


def _gate(
    cand: ScoredPredictions,
    champion: ScoredPredictions | None = None,
    *,
    th: GateThresholds = TH,
    profile: str = "default",
    seed: int = 7,
    tf: Timeframe = TF,
) -> GateReport:
    return evaluate_gates(
        candidate=cand, champion=champion, thresholds=th, timeframe=tf, profile=profile, seed=seed
    )


def _th(**changes: object) -> GateThresholds:
    return TH.model_copy(update=changes)


def _value(check: Check) -> float:
    assert check.value is not None, check
    return check.value


# --- the verdict -----------------------------------------------------------------------------------


def test_a_good_candidate_passes_every_check_and_each_is_recorded() -> None:
    report = _gate(_good())
    assert [c.name for c in report.checks] == DEFAULT_NAMES
    assert report.passed and report.failed() == [] and report.profile == "default"
    assert report.summary() == f"passed ({len(DEFAULT_NAMES)} checks)"
    for check in report.checks:
        assert check.value is not None and check.threshold is not None and check.detail


def test_the_class_prior_itself_fails_the_prior_and_constant_checks() -> None:
    good = _good()
    prior = np.tile(good.prior, (good.rows, 1))
    report = _gate(_scored(prior, good.y, prior=good.prior, horizon=6))
    failed = {c.name for c in report.failed()}
    skill = {"logloss_vs_prior", "logloss_vs_prior_bound", "direction_vs_prior", "direction_vs_prior_bound"}
    assert skill | {"output_not_constant"} <= failed
    assert report.check("logloss_vs_prior").value == pytest.approx(0.0, abs=1e-12)
    assert report.check("direction_vs_prior").value == pytest.approx(0.0, abs=1e-12)
    assert report.check("output_not_constant").value == pytest.approx(0.0, abs=1e-12)
    assert report.summary().startswith("failed: logloss_vs_prior, logloss_vs_prior_bound, direction_vs_prior")


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="lenient"):
        _gate(_good(), profile="lenient")


# --- log-loss against the prior ----------------------------------------------------------------------


def test_logloss_vs_prior_is_the_relative_improvement() -> None:
    cand = _good()
    check = _gate(cand).check("logloss_vs_prior")
    prior_ll = log_loss(np.tile(cand.prior, (cand.rows, 1)), cand.y)
    assert check.value == pytest.approx((prior_ll - log_loss(cand.probs, cand.y)) / prior_ll, rel=1e-12)
    assert (check.op, check.threshold, check.passed) == (">=", 0.01, True)
    assert check.value is not None
    higher = _th(min_logloss_improvement=check.value + 0.01)
    assert not _gate(cand, th=higher).check("logloss_vs_prior").passed


def test_a_small_lucky_edge_passes_the_point_estimate_but_not_the_bound() -> None:
    """40 rows, 3.5% better than the prior on average: within what one short window gives by chance."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 40)
    hit = rng.random(40) < 0.6  # 24 rows where the model is 50% sure of the truth, 16 where it gives 20%
    p_true = np.where(hit, 0.5, 0.2)
    probs = np.repeat(((1 - p_true) / 2)[:, None], 3, axis=1)
    probs[np.arange(40), y] = p_true
    report = _gate(_scored(probs, y))
    point, bound = report.check("logloss_vs_prior"), report.check("logloss_vs_prior_bound")
    assert point.passed and point.value is not None and point.value > 0.02
    assert not bound.passed and bound.value is not None and bound.value < 0 < point.value
    assert "t(19) over 20 contiguous blocks of 2+ rows" in bound.detail  # 40 // 20 = 2 > horizon 1


def test_the_prior_bound_is_the_t_bound_of_the_per_row_gain() -> None:
    cand = _good()
    gain = cand.prior_row_logloss() - cand.row_logloss()
    bound = block_mean_bound(gain, label_horizon=cand.label_horizon)
    expected = bound.lower(TH.confidence) / cand.prior_row_logloss().mean()
    assert _value(_gate(cand).check("logloss_vs_prior_bound")) == pytest.approx(expected, rel=1e-12)
    assert (bound.blocks, bound.block) == (20, 30)  # 600 rows // 20; longer than the 6-bar horizon


def test_too_short_a_test_split_cannot_be_bounded_and_fails() -> None:
    """108 rows with a 12-bar horizon (a meta-only 5m test) make 9 blocks: no honest bound, no pass."""
    good = _good(n=108)
    cand = replace(good, label_horizon=12, bar_return=np.expm1(good.fwd_return) / 12)
    report = _gate(cand)
    for name, blocks in (("logloss_vs_prior_bound", 9), ("direction_vs_prior_bound", 6)):
        check = report.check(name)  # direction: only the 82 rows labelled up or down
        assert not check.passed and check.value is None
        assert f"only {blocks} blocks of 12" in check.detail and "fewer than the 20" in check.detail


def test_the_report_is_deterministic_and_the_seed_drives_only_the_sharpe_bootstrap() -> None:
    cand = _good(n=300)
    first, again, other = _gate(cand, seed=3), _gate(cand, seed=3), _gate(cand, seed=4)
    assert first.to_json() == again.to_json() == other.to_json()
    resampled = _th(sharpe_bootstrap=True)
    assert _gate(cand, th=resampled, seed=3).check("sharpe") != _gate(cand, th=resampled, seed=4).check(
        "sharpe"
    )


def test_block_length_covers_the_label_window_and_grows_with_sqrt_n() -> None:
    assert block_length(208, 6) == 15
    assert block_length(1300, 6) == 37
    assert block_length(100, 12) == 12  # never shorter than one label window
    assert block_length(10, 12) == 10  # never longer than the series
    with pytest.raises(ValueError):
        block_length(0, 1)


def test_block_bootstrap_resamples_whole_blocks_circularly() -> None:
    values = np.arange(10, dtype=np.float64)
    # One block as long as the series: every resample is a rotation, so every mean is the sample mean.
    np.testing.assert_allclose(block_bootstrap_means(values, block=10, samples=50, seed=1), 4.5)
    # Paired columns see the same blocks.
    both = block_bootstrap_means(np.column_stack([values, 2 * values]), block=3, samples=200, seed=1)
    np.testing.assert_allclose(both[:, 1], 2 * both[:, 0])
    assert abs(both[:, 0].mean() - 4.5) < 0.2  # circular: centred on the sample mean
    with pytest.raises(ValueError):
        block_bootstrap_means(values, block=11, samples=10, seed=1)
    with pytest.raises(ValueError):
        block_bootstrap_means(np.array([1.0, np.nan]), block=1, samples=10, seed=1)


def test_blocks_widen_the_interval_of_autocorrelated_rows() -> None:
    """Runs of 20 equal values: single-row resampling would claim 20 times the information there is."""
    rng = np.random.default_rng(5)
    series = np.repeat(rng.standard_normal(30), 20)
    single = block_bootstrap_means(series, block=1, samples=2000, seed=2).std()
    blocked = block_bootstrap_means(series, block=block_length(series.size, 20), samples=2000, seed=2).std()
    assert blocked > 2.5 * single


# --- output shape ------------------------------------------------------------------------------------


def test_near_constant_output_fails_but_a_steady_confidence_does_not() -> None:
    good = _good()
    rng = np.random.default_rng(1)
    flat = np.tile(good.prior, (good.rows, 1)) + rng.normal(0, 0.002, (good.rows, 3))
    flat = np.abs(flat) / np.abs(flat).sum(axis=1, keepdims=True)
    check = _gate(_scored(flat, good.y, prior=good.prior)).check("output_not_constant")
    assert not check.passed and check.value is not None and check.value < 0.02
    # Always 60% sure, switching between up and down: the top probability never moves, the lean does.
    y = np.tile([0, 2], 100)
    steady = np.where(y[:, None] == 0, [0.6, 0.3, 0.1], [0.1, 0.3, 0.6])
    check = _gate(_scored(steady, y)).check("output_not_constant")
    assert check.passed and check.value == pytest.approx(0.5)
    assert "0.0000" in check.detail  # the top probability's std is reported too


def test_the_eligible_share_floor_and_no_confidence_floor_by_default() -> None:
    """A floor on mean confidence rejects calibrated weak signals (docs/ml.md#gates): strict only."""
    cand = _good()
    report = _gate(cand)
    eligible = report.check("eligible_share")
    expected = (np.maximum(cand.probs[:, 0], cand.probs[:, 2]) >= cand.p_star).mean()
    assert eligible.value == pytest.approx(expected) and eligible.passed
    assert "mean_confidence" not in {c.name for c in report.checks}
    assert not _gate(cand, th=_th(min_eligible_share=0.9)).check("eligible_share").passed


def test_trading_floors() -> None:
    cand = _good()
    report = _gate(cand)
    trading = cand.trading()
    assert report.check("sharpe").value == pytest.approx(trading.sharpe) and trading.sharpe > 0
    assert report.check("signals").value == trading.signals
    assert not _gate(cand, th=_th(min_signals=trading.signals + 1)).check("signals").passed
    losing = _scored(cand.probs, cand.y, -cand.fwd_return, prior=cand.prior)  # every trade goes wrong
    assert not _gate(losing).check("sharpe").passed
    silent = _gate(_scored(cand.probs, cand.y, prior=cand.prior, p_star=0.99))  # p* that nothing reaches
    assert not silent.check("signals").passed and not silent.check("eligible_share").passed


# --- the strict profile --------------------------------------------------------------------------------


STRICT_TABLE = {
    Timeframe.M5: ((0.40, 0.20, 0.40), 0.65, 0.30),
    Timeframe.H1: ((0.45, 0.10, 0.45), 0.60, 0.30),
    Timeframe.H12: ((0.40, 0.20, 0.40), 0.55, 0.25),
    Timeframe.D1: ((0.45, 0.10, 0.45), 0.50, 0.25),
}


@pytest.mark.parametrize("tf", list(Timeframe))
def test_the_strict_profile_ships_the_requirement_table(tf: Timeframe) -> None:
    share, confidence, eligible = STRICT_TABLE[tf]
    gates = FarmConfig().params(tf).gates
    assert gates.strict.class_share == share
    assert (gates.strict.min_mean_confidence, gates.strict.min_eligible_share) == (confidence, eligible)
    report = _gate(_good(), th=gates, profile="strict", tf=tf)
    assert report.profile == "strict"
    assert report.check("mean_confidence").threshold == confidence
    assert report.check("eligible_share").threshold == eligible
    for name, target in zip(("down", "neutral", "up"), share, strict=True):
        check = report.check(f"class_share_{name}_vs_target")
        assert (check.threshold, check.op) == (gates.strict.class_share_tolerance, "<=")
        assert f"target {target:.2f}" in check.detail
    # Everything the table does not name applies as under the default profile.
    default = _gate(_good(), th=gates, tf=tf)
    for name in (
        "logloss_vs_prior",
        "logloss_vs_prior_bound",
        "direction_vs_prior_bound",
        "sharpe",
        "signals",
    ):
        assert report.check(name) == default.check(name)


def test_strict_class_shares_are_targets_with_a_tolerance() -> None:
    strict_1h = FarmConfig().params(TF).gates
    y = np.tile(np.arange(20) % 3, 10)

    def predicted(down: int, neutral: int) -> ScoredPredictions:
        cls = np.array([0] * down + [1] * neutral + [2] * (20 - down - neutral))
        return _scored(np.tile(REGIMES[cls], (10, 1)), y)

    on_target = _gate(predicted(9, 2), th=strict_1h, profile="strict")  # 45/10/45
    assert all(on_target.check(f"class_share_{c}_vs_target").passed for c in ("down", "neutral", "up"))
    assert on_target.check("class_share_neutral_vs_target").value == pytest.approx(0.0)
    lazy = _gate(predicted(6, 7), th=strict_1h, profile="strict")  # neutral 35%: 25 points off
    check = lazy.check("class_share_neutral_vs_target")
    assert not check.passed and check.value == pytest.approx(0.25)


# --- the champion ----------------------------------------------------------------------------------


def _blurred(cand: ScoredPredictions, weight: float, name: str = "champion x") -> ScoredPredictions:
    """The same rows predicted by a model ``weight`` of the way from ``cand`` to the flat prior."""
    probs = (1 - weight) * cand.probs + weight / 3
    return cand.with_probs(probs, p_star=cand.p_star, name=name)


def test_a_better_candidate_passes_the_champion_checks_with_its_numbers() -> None:
    cand = _good()
    champ = _blurred(cand, 0.5)
    report = _gate(cand, champ)
    assert report.passed
    ll = report.check("logloss_vs_champion")
    mine, theirs = log_loss(cand.probs, cand.y), log_loss(champ.probs, cand.y)
    point = (mine - theirs) / theirs * 100
    # The value is the lower bound of how much worse the candidate is; the point is in detail.
    assert _value(ll) < point < 0 and f"point estimate {point:+.2f}%" in ll.detail
    assert ll.threshold == TH.max_regression_pct == 0.0
    br = report.check("brier_vs_champion")
    brier_point = (brier(cand.probs, cand.y) / brier(champ.probs, cand.y) - 1) * 100
    assert _value(br) < brier_point < 0 and f"{brier_point:+.2f}%" in br.detail
    assert report.check("champion_scored").passed and "champion x" in report.check("champion_scored").detail


def test_the_champion_comparison_is_a_paired_t_bound() -> None:
    """The check's value is the one-sided lower bound of the relative worsening, from paired row losses."""
    cand = _good()
    champ = _blurred(cand, 0.5)
    value = _value(_gate(cand, champ).check("logloss_vs_champion"))
    bound = block_mean_bound(cand.row_logloss() - champ.row_logloss(), label_horizon=cand.label_horizon)
    expected = bound.lower(TH.confidence) / champ.row_logloss().mean() * 100
    assert value == pytest.approx(expected, rel=1e-12)


def test_a_candidate_worse_by_noise_only_is_not_significantly_worse() -> None:
    """A slightly blurred copy is worse in point terms but within the window's luck: it may replace."""
    champ = _good()
    cand = _blurred(champ, 0.02, "candidate")
    check = _gate(cand, champ).check("logloss_vs_champion")
    assert "point estimate +" in check.detail  # worse in point terms
    assert _value(check) <= 0.0 and check.passed


def test_a_candidate_worse_than_the_champion_fails() -> None:
    champ = _good()
    cand = _blurred(champ, 0.3, "candidate")
    report = _gate(cand, champ)
    assert not report.check("logloss_vs_champion").passed
    assert not report.check("brier_vs_champion").passed
    loose = _gate(cand, champ, th=_th(max_regression_pct=50.0))
    assert loose.check("logloss_vs_champion").passed and loose.check("brier_vs_champion").passed


def test_sharpe_against_the_champion() -> None:
    cand = _good()
    # The champion trades the same rows at a lower p*; the bar is a fraction of ITS Sharpe there.
    champ = cand.with_probs(cand.probs, p_star=0.5, name="champion")
    champ_sharpe = _value(_gate(champ).check("sharpe"))
    assert champ_sharpe > 0
    check = _gate(cand, champ).check("sharpe_vs_champion")
    assert check.threshold == pytest.approx(TH.min_sharpe_fraction * champ_sharpe)
    assert check.value == _gate(cand).check("sharpe").value
    assert not _gate(cand, champ, th=_th(min_sharpe_fraction=100.0)).check("sharpe_vs_champion").passed
    # A champion without a positive Sharpe sets no bar (the sharpe floor still applies).
    losing_champ = _scored(champ.probs, cand.y, -cand.fwd_return, prior=cand.prior, p_star=0.5)
    losing_cand = _scored(cand.probs, cand.y, -cand.fwd_return, prior=cand.prior)
    report = _gate(losing_cand, losing_champ)
    check = report.check("sharpe_vs_champion")
    assert check.passed and check.threshold is None and "no edge to keep" in check.detail
    assert not report.check("sharpe").passed


def test_the_champion_must_be_scored_on_the_same_rows() -> None:
    cand = _good(n=600)
    with pytest.raises(ValueError, match="test rows"):
        _gate(cand, _good(n=300))


class _FakeChampion:
    version = "20250101T000000Z-champ"
    p_star = 0.6
    fitted_until: datetime | None = None

    def __init__(self, predict: Callable[[FloatArray], FloatArray]) -> None:
        self._predict = predict

    def predict_features(self, x: npt.ArrayLike) -> FloatArray:
        return self._predict(np.asarray(x, dtype=np.float64))


GATE_ARGS: dict[str, Any] = {
    "thresholds": TH,
    "timeframe": TF,
    "profile": "default",
    "seed": 7,
}


def _gate_with(champion: ChampionSource | None) -> GateReport:
    cand = _good()
    x = np.zeros((cand.rows, 4))
    return gate_candidate(cand, champion, x, thresholds=TH, timeframe=TF, profile="default", seed=7)


def test_gate_candidate_scores_a_loaded_champion_or_a_loader() -> None:
    weak = _blurred(_good(), 0.5).probs
    for champion in (_FakeChampion(lambda x: weak), lambda: _FakeChampion(lambda x: weak)):
        report = _gate_with(champion)
        assert report.passed
        assert f"champion {_FakeChampion.version}" in report.check("champion_scored").detail
    assert "champion_scored" not in {c.name for c in _gate_with(None).checks}


def _dated(cand: ScoredPredictions, start: datetime) -> ScoredPredictions:
    hours = np.arange(cand.rows).astype("timedelta64[h]")
    return replace(cand, dates=np.datetime64(start.replace(tzinfo=None), "us") + hours)


def test_the_champion_is_compared_only_on_rows_after_its_own_data() -> None:
    """Rows the champion was fitted on are left out: there it would win by memory, not skill."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    cand = _dated(_good(), start)
    # Knows the labels of the 400 rows it was fitted on; a weak blur of the candidate on the rest.
    probs = _blurred(cand, 0.5).probs.copy()
    probs[:400] = np.eye(3)[cand.y[:400]] * 0.98 + 0.02 / 3
    champion = _FakeChampion(lambda x: probs)
    champion.fitted_until = start + timedelta(hours=400)
    report = gate_candidate(cand, champion, np.zeros((cand.rows, 4)), **GATE_ARGS)
    where = report.check("champion_scored").detail
    assert "200 of the candidate's 600 test rows at or after 2025-01-17T16:00:00+00:00" in where
    later = cand.subset(np.arange(cand.rows) >= 400)
    expected = evaluate_gates(
        candidate=later, champion=later.with_probs(probs[400:], p_star=0.6, name="c"), **GATE_ARGS
    )
    assert report.check("logloss_vs_champion") == expected.check("logloss_vs_champion")
    assert report.check("logloss_vs_champion").passed
    # Scored on every row, the memorising champion would block a better candidate.
    everything = gate_candidate(replace(cand, dates=None), champion, np.zeros((cand.rows, 4)), **GATE_ARGS)
    assert "600 of the candidate's 600" in everything.check("champion_scored").detail
    assert not everything.check("logloss_vs_champion").passed


def test_a_champion_that_cannot_be_scored_fails_the_report_without_raising() -> None:
    def broken_loader() -> _FakeChampion:
        raise OSError("pack folder is gone")

    def broken_predict(x: FloatArray) -> FloatArray:
        raise ValueError("expects 22 features")

    for champion, message in ((broken_loader, "pack folder is gone"), (_FakeChampion(broken_predict), "22")):
        report = _gate_with(champion)
        assert not report.passed
        assert [c.name for c in report.failed()] == ["champion_scored"]
        assert message in report.check("champion_scored").detail


# --- the report as JSON ------------------------------------------------------------------------------


def test_the_report_round_trips_through_strict_json() -> None:
    champ = _blurred(_good(), 0.5)
    report = _gate(_good(), champ)
    text = json.dumps(report.to_json(), allow_nan=False)
    assert GateReport.from_json(json.loads(text)) == report
    body = report.to_json()
    assert body["passed"] is True and body["failed"] == [] and body["profile"] == "default"


def test_non_finite_numbers_become_null() -> None:
    check = Check("x", math.nan, math.inf, ">=", False, "undefined")
    assert check.to_json()["value"] is None and check.to_json()["threshold"] is None
    report = GateReport((check, Check("y", 1.0, 0.5, ">=", True)), passed=False, profile="strict")
    body = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert body["failed"] == ["x"]
    again = GateReport.from_json(body)
    assert again.failed() == [Check("x", None, None, ">=", False, "undefined")] and again.profile == "strict"
    with pytest.raises(ValueError):
        Check.from_json({"name": "x", "value": "1.0", "threshold": None, "op": ">=", "passed": True})
    with pytest.raises(ValueError, match="disagrees"):
        GateReport.from_json({**body, "passed": True})  # a verdict its checks do not support


def test_an_undefined_value_fails_its_check() -> None:
    cand = _good()
    zero_prior = _scored(cand.probs, np.zeros(cand.rows, dtype=np.int64), prior=(1.0, 0.0, 0.0))
    check = _gate(zero_prior).check("logloss_vs_prior")  # the prior is perfect: its log-loss is 0
    assert check.value is None and not check.passed


# --- config ------------------------------------------------------------------------------------------


def test_p_star_leaves_twice_the_gate_floors_on_calibration() -> None:
    assert p_star_floors(TH, "default", 20) == pytest.approx((60, 0.10))
    assert p_star_floors(TH, "strict", 20) == pytest.approx((60, 0.60))
    assert p_star_floors(_th(min_signals=5), "default", 20) == pytest.approx((20, 0.10))


def test_a_strict_override_keeps_the_other_keys_of_its_timeframe(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text('[gates]\nprofile = "strict"\n[timeframes.1h.gates.strict]\nmin_mean_confidence = 0.7\n')
    cfg = load_config(path)
    assert cfg.gates.profile == "strict"
    strict = cfg.params(TF).gates.strict
    assert strict.min_mean_confidence == 0.7
    assert strict.class_share == (0.45, 0.10, 0.45) and strict.min_eligible_share == 0.30
    assert cfg.params(Timeframe.M5).gates.strict.min_mean_confidence == 0.65


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[gates]\nprofile = "lenient"\n', "gates.profile"),
        ("[timeframes.1h.gates.strict]\nclass_share = [0.5, 0.5, 0.5]\n", "sum to 1"),
        ("[timeframes.1h.gates]\nconfidence = 0.4\n", "confidence"),
        ("[timeframes.1h.gates]\nmin_bound_blocks = 1\n", "min_bound_blocks"),
        ("[timeframes.1h.gates]\nmax_class_share = 0.7\n", "max_class_share"),  # gone: named, not ignored
    ],
)
def test_bad_gate_settings_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value)
