"""What the meta stage tells the gates about the champion: its age now, its freshness limit, and the live
triggers among the run's reasons (a candidate may replace it without a comparison only on that evidence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.shared.registry import VersionRecord, VersionStatus
from trainfarm.workers.stages import champion_standing


def _champion(timeframe: str, age: timedelta) -> VersionRecord:
    return VersionRecord(
        version="20250101T000000Z-abcdef12",
        symbol="BTC_USDT",
        timeframe=timeframe,
        run_id="r" * 32,
        status=VersionStatus.CHAMPION,
        created_at=datetime.now(UTC) - age,
        metrics={},
        gate_report=None,
        path="/nowhere",
        manifest_sha256="0" * 64,
        pruned_at=None,
    )


@pytest.mark.usefixtures("settings")
def test_the_standing_uses_the_champion_timeframe_freshness_limit() -> None:
    fresh = champion_standing(_champion("1h", timedelta(days=2)), ["schedule"])
    assert fresh.freshness_limit == timedelta(days=3) and not fresh.stale and fresh.live_triggers == ()
    assert timedelta(days=2) <= fresh.age < timedelta(days=2, minutes=5)
    stale = champion_standing(_champion("24h", timedelta(days=15)), ["trigger:stale"])
    assert stale.freshness_limit == timedelta(days=14) and stale.stale and stale.live_triggers == ()


@pytest.mark.usefixtures("settings")
def test_live_triggers_among_merged_reasons_are_kept_in_order() -> None:
    reasons = ["schedule", "trigger:calibration_drift", "cli", "trigger:live_win_rate"]
    standing = champion_standing(_champion("5m", timedelta(hours=1)), reasons)
    assert standing.live_triggers == ("calibration_drift", "live_win_rate") and not standing.stale
