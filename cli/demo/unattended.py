"""`farm demo`, step 10: the farm unattended on short cadences; nobody types `farm retrain`.

The planted-signal market of step 9 becomes the whole universe, with demo cadences: beat fires a meta-only
retrain every 20 s and a full retrain every 40 s, checks the trigger policies every 3 s and ingests the
bots' outcomes every 2 s. A month of new bars arrives first, so the meta-only run has bars after the
champion's data to refit its stacker and calibration on (the champion's base models are kept, byte for
byte). A bot then reports losing outcomes; beat ingests them and the live win-rate policy fires a retrain.
`farm status` shows the workers, the market and the bot at the end. Everything started here is stopped.
The demo market's trigger cooldowns are cleared first (and are 30 s here), so a demo run again within
the hour fires its trigger again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainfarm.cli.output import console, print_table
from trainfarm.cli.processes import BeatProcess, WorkerProcess
from trainfarm.shared.champions.publish import gate_summary
from trainfarm.shared.connections import redis_connection, redis_url
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import planted_signal_bars
from trainfarm.shared.packs.artifacts import MANIFEST
from trainfarm.shared.registry import Registry, RunRecord
from trainfarm.shared.settings import get_settings
from trainfarm.workers.checks.trigger_check import COOLDOWN_KEY

#: The unattended phase's config: one market, second-scale cadences (the rest: the defaults).
BEAT_CONFIG = """
[universe]
symbols = ["{symbol}"]
timeframes = ["{timeframe}"]
[beat]
trigger_check = "3s"
outcome_ingest = "2s"
[timeframes.{timeframe}]
cadence = "40s"
meta_cadence = "20s"
[timeframes.{timeframe}.triggers]
cooldown = "30s"
"""
#: New 5m bars that "arrive" before beat starts: a month, 720 1h bars (a meta-only run needs 400).
NEW_DAYS = 30
#: Losing outcomes the bot reports: the live win-rate policy's minimum.
LOSSES = 20
#: Deadlines against hangs (each phase normally takes well under a minute).
PHASE_TIMEOUT_S = 420.0


@contextmanager
def farm_config(path: Path) -> Iterator[None]:
    """This process reads ``path`` as its farm config while the block runs (workers get it by env)."""
    from trainfarm.workers.celery_app import rebind

    before = os.environ.get("FARM_CONFIG_FILE")
    os.environ["FARM_CONFIG_FILE"] = str(path)
    get_settings.cache_clear()
    rebind()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FARM_CONFIG_FILE", None)
        else:
            os.environ["FARM_CONFIG_FILE"] = before
        get_settings.cache_clear()
        rebind()


def _clear_cooldowns(symbol: str, timeframe: str) -> None:
    """Forget the demo market's trigger cooldowns: a demo run again within the hour starts afresh."""
    with redis_connection() as client:
        pattern = COOLDOWN_KEY.format(symbol=symbol, timeframe=timeframe, policy="*")
        for key in client.scan_iter(match=pattern, count=100):
            client.delete(key)


def _new_bars(symbol: str, path: Path) -> int:
    """A month of planted-signal bars continuing the stored ones; returns how many were imported."""
    store = open_store()
    stored = store.load(symbol)
    last = stored.row(-1, named=True)
    bars = planted_signal_bars(
        NEW_DAYS * 288, seed=2, start=last["date"] + timedelta(minutes=5), price=float(last["close"])
    )
    bars.write_parquet(path)
    return store.import_file(path, symbol).rows_added


def _wait(check: Callable[[], bool], what: str, processes: list[WorkerProcess | BeatProcess]) -> bool:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return True
        dead = [p.name for p in processes if not p.alive()]
        if dead:
            console.print(f"[red]   {', '.join(dead)} exited while waiting for {what}[/]")
            return False
        time.sleep(0.5)
    console.print(f"[red]   timed out waiting for {what}[/]")
    return False


def _champion(registry: Registry, symbol: str, timeframe: str) -> str | None:
    found = registry.champions.get(symbol, timeframe)
    return found.version if found else None


def _fate(registry: Registry, run: RunRecord) -> str:
    if run.version is None:
        return run.error or run.status.value
    version = registry.versions.get(run.version)
    if version.status == "candidate":
        return "candidate (gates deciding)"
    if version.gate_report and version.gate_report.get("passed") is True:
        return f"{version.status}: passed every gate"
    failed = ", ".join(gate_summary(version.gate_report).failed) or "-"
    return f"{version.status}: failed {failed}"


