"""Beat's ``ingest-bars`` entry, for real: a `celery beat` and a `celery worker` process on the farm's
embedded Redis sync a watched freqtrade folder into the store every second. New rows arrive without anyone
typing a command; a rewritten (revised) file is refused and the store keeps its bars."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import tree
from tests.support.waiting import wait_until
from trainfarm.cli.processes import BeatProcess, WorkerProcess
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import rebind

CONFIG = """
[universe]
symbols = ["BTC_USDT"]
timeframes = ["24h"]
[data]
sync = "1s"
[data.sources.BTC_USDT]
kind = "folder"
folder = "{folder}"
"""


@pytest.fixture
def farm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, BarStore, list[BeatProcess | WorkerProcess]]]:
    home = tmp_path / "home"
    folder = tmp_path / "user_data" / "data" / "binance"
    folder.mkdir(parents=True)
    home.mkdir()
    config = home / "farm.toml"
    config.write_text(CONFIG.format(folder=folder))
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    env_vars = {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(config)}
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    rebind()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | env_vars
    redis_client(get_settings()).close()  # the embedded Redis, up before beat and the worker
    processes: list[BeatProcess | WorkerProcess] = [
        WorkerProcess("ingest", env, home / "logs", queues="control"),
        BeatProcess("beat", env, home / "logs"),
    ]
    try:
        for process in processes:
            process.start()
        yield folder, open_store(get_settings()), processes
    finally:
        for process in reversed(processes):
            process.stop()
        # No rebind here: it builds the broker URL, which would start this home's Redis again.
        embedded_redis(get_settings()).stop()
        get_settings.cache_clear()


def test_beat_syncs_a_watched_folder_and_refuses_a_rewritten_history(
    farm: tuple[Path, BarStore, list[BeatProcess | WorkerProcess]], sample_dir: Path
) -> None:
    folder, store, processes = farm
    bars = read_bars(sample_dir / "BTC_USDT-5m.parquet").head(3000)
    path = folder / "BTC_USDT-5m.feather"
    bars.head(2000).write_ipc(path)
    stored = lambda: store.summary("BTC_USDT").rows if store.has("BTC_USDT") else 0  # noqa: E731
    wait_until(lambda: stored() == 2000, 90, "beat's ingest-bars to sync the folder", every=0.5)
    bars.write_ipc(path)  # freqtrade appended a thousand bars
    wait_until(lambda: stored() == 3000, 60, "the next sync to append the new bars", every=0.5)
    assert store.load("BTC_USDT").equals(bars)
    before = tree(store.root)
    revised = bars.with_columns(
        close=pl.when(pl.int_range(pl.len()) == 1500).then(pl.col("close") + 1.0).otherwise(pl.col("close")),
        high=pl.when(pl.int_range(pl.len()) == 1500).then(pl.col("high") + 1.0).otherwise(pl.col("high")),
    )
    revised.write_ipc(path)
    worker = processes[0]
    wait_until(
        lambda: "BTC_USDT 5m: refused:" in worker.log() and "row 1501" in worker.log(),
        60,
        "the worker to refuse the revised file",
        every=0.5,
    )
    assert tree(store.root) == before
