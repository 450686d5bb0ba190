"""`python -m bench [validation] [features] [farm] [quality]`: the named benchmarks (by default all but
quality).

* ``validation``: :func:`validate_bars` on 400k real 5m bars (:mod:`bench.validation`);
* ``features``: the feature pipeline on real bars (:mod:`bench.features`);
* ``farm``: the farm against a sequential baseline, on the bundled real sample (below);
* ``quality`` (only when named; `make bench-quality`): model quality on the real data (:mod:`bench.quality`).

The tests never assert how fast something is; these figures are where speed is measured.

Farm: both sides do the same work: retrain every bundled symbol on the configured timeframes with the same
config, one thread per task. The baseline calls the pipeline steps one after another in this process;
the farm runs them through Celery on WORKERS worker processes. The ratio of the two wall times, measured
back to back in one run, is what to read; absolute seconds depend on the machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from trainfarm.cli.demo_data import SAMPLE_DIR
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.shared.zoo.threads import available_cores
from trainfarm.workers.jobs import RunJob

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
    from trainfarm.workers import stages
    from trainfarm.workers.runs import claim_run

    started = time.perf_counter()
    for symbol, tf in jobs:
        claimed = claim_run(symbol, tf, "bench")
        stage = stages.prepare(RunJob(run_id=claimed.run_id, symbol=symbol, timeframe=tf))
        assert stage is not None and stages.launched(stage)
        results = [
            stages.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu")
            for m in MODEL_NAMES
        ]
        stages.train_meta(stage, results, task_id="bench", threads=1)
    return time.perf_counter() - started


def farm(jobs: list[tuple[str, str]]) -> float:
    """The same runs through Celery on WORKERS real worker processes."""
    from trainfarm.cli.run_cmds import follow
    from trainfarm.workers.celery_app import rebind
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


def farm_bench() -> None:
    """The farm's speed-up over the sequential baseline."""
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


def _validation() -> None:
    from bench import validation

    validation.main()


def _features() -> None:
    from bench import features

    features.main()


def _quality() -> None:
    from bench import quality

    quality.main()


#: Every benchmark by name, in the order ``python -m bench`` runs them (the quick ones first).
BENCHMARKS: dict[str, Callable[[], None]] = {
    "validation": _validation,
    "features": _features,
    "farm": farm_bench,
}
#: Named only: ``python -m bench quality`` (`make bench-quality`) retrains 12 real markets (minutes).
ON_DEMAND: dict[str, Callable[[], None]] = {"quality": _quality}


def main(argv: Sequence[str] | None = None) -> None:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    known = BENCHMARKS | ON_DEMAND
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"usage: python -m bench [{' | '.join(known)}]...; unknown: {', '.join(unknown)}")
    for name in names:
        known[name]()


if __name__ == "__main__":
    main()
