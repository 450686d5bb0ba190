"""The drift policies and the skew flag on hand-built markets: fire, stay quiet, wait for rows, off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.shared.config import FarmConfig, TimeframeParams
from trainfarm.shared.monitoring.drift import SkewReport
from trainfarm.shared.monitoring.policies import Market, calibration_drift, feature_drift, train_serve_skew
from trainfarm.shared.monitoring.trigger_params import TriggerParams
from trainfarm.shared.timeframes import Timeframe

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
PARAMS = FarmConfig().params(Timeframe.H1)


def _market(**fields: object) -> Market:
    base: dict[str, object] = {"champion": "v1", "champion_built_at": NOW - timedelta(days=1)}
    return Market("BTC_USDT", Timeframe.H1, NOW, **(base | fields))  # type: ignore[arg-type]


def _with(**triggers: object) -> TimeframeParams:
    return PARAMS.model_copy(update={"triggers": PARAMS.triggers.model_copy(update=triggers)})


def test_a_drift_window_shorter_than_the_minimum_live_bars_is_refused() -> None:
    with pytest.raises(ValueError, match="drift_window"):
        TriggerParams(min_live_bars=300, drift_window=100)


def test_feature_drift_fires_on_the_largest_psi_naming_the_feature() -> None:
    shifted = feature_drift(_market(live_bars=300, feature_psi={"ret_1": 0.05, "vol_48": 0.4}), PARAMS)
    assert shifted.retrain and shifted.value == 0.4 and shifted.threshold == 0.25
    assert "vol_48" in shifted.detail and "300 live bars" in shifted.detail
    stable = feature_drift(_market(live_bars=300, feature_psi={"ret_1": 0.05, "vol_48": 0.2}), PARAMS)
    assert not stable.retrain and stable.value == 0.2


def test_feature_drift_waits_for_enough_live_bars_and_can_be_off() -> None:
    few = feature_drift(_market(live_bars=199, feature_psi={"vol_48": 3.0}), PARAMS)
    assert not few.retrain and few.value is None and few.detail == "199 of 200 live bars"
    off = feature_drift(_market(live_bars=300, feature_psi={"vol_48": 3.0}), _with(feature_drift=False))
    assert not off.retrain and off.detail == "off"
    assert feature_drift(_market(champion=None), PARAMS).detail == "no champion to compare"


def test_an_older_pack_or_missing_bars_report_without_firing() -> None:
    older = _market(
        live_bars=300,
        labelled_bars=300,
        calibration_gap=0.01,
        unavailable={"feature_drift": "pack has no training distribution (older pack)"},
    )
    decision = feature_drift(older, PARAMS)
    assert not decision.retrain and decision.detail == "pack has no training distribution (older pack)"
    assert calibration_drift(older, PARAMS).value == 0.01  # the other policy still decides
    missing = dict.fromkeys(("feature_drift", "calibration_drift"), "bars missing from the farm's store")
    for policy in (feature_drift, calibration_drift):
        assert policy(_market(unavailable=missing), PARAMS).detail == "bars missing from the farm's store"


def test_calibration_drift_compares_the_gap_after_enough_labelled_bars() -> None:
    drifted = calibration_drift(_market(labelled_bars=250, calibration_gap=0.14), PARAMS)
    assert drifted.retrain and drifted.value == 0.14 and drifted.threshold == 0.1
    fine = calibration_drift(_market(labelled_bars=250, calibration_gap=0.04), PARAMS)
    assert not fine.retrain and "at or below" in fine.detail
    few = calibration_drift(_market(live_bars=400, labelled_bars=150, calibration_gap=0.5), PARAMS)
    assert not few.retrain and few.detail == "150 of 200 live bars with a label"
    off = calibration_drift(_market(labelled_bars=250, calibration_gap=0.5), _with(calibration_drift=False))
    assert not off.retrain and off.detail == "off"


def test_train_serve_skew_is_flagged_and_never_retrains() -> None:
    bar = NOW - timedelta(hours=3)
    skewed = SkewReport(50, 2, 1, "ret_1", bar, 0.003)
    decision = train_serve_skew(_market(skew=skewed), PARAMS)
    assert decision.flagged and not decision.retrain and decision.value == 0.04
    assert (
        "ret_1" in decision.detail
        and bar.isoformat() in decision.detail
        and "1 not checked" in decision.detail
    )
    clean = train_serve_skew(_market(skew=SkewReport(50, 0)), PARAMS)
    assert not clean.flagged and clean.value == 0.0 and clean.detail == "50 rows match"
    nothing = train_serve_skew(_market(skew=SkewReport(0, 0)), PARAMS)
    assert nothing.value is None and nothing.detail == "no live features reported yet"
    unchecked = train_serve_skew(_market(skew=SkewReport(0, 0, not_checked=4)), PARAMS)
    assert not unchecked.flagged and unchecked.value is None and "4 not checked" in unchecked.detail
    assert train_serve_skew(_market(skew=skewed), _with(train_serve_skew=False)).detail == "off"
