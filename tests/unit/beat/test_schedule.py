"""The beat schedule built from the universe config (no Celery, no Redis)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from trainfarm.beat.schedule import (
    BAR_INGEST_ENTRY,
    FAN_OUT_TASK,
    TRIGGER_CHECK_ENTRY,
    beat_schedule,
    beat_settings,
    full_retrain_entry,
    meta_retrain_entry,
)
from trainfarm.shared.config import FarmConfig, load_config
from trainfarm.shared.timeframes import Timeframe


def test_one_full_retrain_entry_per_timeframe_at_its_cadence() -> None:
    config = FarmConfig()
    schedule = beat_schedule(config)
    assert set(schedule) == {full_retrain_entry(tf.value) for tf in Timeframe} | {
        TRIGGER_CHECK_ENTRY,
        "ingest-outcomes",
        "deliver-alerts",
        "reconcile-champions",
        "check-shadow",
        meta_retrain_entry("5m"),
        meta_retrain_entry("1h"),
    }
    for tf in Timeframe:
        entry = schedule[f"retrain-{tf.value}"]
        cadence = config.params(tf).cadence
        assert entry["task"] == FAN_OUT_TASK
        assert entry["schedule"] == cadence
        assert entry["kwargs"] == {"payload": {"timeframe": tf.value, "reason": "schedule"}}
        # A message that waited a whole cadence is superseded by the next slot's.
        assert entry["options"]["expires"] == cadence.total_seconds()


def test_a_meta_only_entry_per_timeframe_whose_meta_cadence_is_not_off() -> None:
    """5m and 1h refit their stacker between full retrains; 12h and 24h would need 200+ days of new bars."""
    config = FarmConfig()
    schedule = beat_schedule(config)
    for tf, every in ((Timeframe.M5, timedelta(hours=1)), (Timeframe.H1, timedelta(hours=6))):
        entry = schedule[meta_retrain_entry(tf.value)]
        assert entry["task"] == FAN_OUT_TASK and entry["schedule"] == every
        assert entry["kwargs"] == {"payload": {"timeframe": tf.value, "reason": "schedule", "kind": "meta"}}
        assert entry["options"]["expires"] == every.total_seconds()
    assert meta_retrain_entry("12h") not in schedule and meta_retrain_entry("24h") not in schedule


def test_the_schedule_follows_the_universe_and_the_cadences(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text(
        """
[universe]
symbols = ["BTC_USDT"]
timeframes = ["1h", "24h"]
[timeframes.1h]
cadence = "45s"
meta_cadence = "off"
[timeframes.24h]
meta_cadence = "20s"
"""
    )
    config = load_config(path)
    schedule = beat_schedule(config)
    assert set(schedule) == {
        "retrain-1h",
        "retrain-24h",
        "meta-24h",
        "check-triggers",
        "ingest-outcomes",
        "deliver-alerts",
        "reconcile-champions",
        "check-shadow",
    }
    assert schedule["meta-24h"]["schedule"] == timedelta(seconds=20)
    assert schedule["retrain-1h"]["schedule"] == timedelta(seconds=45)


def test_each_periodic_check_runs_its_own_task() -> None:
    schedule = beat_schedule(FarmConfig())
    assert schedule[TRIGGER_CHECK_ENTRY]["task"] == "farm.check_triggers"
    assert schedule["ingest-outcomes"]["task"] == "farm.ingest_outcomes"
    assert schedule["deliver-alerts"]["task"] == "farm.deliver_alerts"
    assert schedule["reconcile-champions"]["task"] == "farm.reconcile_champions"


def test_beat_uses_redbeat_in_the_farms_redis() -> None:
    settings = beat_settings(FarmConfig(), "redis://127.0.0.1:6379/3")
    assert settings["beat_scheduler"] == "redbeat.RedBeatScheduler"
    assert settings["redbeat_redis_url"] == "redis://127.0.0.1:6379/3"
    assert settings["redbeat_key_prefix"].startswith("farm:")
    # The lock outlives several sleeps of the beat holding it, or a second beat would take over.
    assert settings["redbeat_lock_timeout"] >= 2 * settings["beat_max_loop_interval"]


def test_the_bar_sync_entry_runs_where_a_symbol_has_a_source(tmp_path: Path) -> None:
    assert BAR_INGEST_ENTRY not in beat_schedule(FarmConfig())  # no source configured: nothing to sync
    path = tmp_path / "farm.toml"
    path.write_text(
        """
[universe]
symbols = ["BTC_USDT", "SOL_USDT"]
[data]
sync = "2m"
[data.sources.SOL_USDT]
kind = "folder"
folder = "user_data/data/binance"
"""
    )
    entry = beat_schedule(load_config(path))[BAR_INGEST_ENTRY]
    assert (entry["task"], entry["schedule"]) == ("farm.ingest_bars", timedelta(minutes=2))
    path.write_text(path.read_text().replace('sync = "2m"', 'sync = "off"'))
    assert BAR_INGEST_ENTRY not in beat_schedule(load_config(path))
