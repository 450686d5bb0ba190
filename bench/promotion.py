"""`python -m bench promotion`: from a promotion to the bots serving the new version.

Two real packs of BTC_USDT 12h (the bundled sample, the default model sizes) are built in this process
and registered as candidates; :data:`PROMOTIONS` manual promotions (``promote_version``: registry
transaction, CHAMPION pointer, Redis key and nudge) alternate between them while bot processes
(:mod:`bench.bot_process`, one ``LiveModel`` each) follow. A bot writes the time it starts serving a version
(right after the swap: the pack's files verified against the manifest, its sample rows re-run); the
latency of one (promotion, bot) is that time minus the time ``promote_version`` was called. Each
promotion waits until every bot serves it before the next.

Cases: 1 bot and :data:`MANY` bots, reading the packs from the artifact folder (``file://``) and through
``farm serve-packs`` (``http://``, with a token; each bot fetches each version once into its own cache: the
champion it loads at start, then the first promotion's pack; later promotions are cache hits; both kinds
are reported). Bots start serving a champion first, so no promotion pays the model libraries' imports.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from bench.bars import latency_ms
from trainfarm.cli.demo.sample_data import SAMPLE_DIR
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis, redis_url
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.workers.payloads import RunJob

SYMBOL, TF = "BTC_USDT", "12h"
PROMOTIONS = 20
MANY = 50
TOKEN = "bench-pack-token"
WAIT_S = 120.0
REPO = Path(__file__).resolve().parents[1]


def _build_candidates(count: int) -> list[str]:
    """``count`` packs of SYMBOL/TF through the farm's own stages, registered as candidates (not gated)."""
    from trainfarm.shared.training.meta_stage import build_version
    from trainfarm.workers import stages
    from trainfarm.workers.runs import claim_run, run_dir

    registry = Registry.open()
    versions = []
    for i in range(count):
        claimed = claim_run(SYMBOL, TF, f"bench promotion {i}")
        stage = stages.prepare(RunJob(run_id=claimed.run_id, symbol=SYMBOL, timeframe=TF))
        assert stage is not None and stages.launched(stage)
        results = [
            stages.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu")
            for m in MODEL_NAMES
        ]
        run = registry.runs.get(claimed.run_id)
        built = build_version(
            stage,
            stages.load_run_snapshot(stage),
            stages.collect_results(stage, results),
            run_dir(claimed.run_id),
            threads=1,
            run_created_at=run.created_at,
        )
        registry.versions.add(
            built.version,
            SYMBOL,
            TF,
            claimed.run_id,
            metrics=built.metrics,
            path=str(built.path),
            manifest_sha256=built.manifest_sha256,
        )
        versions.append(built.version)
    return versions


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench promotion: timed out waiting for {what}")
        time.sleep(0.005)


@contextmanager
def _pack_server(port: int) -> Iterator[None]:
    """``farm serve-packs`` on ``port`` while the block runs."""
    env = dict(os.environ) | {"FARM_PACK_SERVER_PORT": str(port), "FARM_PACK_TOKEN": TOKEN}
    argv = [sys.executable, "-c", "from trainfarm.cli.app import main; main()", "serve-packs"]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def up() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        _wait(up, "farm serve-packs")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def _follow(versions: list[str], bots: int, work: Path, *, remote: bool) -> dict[str, list[float]]:
    """Start ``bots`` bot processes, make PROMOTIONS promotions; latencies (seconds) by kind."""
    from trainfarm.shared.champions.publish import promote_version

    out, stop = work / "reloads.txt", work / "stop"
    out.write_text("")
    # Bots start serving a champion (their first load imports the model libraries: a start-up cost, not
    # a promotion's); the measured promotions alternate from the other version.
    promote_version(versions[1])
    procs = []
    try:
        for n in range(bots):
            argv = [sys.executable, "-m", "bench.bot_process", redis_url(), SYMBOL, TF, str(out), str(stop)]
            if remote:
                argv += [str(work / f"cache{n}"), TOKEN]
            quiet = subprocess.DEVNULL
            procs.append(subprocess.Popen(argv, cwd=REPO, stdout=quiet, stderr=quiet))
        _wait(lambda: out.read_text().count(" started\n") == bots, f"{bots} bots to start")
        _wait(lambda: out.read_text().count(f" {versions[1]} ") >= bots, f"{bots} bots to load the champion")
        latencies: dict[str, list[float]] = {"all": [], "first fetch": [], "cached": []}
        for i in range(PROMOTIONS):
            version = versions[i % 2]  # versions[1] is served at start
            called = time.time()
            promote_version(version)

            def served(version: str = version, after: float = called) -> list[float]:
                return [
                    float(parts[2])
                    for parts in (line.split() for line in out.read_text().splitlines())
                    if len(parts) == 3 and parts[1] == version and float(parts[2]) >= after
                ]

            _wait(lambda: len(served()) >= bots, f"promotion {i + 1} to reach {bots} bots")
            delays = [t - called for t in served()]
            latencies["all"] += delays
            latencies["first fetch" if i == 0 else "cached"] += delays
        return latencies
    finally:
        stop.touch()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def main() -> dict[str, object]:
    """Build the packs, follow the promotions in every case; print and return the figures."""
    figures: dict[str, object] = {}
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        root = Path(tmp)
        os.environ["FARM_HOME"] = str(root / "home")
        get_settings.cache_clear()
        try:
            open_store().import_file(SAMPLE_DIR / f"{SYMBOL}-5m.parquet", SYMBOL)
            console.print(f"bench promotion: building 2 packs of {SYMBOL} {TF} (default model sizes)")
            versions = _build_candidates(2)
            for remote in (False, True):
                port = _free_port()
                if remote:
                    os.environ["FARM_PACK_BASE_URL"] = f"http://127.0.0.1:{port}"
                    get_settings.cache_clear()
                with _pack_server(port) if remote else nullcontext():
                    for bots in (1, MANY):
                        work = root / f"{'http' if remote else 'file'}-{bots}"
                        work.mkdir()
                        latencies = _follow(versions, bots, work, remote=remote)
                        where = "pack server" if remote else "local packs"
                        for kind, values in latencies.items():
                            if remote or kind == "all":
                                stats = latency_ms(values, 1)
                                figures[f"{where}, {bots} bot(s), {kind}"] = stats
                                rows.append([where, bots, kind, *stats.values()])
        finally:
            os.environ.pop("FARM_PACK_BASE_URL", None)
            embedded_redis().stop()
            get_settings.cache_clear()
    print_table(
        f"promotion -> bot serving it ({PROMOTIONS} promotions; target p99 < 250 ms with 1 bot)",
        ["packs", "bots", "promotions", "p50 ms", "p99 ms", "max ms", "n"],
        rows,
    )
    return {"promotions": PROMOTIONS, "latency": figures, "target_p99_ms_one_bot": 250}


if __name__ == "__main__":
    main()
