"""Load: many queued retrains drain with nothing lost or doubled; 50 bots follow 20 promotions.

docs/RELIABILITY.md, "Load", with tiny models (a test config: 3 boosting rounds, 20 days of 1h bars) but the
whole real pipeline: every retrain is a claimed run, a prepare task, a chord of the 8 base models and the meta
stage (stacking, calibration, gates, the pack with its plots, registration, promotion or rejection), drained
by two `celery worker` processes (one pool process each) from a real Redis.

``make test`` queues ``LOAD_RETRAINS`` (default 10) retrains, one per market, all before the workers
start; ``make test-load`` queues 1,000 (``TRAINFARM_LOAD_RETRAINS=1000``), which takes far longer than
the whole suite may on two cores (docs/RELIABILITY.md, "Load", has the figures).

Then 50 bots (5 processes of 10 :class:`~trainfarm_client.live.LiveModel` each) follow 20 promotions;
each promotion must reach every bot before the next one is made, so a bot that misses one is counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.packs import farm_settings, run_in_process
from tests.support.services import REPO_ROOT
from tests.support.waiting import wait_until
from trainfarm.cli.processes import WorkerProcess
from trainfarm.shared.data.synthetic import random_walk_bars
from trainfarm.shared.registry import Registry

LOAD_RETRAINS = int(os.environ.get("TRAINFARM_LOAD_RETRAINS", "10"))
BOTS, BOTS_PER_PROCESS, PROMOTIONS = 50, 10, 20
TF = "1h"
BOT_SYMBOL = "BOTS_USDT"  #: the bots' market, apart from the load's

#: Tiny models over a short window: the load is on the farm's plumbing, not on training.
TINY_CONFIG = """
[universe]
symbols = ["L0000_USDT"]
timeframes = ["1h"]
[splits]
oof_folds = 2
min_train_rows = 100
[training]
base_rounds = 3
meta_rounds = 5
early_stopping_rounds = 2
task_time_limit = "2m"
[timeframes.1h]
training_window = "20d"
label_horizon = 2
"""


def _symbol(i: int) -> str:
    return f"L{i:04d}_USDT"


@pytest.fixture(scope="module")
def load_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A farm home (embedded Redis) whose store holds LOAD_RETRAINS markets of 25 days of 5m bars."""
    from trainfarm.shared.connections import embedded_redis
    from trainfarm.shared.data.store import open_store
    from trainfarm.workers.celery_app import rebind

    home = tmp_path_factory.mktemp("load") / "home"
    with farm_settings(home, TINY_CONFIG):
        bars = home / "bars.parquet"
        random_walk_bars(288 * 25, seed=11).write_parquet(bars)
        store = open_store()
        for symbol in [BOT_SYMBOL, *(_symbol(i) for i in range(LOAD_RETRAINS))]:
            store.import_file(bars, symbol)
        rebind()
        env = dict(os.environ)  # the FARM_* variables of this home, for the workers and bots
        try:
            yield home, env
        finally:
            embedded_redis().stop()


