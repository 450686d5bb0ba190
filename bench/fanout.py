"""`python -m bench fanout`: one full cycle through the farm against the same work done one task at a time.

The cycle is what beat fans out: every symbol on every timeframe (BTC, ETH and SOL from ``../shared/data``
on 5m, 1h, 12h and 24h; without that folder, the bundled two-symbol sample) with the default config.
Both sides do exactly the same runs with one thread per task:

* **sequential**: the runs' steps called one after another in this process (prepare, the 8 base models,
  the meta stage), as a single retrain script or FreqAI's training thread does it;
* **farm**: the same runs submitted at once to :data:`WORKERS` real ``celery worker`` processes (one pool
  process each), measured back to back with the baseline in one run.

Read the ratio (speed-up) and the parallel efficiency, ``(task CPU seconds / cores) / wall``, where the
task CPU seconds are what the workers' pool processes spent (measured with psutil). Where the rest goes
comes from Celery's task events (:mod:`bench.timeline`): busy time per task kind, slot idle time while work
remained (gaps) and after a slot's last task (tail), and each run's chord join.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.bars import SHARED_DATA
from bench.capacity import Cadence, Need, need, total_cores
from bench.timeline import Breakdown, EventLog, breakdown, chord_joins
from trainfarm.cli.demo.sample_data import SAMPLE_DIR
from trainfarm.cli.output import console, print_table
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import Timeframe, format_duration
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.shared.zoo.threads import available_cores
from trainfarm.workers.payloads import RunJob

SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT")
TIMEFRAMES = ("5m", "1h", "12h", "24h")
WORKERS = 2
RUN_TIMEOUT_S = 7200.0
#: The universe of the capacity table (docs/PERFORMANCE.md: 500 symbols x 4 timeframes).
CAPACITY_SYMBOLS = 500


@dataclass(frozen=True)
class Side:
    """One side's wall time, CPU time, and seconds per phase (summed over runs)."""

    wall_s: float
    cpu_s: float
    phases: dict[str, float]
    #: Sequential side only: per timeframe, each run's (whole run, meta stage) seconds.
    runs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def _bar_files() -> tuple[dict[str, Path], str]:
    """The 5m bar file of each symbol, and where they come from."""
    shared = {s: SHARED_DATA / f"{s}-5m.parquet" for s in SYMBOLS}
    if all(p.is_file() for p in shared.values()):
        return shared, str(SHARED_DATA)
    sample = {p.name.split("-")[0]: p for p in sorted(SAMPLE_DIR.glob("*-5m.parquet"))}
    return sample, f"{SAMPLE_DIR} (../shared/data is absent)"


def _home(root: Path, name: str, files: dict[str, Path]) -> None:
    """Point this process's settings at a fresh farm home holding ``files`` under the default config."""
    home = root / name
    home.mkdir(parents=True)
    config = home / "farm.toml"
    config.write_text(f"[universe]\nsymbols = {list(files)}\ntimeframes = {list(TIMEFRAMES)}\n")
    os.environ["FARM_HOME"] = str(home)
    os.environ["FARM_CONFIG_FILE"] = str(config)
    os.environ["FARM_WORKER_THREADS"] = "1"
    get_settings.cache_clear()
    store = open_store()
    for symbol, path in files.items():
        store.import_file(path, symbol)


def sequential(jobs: list[tuple[str, str]]) -> Side:
    """Every run's steps called in order in this process (no broker, no parallelism)."""
    from trainfarm.workers import stages
    from trainfarm.workers.runs import claim_run

    phases = {"snapshot (prepare)": 0.0, "base models": 0.0, "meta stage": 0.0}
    runs: dict[str, list[tuple[float, float]]] = {}
    cpu, started = time.process_time(), time.perf_counter()
    for symbol, tf in jobs:
        claimed = claim_run(symbol, tf, "bench")
        run_started = at = time.perf_counter()
        stage = stages.prepare(RunJob(run_id=claimed.run_id, symbol=symbol, timeframe=tf))
        assert stage is not None and stages.launched(stage)
        phases["snapshot (prepare)"] += time.perf_counter() - at
        at = time.perf_counter()
        results = [
            stages.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu")
            for m in MODEL_NAMES
        ]
        phases["base models"] += time.perf_counter() - at
        at = time.perf_counter()
        stages.train_meta(stage, results, task_id=f"bench-{claimed.run_id}", threads=1)
        now = time.perf_counter()
        phases["meta stage"] += now - at
        runs.setdefault(tf, []).append((now - run_started, now - at))
    return Side(time.perf_counter() - started, time.process_time() - cpu, phases, runs)


