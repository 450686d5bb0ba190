"""`python -m bench memory`: peak memory of a worker training the largest market, and of a bot.

* **worker**: one real ``celery worker`` (one pool process) runs a whole retrain of the default config's
  largest (symbol, timeframe) by rows: BTC_USDT 5m (60 days of bars; ``../shared/data``, or the bundled
  sample). Its peak resident set comes from the kernel's high-water mark (``VmHWM`` in
  ``/proc/<pid>/status``) of the pool process (where training happens) and of the main process, read
  before the worker stops, so no sample can miss the peak.
* **bot**: a process that loads the run's pack in a :class:`~trainfarm_client.predictor.Predictor`
  (every file verified, the sample rows re-run) and scores the newest bar of
  :data:`~trainfarm_client.features.MIN_HISTORY_BARS` bars; its ``VmHWM`` once done.
* **bot with a challenger** (shadow mode): the same, holding a second pack of the same market beside the
  first (the run's pack loaded again into a second predictor: a challenger of the same size, which shares
  nothing with the champion) and scoring the bar with both; the difference is the challenger's cost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import psutil

from bench.bars import bar_file
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings

SYMBOL, TF = "BTC_USDT", "5m"
RUN_TIMEOUT_S = 3600.0

#: Run by the bot's interpreter: load the pack, score the newest bar, print the peak RSS in bytes.
BOT = textwrap.dedent(
    """
    import json, sys
    from datetime import timedelta
    from pathlib import Path

    import polars as pl

    from trainfarm_client.features import MIN_HISTORY_BARS
    from trainfarm_client.predictor import Predictor

    args = json.loads(sys.argv[1])
    bars = pl.read_parquet(args["bars"]).tail(MIN_HISTORY_BARS)
    now = bars["date"][-1] + timedelta(minutes=10)
    held = []
    for _ in range(args["packs"]):  # 2: the champion and a challenger, as a shadowing bot holds them
        predictor = Predictor.load(Path(args["pack"]), expected_manifest_sha256=args["sha256"])
        predictor.self_check()
        held.append(predictor)
        score = predictor.score_newest(bars, now=now)
    status = Path("/proc/self/status").read_text()
    peak = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM"))
    print(json.dumps({"peak_rss": peak, "scored": score.probabilities is not None, "reason": score.reason}))
    """
)


def peak_rss(pid: int) -> int:
    """The process's peak resident set in bytes (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _bot(pack: str, sha256: str, bars: Path, packs: int) -> dict[str, Any]:
    """Run the bot script holding ``packs`` predictors of the pack; its JSON line."""
    args = {"pack": pack, "sha256": sha256, "bars": str(bars), "packs": packs}
    done = subprocess.run(
        [sys.executable, "-c", BOT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench memory: the bot process failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


def main() -> dict[str, object]:
    """Train the largest market on one worker, load its pack in a bot; print and return the peaks."""
    from trainfarm.cli.processes import WorkerProcess
    from trainfarm.cli.retrain_cmds import follow
    from trainfarm.workers.celery_app import rebind
    from trainfarm.workers.tasks import submit_retrain

    source = bar_file(SYMBOL)
    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        home = Path(tmp) / "home"
        os.environ["FARM_HOME"] = str(home)
        get_settings.cache_clear()
        rebind()
        worker = WorkerProcess("memory", dict(os.environ), home / "logs")
        try:
            open_store().import_file(source, SYMBOL)
            worker.start()
            assert worker.proc is not None
            main_pid = worker.proc.pid
            pool = [c.pid for c in psutil.Process(main_pid).children(recursive=True)]
            run_id = submit_retrain(SYMBOL, TF, "bench memory").run_id
            if follow([run_id], timeout=RUN_TIMEOUT_S, quiet=True):
                raise SystemExit(f"bench memory: the run failed: {Registry.open().runs.get(run_id).error}")
            worker_peak = max(peak_rss(pid) for pid in pool)
            main_peak = peak_rss(main_pid)
            version = Registry.open().versions.get(str(Registry.open().runs.get(run_id).version))
            bars = Path(tmp) / "bars.parquet"
            open_store().load(SYMBOL).write_parquet(bars)
        finally:
            worker.stop()
            embedded_redis().stop()
            get_settings.cache_clear()
        bot, shadowing = (_bot(version.path, version.manifest_sha256, bars, packs) for packs in (1, 2))
    figures = {
        "market": f"{SYMBOL} {TF}",
        "source": str(source),
        "worker_pool_process_peak_mib": _mib(worker_peak),
        "worker_main_process_peak_mib": _mib(main_peak),
        "bot_peak_mib": _mib(int(bot["peak_rss"])),
        "bot_with_challenger_peak_mib": _mib(int(shadowing["peak_rss"])),
        "challenger_extra_mib": _mib(int(shadowing["peak_rss"]) - int(bot["peak_rss"])),
        "bot_scored_the_newest_bar": bool(bot["scored"]),
    }
    console.print(f"bench memory: a whole {SYMBOL} {TF} retrain (default config) from {source}")
    if not bot["scored"]:
        console.print(f"[yellow]the bot did not score the newest bar: {bot['reason']}[/]")
    print_table(
        "peak resident memory (VmHWM)",
        ["process", "MiB"],
        [
            ["worker pool process (training)", figures["worker_pool_process_peak_mib"]],
            ["worker main process", figures["worker_main_process_peak_mib"]],
            ["bot holding the pack, scoring one bar", figures["bot_peak_mib"]],
            [
                "bot holding champion and challenger, scoring with both",
                figures["bot_with_challenger_peak_mib"],
            ],
            ["  the challenger's extra memory", figures["challenger_extra_mib"]],
        ],
    )
    return figures


if __name__ == "__main__":
    main()
