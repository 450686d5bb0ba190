"""Holds on a real registry, a real bar store and a real (embedded) Redis: a synced symbol whose bars went
stale, or a market whose data cannot make a dataset, is held back with the reason, alerted once, and
released by itself when the data is current or has grown enough."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support.packs import farm_settings
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.data.synthetic import random_walk_bars
from trainfarm.shared.registry import Registry
from trainfarm.shared.timeframes import Timeframe
from trainfarm.workers.checks.trigger_check import check, report
from trainfarm.workers.holds import HOLD_KEY, hold_of, track
from trainfarm.workers.runs import Submitted, claim_run
from trainfarm.workers.status import farm_status
from trainfarm_client.contract import EVENTS_STREAM, HELD

CONFIG = """
[universe]
symbols = ["BTC_USDT", "ETH_USDT"]
timeframes = ["1h"]
[data]
sync = "5m"
[data.sources.BTC_USDT]
kind = "folder"
folder = "user_data/data/binance"
"""
H1 = Timeframe.H1


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[Registry, FarmConfig, BarStore, redis.Redis]]:
    with farm_settings(tmp_path / "home", CONFIG) as settings:
        client = redis_client(settings)
        try:
            yield Registry.open(), settings.load_config(), open_store(settings), client
        finally:
            client.close()
            embedded_redis(settings).stop()


def stock(store: BarStore, symbol: str, days: int) -> datetime:
    """``days`` of random-walk 5m bars for ``symbol``; returns when the newest bar closed."""
    bars = random_walk_bars(288 * days, seed=len(symbol))
    store.append(symbol, BarInterval.M5, bars, origin="test", source="test", replace=False)
    return store.newest_close(symbol)


def test_a_synced_symbol_whose_bars_went_stale_is_held_and_released_by_the_next_bars(
    farm: tuple[Registry, FarmConfig, BarStore, redis.Redis],
) -> None:
    registry, config, store, _ = farm
    newest = stock(store, "BTC_USDT", 3)
    # The limit: 3 intervals of 5m plus one 5m sync.
    assert hold_of(registry, store, config, "BTC_USDT", H1, newest + timedelta(minutes=19)) is None
    hold = hold_of(registry, store, config, "BTC_USDT", H1, newest + timedelta(hours=2, minutes=30))
    assert hold is not None and hold.flag == "stale_data"
    assert "closed 2h 30m ago" in hold.reason and "(limit 20m)" in hold.reason
    # ETH has no source: imported by hand, its age is shown but nothing is held back.
    stock(store, "ETH_USDT", 3)
    assert hold_of(registry, store, config, "ETH_USDT", H1, newest + timedelta(days=30)) is None


def test_a_synced_symbol_without_bars_is_stale(
    farm: tuple[Registry, FarmConfig, BarStore, redis.Redis],
) -> None:
    registry, config, store, _ = farm
    hold = hold_of(registry, store, config, "BTC_USDT", H1, datetime.now().astimezone())
    assert hold is not None and hold.flag == "stale_data" and "no bars of BTC_USDT" in hold.reason


def test_a_market_whose_data_cannot_make_a_dataset_is_held_until_the_data_grows(
    farm: tuple[Registry, FarmConfig, BarStore, redis.Redis],
) -> None:
    registry, config, store, _ = farm
    newest = stock(store, "ETH_USDT", 4)  # 96 hourly bars: far fewer than a 1h dataset needs
    run = registry.runs.create("ETH_USDT", "1h", "schedule")
    assert hold_of(registry, store, config, "ETH_USDT", H1, newest) is None  # no failure yet: try it
    registry.runs.fail(run.id, "DatasetError: too few rows for the splits")
    hold = hold_of(registry, store, config, "ETH_USDT", H1, newest)
    assert hold is not None and hold.flag == "cannot_train" and "DatasetError" in hold.reason
    assert run.id[:8] in hold.reason
    # A run that failed for another reason (a model's error) holds nothing back.
    other = registry.runs.create("ETH_USDT", "1h", "schedule")
    registry.runs.fail(other.id, "LightGBMError: out of memory")
    assert hold_of(registry, store, config, "ETH_USDT", H1, newest) is None
    registry.runs.fail(registry.runs.create("ETH_USDT", "1h", "schedule").id, "DatasetError: too few rows")
    # Sixty more days of bars make a dataset: the hold is released without a run.
    more = random_walk_bars(288 * 64, seed=3).slice(288 * 4)  # the same grid, after the stored bars
    store.append("ETH_USDT", BarInterval.M5, more, origin="test", source="test", replace=False)
    assert hold_of(registry, store, config, "ETH_USDT", H1, store.newest_close("ETH_USDT")) is None


def test_a_hold_alerts_once_and_is_forgotten_when_released(
    farm: tuple[Registry, FarmConfig, BarStore, redis.Redis],
) -> None:
    registry, config, store, client = farm
    newest = stock(store, "BTC_USDT", 2)
    later = newest + timedelta(hours=1)
    hold = hold_of(registry, store, config, "BTC_USDT", H1, later)
    assert hold is not None
    assert len(track(client, {("BTC_USDT", "1h"): hold})) == 1
    assert track(client, {("BTC_USDT", "1h"): hold}) == []  # the same hold: no second alert
    events = [(f["event"], json.loads(f["data"])) for _, f in client.xrange(EVENTS_STREAM)]
    assert [(e, d["flag"], d["symbol"]) for e, d in events] == [(HELD, "stale_data", "BTC_USDT")]
    track(client, {("BTC_USDT", "1h"): None})
    assert not client.exists(HOLD_KEY.format(symbol="BTC_USDT", timeframe="1h"))
    assert len(track(client, {("BTC_USDT", "1h"): hold})) == 1  # a new hold alerts again


def test_the_trigger_check_fires_nothing_on_a_held_market_and_says_why(
    farm: tuple[Registry, FarmConfig, BarStore, redis.Redis],
) -> None:
    registry, config, store, client = farm
    newest = stock(store, "BTC_USDT", 2)
    stock(store, "ETH_USDT", 2)
    later = newest + timedelta(hours=1)

    def submit(symbol: str, timeframe: str, reason: str) -> Submitted:
        return claim_run(symbol, timeframe, reason)

    fired = check(registry, config, client, submit, later, store=store)
    assert [(f.symbol, f.policy) for f in fired] == [("ETH_USDT", "no_champion")]  # BTC's bars are stale
    assert registry.runs.active("BTC_USDT", "1h") is None
    held = {r.symbol: r.held for r in report(registry, config, client, later, store=store)}
    assert held["ETH_USDT"] is None
    assert held["BTC_USDT"] is not None and held["BTC_USDT"].flag == "stale_data"
    assert [f["event"] for _, f in client.xrange(EVENTS_STREAM)].count(HELD) == 1
    # `farm status` says the same, with each symbol's newest bar and its age.
    markets = {
        m["symbol"]: m
        for m in farm_status(registry, config, client, now=later, store=store).to_json()["markets"]
    }
    assert markets["BTC_USDT"]["held"].startswith("stale_data: the newest bar of BTC_USDT closed 1h ago")
    assert markets["BTC_USDT"]["data_stale"] and markets["BTC_USDT"]["data_age_s"] == 3600.0
    assert markets["BTC_USDT"]["data_newest"] == newest.isoformat()
    assert markets["ETH_USDT"]["held"] is None and not markets["ETH_USDT"]["data_stale"]


def test_a_held_market_asks_for_no_run(farm: tuple[Registry, FarmConfig, BarStore, redis.Redis]) -> None:
    """Beat's fan-outs and every other submitter go through submit_retrain: a held market gets no run."""
    from trainfarm.workers.tasks import submit_retrain

    registry, _, store, _ = farm
    stock(store, "BTC_USDT", 2)  # bars of 2024: years old, and BTC has a source
    submitted = submit_retrain("BTC_USDT", "1h", "schedule")
    assert submitted.run_id == "" and submitted.skipped is not None
    assert submitted.skipped.startswith("stale_data: the newest bar of BTC_USDT closed")
    assert registry.runs.newest("BTC_USDT", "1h") == []
