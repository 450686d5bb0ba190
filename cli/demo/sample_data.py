"""The data half of `farm demo`: import, check, resample and snapshot the bundled real sample (no Celery)."""

from __future__ import annotations

import time
from pathlib import Path

from trainfarm.cli.dataset_cmds import SNAPSHOT_COLUMNS, snapshot_row
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis, ping, redact_url, redis_url
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import snapshot_from_store
from trainfarm.shared.errors import DataError
from trainfarm.shared.settings import get_settings

#: The compact real sample, shipped as package data (see sample/README.md beside this file), so an installed
#: wheel finds it as a checkout does.
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


def run_data_demo(sample_dir: Path = SAMPLE_DIR) -> bool:
    """Import the sample, validate and check it, resample it, and build every dataset snapshot.

    Returns True when this call started the embedded Redis (the caller stops it at the end).
    """
    settings = get_settings()
    config = settings.load_config()
    files = sorted(sample_dir.glob("*-5m.parquet"))
    if not files:
        raise DataError("no *-5m.parquet sample files found", file=str(sample_dir))
    console.rule("[bold]trainfarm demo")
    console.print(f"home {settings.home}   config {settings.config_path() or '(built-in defaults)'}")

    server = embedded_redis(settings)
    started_here = not settings.redis_url and not server.is_running()
    url = redis_url(settings)
    mode = "configured" if settings.redis_url else "embedded"
    console.print(
        f"[green]1.[/] {mode} Redis at {redact_url(url)}, round trip {ping(settings) * 1000:.2f} ms"
    )

    store = open_store()
    console.print(f"[green]2.[/] importing {len(files)} real sample file(s) into {settings.store_dir}")
    for path in files:
        symbol = path.name.split("-")[0]
        t0 = time.perf_counter()
        report = store.import_file(path, symbol)
        console.print(
            f"   {report.symbol}: {report.rows_in_file:,} bars validated and stored "
            f"({report.rows_added:,} new) in {time.perf_counter() - t0:.2f}s"
        )

    console.print("[green]3.[/] checking the store (validation rules re-run, gaps listed, never filled)")
    for symbol in store.symbols():
        checked = store.check(symbol)
        gaps = ", ".join(f"{g.missing} bars before {g.before:%Y-%m-%d %H:%M}" for g in checked.gaps)
        console.print(f"   {symbol}: {checked.summary.rows:,} bars, gaps: {gaps or 'none'}")

    console.print("[green]4.[/] resampling 5m bars (incomplete first/last bars dropped)")
    rows = []
    for symbol in store.symbols():
        bars = store.load(symbol)
        counts = [resample(bars, tf).height for tf in config.universe.timeframes]
        rows.append([symbol, *counts])
    print_table("bars per timeframe", ["symbol", *[tf.value for tf in config.universe.timeframes]], rows)

    console.print("[green]5.[/] building dataset snapshots (causal features, labels, purged splits)")
    snapshots = []
    for symbol in store.symbols():
        for tf in config.universe.timeframes:
            snapshots.append(
                snapshot_from_store(
                    store, symbol=symbol, timeframe=tf, config=config, root=settings.datasets_dir
                )
            )
    print_table("dataset snapshots", SNAPSHOT_COLUMNS, [snapshot_row(s) for s in snapshots])
    console.print(f"   written under {settings.datasets_dir} (content-hashed Parquet + JSON sidecar)")

    return started_here
