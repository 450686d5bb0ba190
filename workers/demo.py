"""`farm demo`: the farm end to end on the bundled real sample.

Data (import, validate, gaps, resample, snapshots), then the training farm: two real Celery worker
processes on the farm's Redis, a retrain of every bundled symbol on every configured timeframe with live
progress, and a table of runs, versions and test metrics. Everything it starts, it stops.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from shared.cli.output import console
from shared.cli.registry_cmds import print_run_metrics
from shared.connections import embedded_redis
from shared.data.store import open_store
from shared.demo import SAMPLE_DIR, run_data_demo
from shared.registry import Registry
from shared.settings import get_settings
from shared.zoo.threads import available_cores
from workers.cli import follow
from workers.processes import WorkerProcess
from workers.tasks import submit_retrain

WORKERS = 2


def _worker_env() -> dict[str, str]:
    """The demo's settings, made explicit, so worker processes use the same home, Redis and config."""
    settings = get_settings()
    env = dict(os.environ)
    env["FARM_HOME"] = str(settings.home)
    config = settings.config_path()
    if config is not None:
        env["FARM_CONFIG_FILE"] = str(config)
    # Two workers share this machine: each gets its share of the cores, never more (no oversubscription).
    env["FARM_WORKER_THREADS"] = str(max(1, available_cores() // WORKERS))
    return env


def run_demo(sample_dir: Path = SAMPLE_DIR) -> bool:
    """Run the demo; returns False when a run failed."""
    started_redis = run_data_demo(sample_dir)
    settings = get_settings()
    config = settings.load_config()
    logs = settings.home / "logs"
    workers = [WorkerProcess(f"demo{i + 1}", _worker_env(), logs) for i in range(WORKERS)]
    try:
        console.print(f"[green]6.[/] starting {WORKERS} Celery worker processes (queues cpu, meta, control)")
        t0 = time.perf_counter()
        for worker in workers:
            worker.start()
        console.print(f"   ready in {time.perf_counter() - t0:.1f}s; logs in {logs}")
        symbols = open_store().symbols()
        timeframes = [tf.value for tf in config.universe.timeframes]
        console.print(
            f"[green]7.[/] retraining {len(symbols)} symbol(s) x {len(timeframes)} timeframe(s): "
            "chord(8 base models) -> meta-learner -> calibration -> evaluation -> artifact pack"
        )
        t0 = time.perf_counter()
        submitted = [submit_retrain(sym, tf, "demo") for sym in symbols for tf in timeframes]
        failed = follow([s.run_id for s in submitted], timeout=3600)
        console.print(f"   {len(submitted)} run(s) in {time.perf_counter() - t0:.0f}s")
        registry = Registry.open()
        print_run_metrics([registry.get_run(s.run_id) for s in submitted])
        console.print(f"   versions (status candidate) under {settings.artifacts_dir}")
    finally:
        for worker in workers:
            worker.stop()
        if started_redis:
            embedded_redis(settings).stop()
    console.rule("[bold]done")
    console.print(
        "Next: `farm runs`, `farm runs show RUN`, `farm models BTC/USDT 1h`, "
        "`farm retrain BTC/USDT -t 1h --wait` (with `farm worker` running in another terminal)."
    )
    return not failed
