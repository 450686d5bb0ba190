"""`make bench-replay`: the farm replayed over the last two years of BTC, ETH and SOL (docs/REPLAY.md).

Per market, one replay (docs/replay.md): 1h with weekly retrains, 12h and 24h with monthly ones, over the
last two years of each file in ../shared/data, the config's training windows (a window longer than the
history before a point takes what there is). One market at a time, its points all sent to the workers
together; each finished market is kept in docs/replay.json at once, so that a run cut short goes on later
(the whole takes hours on 2 cores). Then one
market is replayed again twice, alone: through the workers, and point by point in this process (each
point's stages one after another with every core), for the fan-out's speed-up, measured in one run.
Writes docs/replay.json and docs/REPLAY.md, whose answer is computed from the figures, whatever they are.

``python -m bench replay-quick``: one market, 24h, three monthly points (a smoke run of the whole path).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.bars import SHARED_DATA, bar_file
from bench.replay_report import write_report
from bench.sections import write_section
from trainfarm.cli.output import console
from trainfarm.shared.connections import embedded_redis, redis_connection
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import ReplayRecord, dispose_engine
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import parse_duration
from trainfarm.shared.zoo.threads import available_cores

SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT")
#: The markets ``replay-context`` replays with core + context features (BTC is their leading market).
CONTEXT_SYMBOLS = ("ETH_USDT", "SOL_USDT")
#: (timeframe, cadence) of each symbol's replays.
PLANS = (("1h", "7d"), ("12h", "30d"), ("24h", "30d"))
YEARS = 2
#: The market replayed again, alone, through the workers and point by point.
SPEEDUP = ("SOL_USDT", "24h", "30d")
DOCS = Path(__file__).resolve().parents[1] / "docs"


@dataclass(frozen=True)
class Market:
    """One replay to run: a market, its cadence, and the period (days before the file's end)."""

    symbol: str
    timeframe: str
    cadence: str
    days: int = 365 * YEARS

    @property
    def name(self) -> str:
        return f"{self.symbol} {self.timeframe}"


Submit = Callable[[Any], object]


def _replay(market: Market, submit: Submit, in_flight: Callable[[str], bool]) -> ReplayRecord:
    from trainfarm.workers.replay_runs import create_replay, drive

    last = open_store().summary(market.symbol).last
    end = last - timedelta(days=1)  # the newest bars' labels need their horizon
    start = end - timedelta(days=market.days)
    replay = create_replay(
        market.symbol, market.timeframe, start=start, end=end, cadence=parse_duration(market.cadence)
    )
    started = time.perf_counter()
    finished = drive(replay.id, submit=submit, in_flight=in_flight, poll_s=2.0)
    points = (finished.result or {}).get("retrain_points")
    console.print(f"{market.name}: {points} points {finished.status} in {time.perf_counter() - started:.0f}s")
    return finished


def _farm(markets: Sequence[Market]) -> tuple[list[ReplayRecord], float]:
    """Every market's replay through the workers at once; the records and the wall time."""
    from trainfarm.workers.replay_tasks import submit_point
    from trainfarm.workers.runs import broker_holds_run

    started = time.perf_counter()
    with redis_connection(decode_responses=False) as client, ThreadPoolExecutor(len(markets)) as pool:

        def in_flight(point: str) -> bool:
            return broker_holds_run(client, point)

        done = list(pool.map(lambda m: _replay(m, submit_point, in_flight), markets))
    return done, time.perf_counter() - started


def _here(market: Market, threads: int) -> tuple[ReplayRecord, float]:
    """The market's replay trained point by point in this process; the record and the wall time."""
    from trainfarm.workers.replay_points import train_here

    started = time.perf_counter()
    record = _replay(market, lambda job: train_here(job, threads=threads), lambda _point: False)
    return record, time.perf_counter() - started


#: The code a replay's figures come from: a change to any of it makes the stored markets stale.
CODE = ("shared", "workers", "trainfarm_client")
REPO = Path(__file__).resolve().parents[1]


def code_sha256() -> str:
    """sha256 over the replay's code (every ``*.py`` of :data:`CODE`, by path and content)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for folder in CODE for p in (REPO / folder).rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _key(symbols: Sequence[str]) -> dict[str, object]:
    """What a stored market's figures are valid for: the config, the data files, the code."""
    from trainfarm.shared.atomicio import sha256_file

    return {
        "config_hash": get_settings().load_config().config_hash(),
        "data_sha256": {s: sha256_file(bar_file(s)) for s in sorted(symbols)},
        "code_sha256": code_sha256(),
    }


def _stored(path: Path, key: Mapping[str, object]) -> dict[str, Any]:
    """The figures of an earlier, interrupted `make bench-replay` with the same key (else none)."""
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    return stored if isinstance(stored, dict) and stored.get("key") == key else {}


def _save(path: Path, figures: Mapping[str, Any]) -> None:
    from trainfarm.shared.atomicio import atomic_write_text

    atomic_write_text(path, json.dumps(figures, indent=1) + "\n")


def _configure(home: Path, markets: Sequence[Market], *, context: bool) -> list[str]:
    """Point the settings at ``home`` (with the context config when asked); the symbols to import."""
    os.environ["FARM_HOME"] = str(home)
    os.environ.pop("FARM_CONFIG_FILE", None)
    symbols = {m.symbol for m in markets}
    if context:
        from bench.context import LEADER, context_config

        config_file = home / "farm.toml"
        config_file.write_text(context_config(tuple(tf for tf, _ in PLANS)))
        os.environ["FARM_CONFIG_FILE"] = str(config_file)
        symbols.add(LEADER)
    get_settings.cache_clear()
    return sorted(symbols)


def main(*, quick: bool = False, context: bool = False) -> None:
    """Run the replays and write docs/REPLAY.md and docs/replay.json (``quick``: a smoke run, no writes;
    ``context``: ETH and SOL with core + context features, into docs/replay-context.json and a section of
    REPLAY.md that compares them with the core replay, :func:`context_section`).

    All of it takes hours on 2 cores (1h replays dominate: about half a minute per point on two cores).
    The markets run one after another, the cheap timeframes first, and each finished one is kept in
    docs/replay.json at once (with the config hash, the data files' sha256 and the sha256 of the code it
    is valid for): a run cut short goes on where it stopped the next time. REPLAY.md is written once every
    market and the speed-up are in.
    """
    from trainfarm.cli.processes import WorkerProcess
    from trainfarm.workers.celery_app import rebind

    if not quick and not SHARED_DATA.is_dir():
        raise SystemExit(f"bench replay needs the real data in {SHARED_DATA}")
    cores = max(1, available_cores())
    symbols = CONTEXT_SYMBOLS if context else SYMBOLS
    markets = (
        [Market("BTC_USDT", "24h", "30d", days=90)]
        if quick
        else [Market(s, tf, cadence) for tf, cadence in reversed(PLANS) for s in symbols]
    )
    speedup = markets[0] if quick else Market(*SPEEDUP)
    out = DOCS / ("replay-context.json" if context else "replay.json")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        imported = _configure(Path(tmp), markets, context=context)
        rebind()
        key = _key(imported)
        figures: dict[str, Any] = {} if quick else _stored(out, key)
        figures |= {"key": key, "cores": cores, "quick": quick}
        done: dict[str, Any] = dict(figures.get("by_market") or {})
        for symbol in imported:
            open_store().import_file(bar_file(symbol), symbol)
        settings = get_settings()
        worker = WorkerProcess("bench-replay", dict(os.environ), settings.home / "logs", concurrency=cores)
        try:
            worker.start()
            # A market at a time (its points fan out over the workers), kept as soon as it is done.
            for market in markets:
                if market.name in done:
                    continue
                (replay,), seconds = _farm([market])
                done[market.name] = {
                    "market": market.name,
                    "cadence": market.cadence,
                    "replay": replay.to_json(),
                    "seconds": round(seconds, 1),
                }
                figures["by_market"] = done
                if not quick:
                    _save(out, figures)
            if "speedup" not in figures and not context:
                (alone,), alone_s = _farm([speedup])
                worker.stop()
                _, here_s = _here(speedup, cores)
                figures["speedup"] = {
                    "market": speedup.name,
                    "cadence": speedup.cadence,
                    "points": int((alone.result or {}).get("retrain_points", 0)),
                    "farm_seconds": round(alone_s, 1),
                    "point_by_point_seconds": round(here_s, 1),
                    "ratio": round(here_s / alone_s, 2) if alone_s > 0 else None,
                }
        finally:
            worker.stop()
            embedded_redis().stop()
            dispose_engine(settings.database)
    figures["markets"] = [done[m.name] for m in markets]
    figures["wall_seconds"] = round(sum(m["seconds"] for m in figures["markets"]), 1)
    if quick:
        console.print(json.dumps(figures["speedup"]))
        console.print("quick run: docs/REPLAY.md and docs/replay.json are left as they are")
        return
    _save(out, figures)
    _report(figures, context=context)


def _report(figures: Mapping[str, Any], *, context: bool) -> None:
    if context:
        core = json.loads((DOCS / "replay.json").read_text())
        write_section(DOCS / "REPLAY.md", "context", context_section(core, figures))
    else:
        write_report(figures, DOCS / "REPLAY.md")
    console.print(f"written: {DOCS / 'REPLAY.md'}")


def context_section(core: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The gated policy with core features against core + context, per market.

    The two replays of a market score different bars: a context replay scores no bar whose context series
    (BTC, a higher bar size) is missing there. So they are compared by ``vs prior``, each replay's gated
    log-loss minus its own prior's on its own bars, never by the raw log-loss.
    """
    before = {m["market"]: m for m in core.get("markets", [])}
    lines = [
        "## Context features in the replay (`python -m bench replay-context`)",
        "",
        "ETH and SOL replayed again with core + context features (every higher timeframe of the market "
        "among 1h/12h/24h, and BTC at the same bar size), the same retrain points and gates. The gated "
        "policy's log-loss out of sample, bar by bar, and its difference from the prior on the same bars "
        "(negative: better). A context replay scores no bar whose context series is missing there (after "
        "the end of BTC's file, in a gap of a higher bar size), so the two replays' bars differ: compare "
        "`vs prior`, not the log-loss itself.",
        "",
        "| market | core: bars | gated | vs prior | Sharpe | promotions | context: bars | gated | vs prior | "
        "Sharpe | promotions |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    better = worse = total = 0
    for market in context.get("markets", []):
        name = market["market"]
        new = market["replay"]["result"]["policies"]["gated"]
        result = (before.get(name) or {}).get("replay", {}).get("result") or {}
        old = result.get("policies", {}).get("gated")
        if old is None:
            lines.append(
                f"| {name} | no core replay | | | | | {new['scored_bars']} | {new['logloss']:.4f} | | | |"
            )
            continue
        total += 1
        better += new["logloss_vs_prior"] < old["logloss_vs_prior"]
        worse += new["logloss_vs_prior"] > old["logloss_vs_prior"]
        lines.append(
            f"| {name} | {old['scored_bars']} | {old['logloss']:.4f} | {old['logloss_vs_prior']:+.4f} | "
            f"{old['sharpe']:.2f} | {old['promotions']} | {new['scored_bars']} | {new['logloss']:.4f} | "
            f"{new['logloss_vs_prior']:+.4f} | {new['sharpe']:.2f} | {new['promotions']} |"
        )
    lines += [
        "",
        f"Against the prior, the gated policy with context did better than with the core set on {better} of "
        f"{total} markets and worse on {worse}; on the other {total - better - worse} both scored exactly as "
        "the prior (no candidate passed the gates in either replay).",
    ]
    return "\n".join(lines)
