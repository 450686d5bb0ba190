"""Beat with redbeat, for real: `celery beat` processes on the farm's embedded Redis, no workers.

Each fire of a full-retrain entry puts one ``farm.fan_out_retrain`` message on the ``control`` queue;
with no worker consuming, the queue is the record of every fire. Cadences are seconds long, every wait
is bounded, and every process started is stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.waiting import wait_until
from trainfarm.beat.schedule import FAN_OUT_TASK, KEY_PREFIX
from trainfarm.cli.processes import BeatProcess
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import rebind
from trainfarm.workers.tasks import fan_out

CONFIG = """
[universe]
symbols = ["BTC_USDT", "ETH_USDT"]
timeframes = {timeframes}
[timeframes.12h]
cadence = "{cadence}"
[timeframes.24h]
cadence = "{cadence}"
"""


@dataclass
class BeatHome:
    home: Path
    config: Path
    env: dict[str, str]
    client: redis.Redis
    beats: list[BeatProcess]

    def write_config(self, timeframes: list[str], cadence: str) -> None:
        self.config.write_text(CONFIG.format(timeframes=json.dumps(timeframes), cadence=cadence))

    def beat(self, name: str) -> BeatProcess:
        process = BeatProcess(name, self.env, self.home / "logs")
        self.beats.append(process)
        return process

    def fires(self) -> list[dict[str, Any]]:
        """The fan-out messages beat has sent, oldest first (kombu pushes on the left)."""
        messages = [json.loads(raw) for raw in reversed(self.client.lrange("control", 0, -1))]
        return [m for m in messages if m["headers"].get("task") == FAN_OUT_TASK]


@pytest.fixture
def beat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BeatHome]:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "farm.toml"
    config.write_text(CONFIG.format(timeframes='["12h"]', cadence="1h"))
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    env_vars = {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(config)}
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    rebind()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | env_vars
    client = redis_client(get_settings())  # starts the embedded Redis before any beat does
    state = BeatHome(home, config, env, client, [])
    try:
        yield state
    finally:
        for process in state.beats:
            process.stop()
        client.close()
        embedded_redis().stop()
        get_settings.cache_clear()


def _wait_fires(home: BeatHome, count: int, timeout: float, beat: BeatProcess) -> None:
    wait_until(
        lambda: len(home.fires()) >= count, timeout, f"{count} fan-out message(s)", process=beat, every=0.25
    )


def test_two_beats_fire_each_slot_once(beat_home: BeatHome) -> None:
    """Two beats on one schedule: one holds the lock and fires; the fires match one beat's slots."""
    cadence = 2
    beat_home.write_config(["12h"], f"{cadence}s")
    first, second = beat_home.beat("one"), beat_home.beat("two")
    started = time.monotonic()
    first.start()
    second.start()
    _wait_fires(beat_home, 4, 60, first)
    first.stop()
    second.stop()
    elapsed = time.monotonic() - started
    fires = beat_home.fires()
    # One beat fires at most once per slot of the window (plus the first, immediate one); two would
    # fire about twice as often.
    assert 4 <= len(fires) <= elapsed / cadence + 1, (len(fires), elapsed)
    holders = [b.name for b in (first, second) if "beat: Acquired lock" in b.log()]
    assert len(holders) == 1, holders
    ids = [m["headers"]["id"] for m in fires]
    assert len(set(ids)) == len(ids)


def test_a_missed_slot_runs_once_after_downtime(beat_home: BeatHome) -> None:
    cadence = 4
    beat_home.write_config(["12h"], f"{cadence}s")
    beat = beat_home.beat("one")
    beat.start()
    _wait_fires(beat_home, 1, 60, beat)
    beat.stop()
    before = len(beat_home.fires())
    time.sleep(3.5 * cadence)  # three whole slots missed while no beat runs
    again = beat_home.beat("again").start()
    _wait_fires(beat_home, before + 1, 60, again)
    time.sleep(cadence / 3)  # well inside the next slot: a replay of the missed ones would show here
    again.stop()
    assert len(beat_home.fires()) == before + 1


def test_entries_follow_the_config_across_restarts(beat_home: BeatHome) -> None:
    beat_home.write_config(["12h", "24h"], "1h")
    beat = beat_home.beat("one").start()
    wait_until(
        lambda: beat_home.client.exists(f"{KEY_PREFIX}retrain-24h") == 1,
        30,
        "the 24h entry in Redis",
        process=beat,
        every=0.25,
    )
    beat.stop()
    assert beat_home.client.exists(f"{KEY_PREFIX}retrain-12h") == 1
    beat_home.write_config(["12h"], "1h")
    again = beat_home.beat("again").start()
    wait_until(
        lambda: beat_home.client.exists(f"{KEY_PREFIX}retrain-24h") == 0,
        30,
        "the 24h entry removed",
        process=again,
        every=0.25,
    )
    again.stop()
    assert beat_home.client.exists(f"{KEY_PREFIX}retrain-12h") == 1
    statics = beat_home.client.smembers(f"{KEY_PREFIX}:statics")
    assert statics == {
        "retrain-12h", "check-triggers", "ingest-outcomes", "deliver-alerts", "reconcile-champions",
        "check-shadow",
    }  # fmt: skip


def test_a_fan_out_claims_one_run_per_symbol_and_merges_a_second(beat_home: BeatHome) -> None:
    """What a fire does (no worker: the runs stay queued): one run per symbol, merged when repeated."""
    beat_home.write_config(["12h"], "1h")
    get_settings.cache_clear()
    first = fan_out("12h", "schedule")
    assert [s.symbol for s in first] == ["BTC_USDT", "ETH_USDT"] and not any(s.merged for s in first)
    second = fan_out("12h", "trigger")
    assert [s.run_id for s in second] == [s.run_id for s in first] and all(s.merged for s in second)
