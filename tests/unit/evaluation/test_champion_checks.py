"""A champion is replaced on evidence: with too few rows new to it, it stays unless it is stale or a live
trigger fired, and the report says which held."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.evaluation.champion_checks import LIVE_TRIGGERS, ChampionStanding, comparable_floor
from trainfarm.shared.evaluation.gates import ScoredPredictions, gate_candidate
from trainfarm.shared.evaluation.metrics import class_prior
from trainfarm.shared.evaluation.trading import periods_per_year
from trainfarm.shared.timeframes import Timeframe

FloatArray = npt.NDArray[np.float64]
TF = Timeframe.H1
TH = FarmConfig().params(TF).gates
START = datetime(2025, 1, 1, tzinfo=UTC)
REGIMES = np.array([[0.7, 0.2, 0.1], [0.25, 0.5, 0.25], [0.1, 0.2, 0.7]])


def _good(n: int = 600, seed: int = 0) -> ScoredPredictions:
    """Knows each row's regime (runs of 8 hourly rows); labels drawn from it; dated from START."""
    rng = np.random.default_rng(seed)
    probs = REGIMES[np.repeat(rng.integers(0, 3, size=n // 8 + 1), 8)[:n]]
    y = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1).astype(np.int64)
    fwd = (y - 1) * 0.01
    return ScoredPredictions(
        probs=probs,
        y=y,
        fwd_return=fwd.astype(np.float64),
        prior=class_prior(y),
        p_star=0.6,
        fee=0.002,
        periods_per_year=periods_per_year(TF.minutes),
        label_horizon=6,
        bar_return=np.expm1(fwd) / 6,
        dates=np.datetime64(START.replace(tzinfo=None), "us") + np.arange(n).astype("timedelta64[h]"),
    )


class _Champion:
    version = "20250101T000000Z-champ"
    p_star = 0.6

    def __init__(self, fitted_until: datetime) -> None:
        self.fitted_until = fitted_until

    def predict_features(self, x: npt.ArrayLike) -> FloatArray:
        return np.full((np.asarray(x).shape[0], 3), 1 / 3)


def _judged(unseen: int, standing: ChampionStanding | None) -> tuple[int, str, bool, set[str]]:
    cand = _good()
    champion = _Champion(START + timedelta(hours=cand.rows - unseen))
    report = gate_candidate(
        cand,
        champion,
        np.zeros((cand.rows, 4)),
        thresholds=TH,
        timeframe=TF,
        profile="default",
        seed=7,
        standing=standing,
    )
    names = {c.name for c in report.checks}
    if "champion_replaceable" not in names:
        return unseen, "", report.passed, names
    check = report.check("champion_replaceable")
    assert check.value == unseen and check.threshold == comparable_floor(TH, 6)
    assert check.passed is report.passed  # every other check passes for this candidate
    return unseen, check.detail, check.passed, names


FRESH = ChampionStanding(timedelta(days=1), timedelta(days=3))


def test_the_comparison_needs_enough_rows_for_its_bound() -> None:
    assert comparable_floor(TH, 6) == 120  # 20 blocks of a 6-bar label window > min_champion_rows 50
    assert comparable_floor(FarmConfig().params(Timeframe.D1).gates, 1) == 50


def test_a_fresh_champion_with_too_few_unseen_rows_stays() -> None:
    _, detail, passed, names = _judged(119, FRESH)
    assert not passed and "logloss_vs_champion" not in names
    assert "119 rows after the champion's data, fewer than the 120 a comparison needs" in detail
    assert "24.0 h old, within its 3.0 d freshness limit, and no live trigger fired: it stays" in detail


def test_a_champion_of_unknown_age_stays() -> None:
    _, detail, passed, _ = _judged(18, None)
    assert not passed and "age is unknown, so it stays" in detail


def test_a_stale_champion_may_be_replaced_without_a_comparison() -> None:
    stale = ChampionStanding(timedelta(days=4), timedelta(days=3))
    _, detail, passed, _ = _judged(18, stale)
    assert stale.stale and passed
    assert "replaceable: the champion is 4.0 d old, past its 3.0 d freshness limit" in detail


@pytest.mark.parametrize("trigger", LIVE_TRIGGERS)
def test_a_live_trigger_lets_a_candidate_replace_a_fresh_champion(trigger: str) -> None:
    standing = ChampionStanding.from_reasons(
        timedelta(hours=5), timedelta(days=3), ["schedule", f"trigger:{trigger}"]
    )
    assert standing.live_triggers == (trigger,)
    _, detail, passed, _ = _judged(7, standing)
    assert passed and f"replaceable: live trigger {trigger} fired" in detail


def test_only_live_triggers_count_as_evidence() -> None:
    reasons = ["schedule", "cli", "trigger:stale", "trigger:no_champion", "trigger:feature_drift"]
    standing = ChampionStanding.from_reasons(timedelta(hours=1), timedelta(days=3), reasons)
    assert standing.live_triggers == ("feature_drift",) and not standing.stale
    assert (
        ChampionStanding.from_reasons(timedelta(hours=1), timedelta(days=3), ["trigger:stale"]).live_triggers
        == ()
    )


def test_with_enough_unseen_rows_the_comparison_decides_whatever_the_standing() -> None:
    _, _, passed, names = _judged(120, None)
    assert "champion_replaceable" not in names and "logloss_vs_champion" in names
    assert passed  # the flat champion loses to the candidate on rows new to both


def test_a_replay_champion_standing_is_its_age_on_the_replay_clock() -> None:
    """Nothing but dates: the same dataclass serves the live farm (run reasons) and a replay (no trigger)."""
    standing = replace(FRESH, age=timedelta(days=8))
    assert standing.stale and standing.live_triggers == ()
