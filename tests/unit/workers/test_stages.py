"""What the meta stage tells the gates about the champion: its age now, its freshness limit, and the live
triggers among the run's reasons (a candidate may replace it without a comparison only on that evidence);
and about the market: its previous judged candidate (a pass needs confirming)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trainfarm.shared.evaluation.repeat_checks import Lineage, PreviousJudgement
from trainfarm.shared.registry import Registry, VersionRecord, VersionStatus
from trainfarm.shared.timeframes import Timeframe
from trainfarm.workers.stages import LINEAGE_BATCH, champion_standing, market_lineage


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


def test_the_lineage_is_the_newest_version_with_a_gate_report(tmp_path: Path) -> None:
    """The previous judged candidate, past versions without a report, however far back (the newest are
    read first, then the rest)."""
    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        assert market_lineage(registry, "BTC_USDT", Timeframe.H1) == Lineage("BTC_USDT 1h")

        def add(version: str, report: dict[str, object] | None) -> None:
            run = registry.runs.create("BTC_USDT", "1h", "forced").id
            registry.versions.add(
                version,
                "BTC_USDT",
                "1h",
                run,
                metrics={},
                path="/p",
                manifest_sha256="0" * 64,
                gate_report=report,
            )

        failed = {"profile": "default", "passed": False, "checks": [_check("sharpe", False)]}
        add("v-judged", failed)
        for i in range(LINEAGE_BATCH + 3):  # newer versions without a report (imported packs)
            add(f"v-{i:02d}", None)
        lineage = market_lineage(registry, "BTC_USDT", Timeframe.H1)
        assert lineage.previous == PreviousJudgement("v-judged", False, ("sharpe",))
        add("v-newest", {"profile": "default", "passed": True, "checks": [_check("sharpe", True)]})
        assert market_lineage(registry, "BTC_USDT", Timeframe.H1).previous == PreviousJudgement(
            "v-newest", True
        )


def _check(name: str, passed: bool) -> dict[str, object]:
    return {"name": name, "value": None, "threshold": None, "op": "ok", "passed": passed, "detail": ""}