# The suite's per-test limit (pyproject.toml) is for 10 retrains; 1,000 take most of an hour on 2 cores.
@pytest.mark.timeout(600 + 8 * LOAD_RETRAINS)
def test_queued_retrains_drain_on_two_workers_with_no_loss_no_duplicate_and_no_stuck_run(
    load_home: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from trainfarm.shared.connections import redis_client
    from trainfarm.workers.routing import QUEUES
    from trainfarm.workers.tasks import submit_retrain

    _home, env = load_home
    registry = Registry.open()
    runs = [submit_retrain(_symbol(i), TF, "load").run_id for i in range(LOAD_RETRAINS)]
    assert len(set(runs)) == LOAD_RETRAINS  # one run per market, none merged
    workers = [WorkerProcess(f"load{n}-{uuid.uuid4().hex[:4]}", env, tmp_path, concurrency=1) for n in (1, 2)]
    started = time.monotonic()
    try:
        for worker in workers:
            worker.start()

        wait_until(
            lambda: not registry.runs.all_active(timeframe=TF),
            120 + 6.0 * LOAD_RETRAINS,
            "the runs to end",
            process=workers[0],
            every=0.25,
        )
        wall = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    records = {r.id: r for r in registry.runs.newest(limit=LOAD_RETRAINS + 10)}
    assert set(records) == set(runs)  # no run lost, none invented
    failed = {r.id: r.error for r in records.values() if r.status != "succeeded"}
    assert not failed, failed
    versions = [v for i in range(LOAD_RETRAINS) for v in registry.versions.of_market(_symbol(i), TF)]
    assert len(versions) == LOAD_RETRAINS == len({v.version for v in versions})  # one version per run
    assert Counter(v.run_id for v in versions) == Counter(runs)
    assert all(records[v.run_id].version == v.version for v in versions)
    assert all(registry.runs.active(_symbol(i), TF) is None for i in range(LOAD_RETRAINS))  # none stuck
    promotions = [p for i in range(LOAD_RETRAINS) for p in registry.champions.history(_symbol(i), TF)]
    assert len(promotions) == len({p.to_version for p in promotions})  # never promoted twice
    assert len(promotions) == sum(v.status == "champion" for v in versions)
    client = redis_client()
    try:  # the queues are empty: every message was consumed and acknowledged
        assert all(client.llen(q) == 0 for q in QUEUES)
        assert client.hlen("unacked") == 0
    finally:
        client.close()
    base = sum(len(registry.runs.base_results(r)) for r in runs)
    assert base == 8 * LOAD_RETRAINS
    print(
        f"\nload: {LOAD_RETRAINS} retrains ({10 * LOAD_RETRAINS} tasks) drained by 2 workers in {wall:.0f} s "
        f"({LOAD_RETRAINS / wall * 60:.0f} runs/min); {len(promotions)} promoted, "
        f"{LOAD_RETRAINS - len(promotions)} rejected; lost 0, duplicate versions 0, stuck runs 0"
    )


@pytest.fixture(scope="module")
def two_versions(load_home: tuple[Path, dict[str, str]]) -> tuple[str, str]:
    """Two versions of the bots' market, built in this process; the one that is not champion first."""
    first, second = run_in_process(BOT_SYMBOL, TF, "bots 1"), run_in_process(BOT_SYMBOL, TF, "bots 2")
    champion = Registry.open().champions.get(BOT_SYMBOL, TF)
    return (second, first) if champion is not None and champion.version == first else (first, second)


def test_fifty_bots_follow_twenty_promotions_and_none_is_missed(
    load_home: tuple[Path, dict[str, str]], two_versions: tuple[str, str], tmp_path: Path
) -> None:
    from trainfarm.shared.champions.publish import promote_version
    from trainfarm.shared.connections import redis_url

    _home, env = load_home
    out, stop = tmp_path / "reloads.txt", tmp_path / "stop"
    out.touch()
    bots = [f"fleet{f}-{b}" for f in range(BOTS // BOTS_PER_PROCESS) for b in range(BOTS_PER_PROCESS)]
    fleets = []
    try:
        for n in range(BOTS // BOTS_PER_PROCESS):
            argv = [sys.executable, "-m", "tests.reliability.bot_fleet", redis_url(), BOT_SYMBOL, TF]
            argv += [str(BOTS_PER_PROCESS), f"fleet{n}", str(out), str(stop)]
            log = (tmp_path / f"fleet{n}.log").open("wb")
            fleets.append(
                subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        wait_until(
            lambda: out.read_text().count(" started\n") == len(fleets), 120, "the bot fleets", every=0.25
        )
        missed: list[tuple[int, str]] = []
        for i in range(PROMOTIONS):
            version = two_versions[i % 2]
            before = Counter(out.read_text().splitlines())
            promote_version(version)

            def arrived(version: str = version, before: Counter[str] = before) -> bool:
                now = Counter(out.read_text().splitlines())
                return all(now[f"{bot} {version}"] > before[f"{bot} {version}"] for bot in bots)

            try:  # every bot reloads this version before the next promotion is made
                wait_until(arrived, 60, f"promotion {i + 1} to reach {BOTS} bots", every=0.25)
            except TimeoutError:
                now = Counter(out.read_text().splitlines())
                missed += [(i, bot) for bot in bots if now[f"{bot} {version}"] <= before[f"{bot} {version}"]]
        assert not missed, missed
    finally:
        stop.touch()
        for proc in fleets:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    # The promotions and the champion the bots found at start (if any): nothing else, nothing twice.
    reloads = Counter(line.split()[0] for line in out.read_text().splitlines() if "started" not in line)
    assert set(reloads) == set(bots) and all(n in (PROMOTIONS, PROMOTIONS + 1) for n in reloads.values())