def _cpu(pids: list[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def farm(jobs: list[tuple[str, str]]) -> tuple[Side, Breakdown, dict[str, object]]:
    """The same runs through Celery on WORKERS real worker processes; the side and its breakdown."""
    from trainfarm.cli.processes import WorkerProcess
    from trainfarm.cli.retrain_cmds import follow
    from trainfarm.workers.celery_app import app, rebind
    from trainfarm.workers.tasks import submit_retrain

    rebind()
    settings = get_settings()
    workers = [WorkerProcess(f"bench{i}", dict(os.environ), settings.home / "logs") for i in range(WORKERS)]
    events = EventLog(app)
    try:
        for worker in workers:
            worker.start()
        mains = [w.proc.pid for w in workers if w.proc is not None]
        pools = [c.pid for pid in mains for c in psutil.Process(pid).children(recursive=True)]
        events.start()
        pool_cpu, main_cpu = _cpu(pools), _cpu(mains)
        started = time.time()
        ids = [submit_retrain(symbol, tf, "bench").run_id for symbol, tf in jobs]
        failed = follow(ids, timeout=RUN_TIMEOUT_S, quiet=True)
        # The last run is done once its meta stage has registered the version: its task ends right after.
        time.sleep(1.0)
        ended = max([s.ended or 0.0 for s in events.finished()] + [time.time() - 1.0])
        pool_cpu, main_cpu = _cpu(pools) - pool_cpu, _cpu(mains) - main_cpu
        replaced = sorted(
            set(pools) ^ {c.pid for pid in mains for c in psutil.Process(pid).children(recursive=True)}
        )
    finally:
        events.stop()
        for worker in workers:
            worker.stop()
    if failed:
        raise SystemExit(f"bench fanout: runs failed: {failed}")
    if replaced:
        console.print(
            f"[yellow]pool processes were replaced during the run ({replaced}): CPU undercounted[/]"
        )
    spans = events.finished()
    registry = Registry.open()
    last_base = [
        max(r.finished_at.timestamp() for r in registry.runs.base_results(rid) if r.finished_at is not None)
        for rid in ids
    ]
    split = breakdown(spans, start=started, end=ended, slots=WORKERS)
    joins = chord_joins(last_base, spans)
    detail = {
        "worker_main_cpu_s": round(main_cpu, 3),
        "chord_join_s": {
            "mean": round(sum(joins) / len(joins), 3) if joins else None,
            "max": round(max(joins), 3) if joins else None,
        },
    }
    return Side(ended - started, pool_cpu, dict(split.busy_s)), split, detail


def _capacity(base: Side, efficiency: float, config: FarmConfig) -> dict[str, object]:
    """Print and return the cores CAPACITY_SYMBOLS markets need on every timeframe (bench.capacity)."""
    needs: dict[str, Need] = {}
    rows: list[list[object]] = []
    for tf, runs in base.runs.items():
        params = config.params(Timeframe(tf))
        full_s = sum(r for r, _ in runs) / len(runs)
        meta_s = sum(m for _, m in runs) / len(runs)
        cadence = Cadence(params.cadence, params.meta_cadence, params.freshness_limit)
        found = need(
            tf,
            symbols=CAPACITY_SYMBOLS,
            full_run_s=full_s,
            meta_run_s=meta_s,
            cadence=cadence,
            efficiency=min(1.0, efficiency),
        )
        needs[tf] = found
        rows.append(
            [tf, round(full_s, 1), round(meta_s, 1), format_duration(params.cadence),
             format_duration(params.meta_cadence) if params.meta_cadence is not None else "off",
             format_duration(params.freshness_limit), round(found.throughput_cores, 2),
             round(found.drain_cores, 2)]
        )  # fmt: skip
    cores = total_cores(needs)
    print_table(
        f"capacity: {CAPACITY_SYMBOLS} symbols x {len(needs)} timeframes at efficiency {efficiency:.2f}: "
        f"{cores} worker cores",
        ["tf", "run s", "meta s", "cadence", "meta cadence", "freshness", "cores (load)", "cores (drain)"],
        rows,
    )
    return {
        "symbols": CAPACITY_SYMBOLS,
        "efficiency": round(efficiency, 3),
        "cores": cores,
        "per_timeframe": {
            tf: {
                "core_s_per_hour": round(n.core_s_per_hour, 1),
                "throughput_cores": round(n.throughput_cores, 3),
                "drain_cores": round(n.drain_cores, 3),
            }
            for tf, n in needs.items()
        },
    }


def main() -> dict[str, object]:
    """Run both sides back to back; print and return the figures."""
    files, source = _bar_files()
    # In the order beat's fan-outs send them: one timeframe's symbols after another (5m first).
    jobs = [(s, tf) for tf in TIMEFRAMES for s in files]
    console.print(
        f"bench fanout: {len(jobs)} runs x {len(MODEL_NAMES)} models from {source}; {WORKERS} worker "
        f"processes, one thread per task; {available_cores()} core(s) available"
    )
    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        root = Path(tmp)
        _home(root, "sequential", files)
        try:
            base = sequential(jobs)
        finally:
            embedded_redis().stop()
        _home(root, "farm", files)
        try:
            parallel, split, detail = farm(jobs)
            config = get_settings().load_config()
        finally:
            embedded_redis().stop()
    cores = WORKERS
    efficiency = parallel.cpu_s / cores / parallel.wall_s
    speedup = base.wall_s / parallel.wall_s
    print_table(
        "full cycle: farm vs sequential (same runs, one thread per task)",
        ["runs", "sequential s", "farm s", "speed-up", "task CPU s", "efficiency", "target"],
        [[len(jobs), round(base.wall_s, 1), round(parallel.wall_s, 1), round(speedup, 2),
          round(parallel.cpu_s, 1), round(efficiency, 2), ">= 0.9"]],
    )  # fmt: skip
    slot_s = cores * parallel.wall_s
    rows: list[list[object]] = [
        [kind, round(seconds, 1), f"{seconds / slot_s:.1%}", round(base.phases.get(kind, 0.0), 1)]
        for kind, seconds in sorted(parallel.phases.items())
    ]
    for name, seconds in (("idle while work remained", split.idle_gaps_s), ("idle tail", split.idle_tail_s)):
        rows.append([name, round(seconds, 1), f"{seconds / slot_s:.1%}", ""])
    print_table(
        f"where the farm's {slot_s:.0f} slot-seconds go ({cores} slots x {parallel.wall_s:.0f} s wall)",
        ["", "slot-seconds", "share", "sequential s"],
        rows,
    )
    capacity = _capacity(base, efficiency, config)
    return {
        "capacity": capacity,
        "runs": len(jobs),
        "source": source,
        "workers": WORKERS,
        "cores_available": available_cores(),
        "sequential": {
            "wall_s": round(base.wall_s, 2),
            "cpu_s": round(base.cpu_s, 2),
            "phases_s": {k: round(v, 2) for k, v in base.phases.items()},
        },
        "farm": {"task_cpu_s": round(parallel.cpu_s, 2), **split.to_json(), **detail},
        "speedup": round(speedup, 3),
        "efficiency": round(efficiency, 3),
        "target_efficiency": 0.9,
    }


if __name__ == "__main__":
    main()