class _Runs:
    """The runs of one market started after the phase began (none of them typed by a person)."""

    def __init__(self, registry: Registry, symbol: str, timeframe: str) -> None:
        self.registry, self.symbol, self.timeframe = registry, symbol, timeframe
        before = registry.runs.newest(symbol, timeframe, limit=1)
        self.since = before[0].created_at if before else None

    def all(self) -> list[RunRecord]:
        found = self.registry.runs.newest(self.symbol, self.timeframe)
        return [r for r in found if self.since is None or r.created_at > self.since]

    def ended(self, pick: Callable[[RunRecord], bool]) -> bool:
        return any(pick(r) and r.status.terminal for r in self.all())

    def settled(self) -> bool:
        """Every ended run's version has its gates' verdict (promotion follows the run's end)."""
        get = self.registry.versions.get
        return all(r.version is None or get(r.version).status != "candidate" for r in self.all())

    def show(self) -> None:
        rows = [
            [r.id[:8], r.kind, " | ".join(r.reasons), r.status.value, _fate(self.registry, r)]
            for r in reversed(self.all())
            if r.status.terminal
        ]
        print_table(
            "runs that beat and the triggers started (none typed by a person)",
            ["run", "kind", "reasons", "status", "version"],
            rows,
        )


def _describe_meta(registry: Registry, run: RunRecord) -> None:
    """What the meta-only run refit, and that its base models are the champion's own files."""
    if run.version is None:
        console.print(f"   meta-only run {run.id[:8]} {run.status.value}: {run.error}")
        return
    manifest = json.loads((Path(registry.versions.get(run.version).path) / MANIFEST).read_text())
    deployed = manifest["data"]["deployed"]
    console.print(
        f"   meta-only run {run.id[:8]}: stacker '{manifest['stacker']['chosen']}' and calibration refit on "
        f"{deployed['rows']} {manifest['timeframe']} bars after {deployed['base_models_from']}'s data; "
        f"its {len(manifest['base_models'])} base models are that champion's files (same sha256)"
    )


def _meta_run(run: RunRecord) -> bool:
    return run.kind == "meta"


def _scheduled_full(run: RunRecord) -> bool:
    return run.kind == "full" and any("schedule" in reason for reason in run.reasons)


def _triggered(run: RunRecord) -> bool:
    return "trigger:live_win_rate" in run.reasons


def run_beat_demo(symbol: str, timeframe: str, env: dict[str, str], logs: Path) -> bool:
    """Step 10 of the demo on ``symbol``/``timeframe`` (which has a champion); False when it went wrong."""
    from trainfarm.cli.status_cmds import status
    from trainfarm_client.live import LiveModel

    settings = get_settings()
    demo_dir = settings.home / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    config_path = demo_dir / "beat.toml"
    config_path.write_text(BEAT_CONFIG.format(symbol=symbol, timeframe=timeframe))
    added = _new_bars(symbol, demo_dir / f"{symbol}-5m-new.parquet")
    console.print(
        f"[green]10.[/] the farm unattended: {added} new 5m bars of {symbol} arrive; beat fires a meta-only "
        f"retrain every 20 s and a full one every 40 s ({config_path}), checks the triggers every 3 s"
    )
    _clear_cooldowns(symbol, timeframe)
    env = env | {"FARM_CONFIG_FILE": str(config_path)}
    processes: list[WorkerProcess | BeatProcess] = [
        *(WorkerProcess(f"unattended{i + 1}", env, logs) for i in range(2)),
        BeatProcess("beat", env, logs),
    ]
    with farm_config(config_path):
        registry = Registry.open()
        runs = _Runs(registry, symbol, timeframe)
        bot = LiveModel(
            symbol,
            timeframe,
            redis_url=redis_url(),
            recheck_interval=1.0,
            heartbeat_interval=2.0,
            bot_id="demo-bot",
        )
        anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        reported: set[str] = set()

        def lose() -> bool:
            """Report LOSSES losing outcomes of the version the bot serves (once per version), one per bar."""
            version = bot.version
            if version is not None and version not in reported:
                reported.add(version)
                for i in range(LOSSES):
                    bar = anchor - timedelta(hours=i)
                    bot.report_outcome(signal="up", probability=0.6, at=bar, realised_return=-0.01)
            return runs.ended(_triggered)

        try:
            for process in processes:
                process.start()
            bot.start()
            ok = _wait(lambda: runs.ended(_meta_run), "the meta-only run", processes)
            if ok:
                _describe_meta(registry, next(r for r in runs.all() if _meta_run(r)))
            ok = ok and _wait(lambda: runs.ended(_scheduled_full), "a scheduled full run", processes)
            if ok:
                console.print(f"   `demo-bot` reports {LOSSES} losing outcomes of the version it serves")
                ok = _wait(lose, "the retrain triggered by the live win rate", processes)
            ok = ok and _wait(runs.settled, "the gates' verdicts", processes)
            runs.show()
            serving = lambda: bot.version == _champion(registry, symbol, timeframe)  # noqa: E731
            _wait(serving, "the bot serving the champion", processes)
            console.print("   `farm status`:")
            status(json_out=False, timeout=2.0)
        finally:
            bot.close()
            for process in reversed(processes):
                process.stop()
    return ok
