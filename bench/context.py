"""`python -m bench context` (part of `make bench-quality`): what context features do, measured.

ETH and SOL from ``../shared/data`` are retrained on every timeframe twice, through the farm's own stages
(as ``bench quality`` does): with the core set alone (the default config), and with core + context, the
context reading every higher timeframe of the market among 1h, 12h and 24h and BTC at the same bar size
(``[timeframes.<tf>.features] sets = ["core", "context"]``). Per market and variant: the test log-loss of
the prior and of the final model, their relative difference, the gates' bound and directional bound, and
the verdict. Both variants of a market see the same bars, cut where the market's and BTC's files both
end, and the same training windows (the context's longer warm-up can only remove a window's first rows,
and a missing BTC bar the row at it), so the difference is the features'. Written into
docs/QUALITY.md (the ``<!-- bench context -->`` section, which ``bench quality`` keeps) and
docs/context.json; the replay's side of the comparison is ``python -m bench replay-context``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from bench.bars import SHARED_DATA
from bench.gates import write_marked
from bench.quality import REPORT, TIMEFRAMES, Row, _one
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import dispose_engine
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo.threads import available_cores

SYMBOLS = ("ETH_USDT", "SOL_USDT")
LEADER = "BTC_USDT"
HIGHER = ("1h", "12h", "24h")
FIGURES = REPORT.parent / "context.json"


def context_config(timeframes: tuple[str, ...] = TIMEFRAMES) -> str:
    """farm.toml giving each timeframe core + context: its higher timeframes and the leading market."""
    minutes = {"5m": 5, "1h": 60, "12h": 720, "24h": 1440}
    blocks = []
    for tf in timeframes:
        higher = [h for h in HIGHER if minutes[h] > minutes[tf]]
        blocks.append(
            f'[timeframes.{tf}.features]\nsets = ["core", "context"]\n'
            f"timeframes = {json.dumps(higher)}\nmarkets = {json.dumps([LEADER])}\n"
        )
    return "\n".join(blocks)


def _variant(symbol: str, variant: str, root: Path, threads: int, rng: np.random.Generator) -> list[Row]:
    home = root / f"{symbol}-{variant}"
    home.mkdir(parents=True)
    os.environ["FARM_HOME"] = str(home)
    if variant == "context":
        config = home / "farm.toml"
        config.write_text(context_config())
        os.environ["FARM_CONFIG_FILE"] = str(config)
    else:
        os.environ.pop("FARM_CONFIG_FILE", None)
    get_settings.cache_clear()
    rows = []
    try:
        store = open_store()
        # Both variants end where both files do: a market's rows past its leader's last bar have no
        # context, and a core run that kept them would be judged on another test split.
        files = {name: pl.read_parquet(SHARED_DATA / f"{name}-5m.parquet") for name in (symbol, LEADER)}
        end = min(bars["date"].max() for bars in files.values())  # type: ignore[type-var]
        for name, bars in files.items():
            cut = home / f"{name}-5m.parquet"
            bars.filter(pl.col("date") <= end).write_parquet(cut)
            store.import_file(cut, name)
        for timeframe in TIMEFRAMES:
            row = _one(symbol, timeframe, threads, rng)
            console.print(
                f"{row.market} {variant}: final {row.final:.4f} prior {row.prior:.4f} ({row.seconds} s)"
            )
            rows.append(row)
    finally:
        embedded_redis().stop()
        dispose_engine(get_settings().database)
    return rows


def _gain(row: Row) -> float:
    return (row.prior - row.final) / row.prior


def _bound(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def section(results: dict[str, dict[str, list[Row]]]) -> str:
    lines = [
        "## Context features: core against core + context (`python -m bench context`)",
        "",
        "ETH and SOL retrained twice on the same bars and training windows: the core set alone, and core + "
        "context "
        "(every higher timeframe of the market among 1h/12h/24h, and BTC at the same bar size). `gain` is "
        "the final model's relative log-loss improvement over the prior on the test split (higher is "
        "better); `bound` and `direction bound` are the gates' lower bounds (docs/ml.md#gates).",
        "",
        "| market | prior | core final | core gain | context final | context gain | core bound | "
        "context bound | core direction bound | context direction bound | gates core / context |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    better = 0
    total = 0
    for variants in results.values():
        for core, context in zip(variants["core"], variants["context"], strict=True):
            total += 1
            better += context.final < core.final
            lines.append(
                f"| {core.market} | {core.prior:.4f} | {core.final:.4f} | {_gain(core):+.2%} | "
                f"{context.final:.4f} | {_gain(context):+.2%} | {_bound(core.bound)} | "
                f"{_bound(context.bound)} | {_bound(core.direction_bound)} | "
                f"{_bound(context.direction_bound)} | {core.gates} / {context.gates} |"
            )
    lines += [
        "",
        f"Context gave a lower test log-loss than core on {better} of {total} markets. One split per market: "
        "a difference smaller than the bounds' spread is not evidence either way. The replay scores both "
        "over two years, bar by bar (`python -m bench replay-context`, its section of docs/REPLAY.md).",
    ]
    return "\n".join(lines)


def main() -> None:
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"bench context needs the real data in {SHARED_DATA}")
    threads = max(1, available_cores())
    results: dict[str, dict[str, list[Row]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-context-") as tmp:
        for symbol in SYMBOLS:
            rng = np.random.default_rng(7)
            results[symbol] = {
                variant: _variant(symbol, variant, Path(tmp), threads, rng) for variant in ("core", "context")
            }
    print_table(
        "core against core + context (test log-loss)",
        ["market", "prior", "core", "context", "gates core", "gates context"],
        [
            [c.market, c.prior, c.final, x.final, c.gates, x.gates]
            for variants in results.values()
            for c, x in zip(variants["core"], variants["context"], strict=True)
        ],
    )
    write_marked("context", section(results))
    figures = {s: {v: [asdict(r) for r in rows] for v, rows in vs.items()} for s, vs in results.items()}
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"written: {FIGURES} and {REPORT}")
