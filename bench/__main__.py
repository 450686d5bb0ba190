"""`python -m bench`: the farm against a sequential baseline, on the bundled real sample.

Both sides do the same work: retrain every bundled symbol on the configured timeframes with the same
config, one thread per task. The baseline calls the pipeline steps one after another in this process;
the farm runs them through Celery on WORKERS worker processes. The ratio of the two wall times, measured
back to back in one run, is what to read; absolute seconds depend on the machine.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.cli.demo_data import SAMPLE_DIR
from trainfarm.workers.jobs import RunJob
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.shared.zoo.threads import available_cores

WORKERS = max(1, available_cores())
TIMEFRAMES = ("1h", "12h")


def _home(root: Path, name: str) -> None:
    """Point this process's settings at a fresh farm home."""
    os.environ["FARM_HOME"] = str(root / name)
    os.environ["FARM_WORKER_THREADS"] = "1"
    get_settings.cache_clear()
    for sample in sorted(SAMPLE_DIR.glob("*-5m.parquet")):
        open_store().import_file(sample, sample.name.split("-")[0])


def sequential(jobs: list[tuple[str, str]]) -> float:
    """Every run's steps called in order in this process (no broker, no parallelism)."""
    from trainfarm.workers import stages as pipeline

    started = time.perf_counter()
    for symbol, tf in jobs:
        claimed = pipeline.claim_run(symbol, tf, "bench")
        stage = pipeline.prepare(RunJob(run_id=claimed.run_id, symbol=symbol, timeframe=tf))
        assert stage is not None
        results = [
            pipeline.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu")
            for m in MODEL_NAMES
        ]
        pipeline.train_meta(stage, results, task_id="bench", threads=1)
    return time.perf_counter() - started


def farm(jobs: list[tuple[str, str]]) -> float:
    """The same runs through Celery on WORKERS real worker processes."""
    from trainfarm.workers.celery_app import rebind
    from trainfarm.cli.run_cmds import follow
    from trainfarm.workers.processes import WorkerProcess
    from trainfarm.workers.tasks import submit_retrain

    rebind()
    settings = get_settings()
    workers = [WorkerProcess(f"bench{i}", dict(os.environ), settings.home / "logs") for i in range(WORKERS)]
    try:
        for worker in workers:
            worker.start()
        started = time.perf_counter()
        ids = [submit_retrain(symbol, tf, "bench").run_id for symbol, tf in jobs]
        failed = follow(ids, timeout=3600, quiet=True)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.stop()
    if failed:
        raise SystemExit(f"bench: runs failed: {failed}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        root = Path(tmp)
        _home(root, "sequential")
        symbols = open_store().symbols()
        jobs = [(s, tf) for s in symbols for tf in TIMEFRAMES]
        console.print(f"bench: {len(jobs)} runs x {len(MODEL_NAMES)} models, {WORKERS} worker process(es)")
        try:
            base = sequential(jobs)
        finally:
            embedded_redis().stop()
        _home(root, "farm")
        try:
            parallel = farm(jobs)
        finally:
            embedded_redis().stop()
    print_table(
        "farm vs sequential (same runs, one thread per task)",
        ["runs", "sequential s", "farm s", "speed-up", "workers"],
        [[len(jobs), round(base, 1), round(parallel, 1), round(base / parallel, 2), WORKERS]],
    )


if __name__ == "__main__":
    main()
