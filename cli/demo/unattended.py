"""`farm demo`, step 10: the farm unattended on short cadences; nobody types `farm retrain`.

The planted-signal market of step 9 becomes the whole universe, with demo cadences: beat syncs new bars
every 2 s, fires a meta-only retrain every 20 s and a full retrain every 40 s, checks the trigger policies
every 3 s and ingests the bots' outcomes every 2 s. Step 9's history ends a month before today; the month
since then arrives through the sync path, as on a real farm: a feeder plays freqtrade's `download-data`,
keeping a freqtrade data folder current (the month at once, then each bar as it closes), and beat's
``ingest-bars`` entry syncs it into the store. Until the first sync the market's bars are a month old, so
its retrains are held (``stale_data``). With the month in, the meta-only run has bars after the champion's
data to refit its stacker and calibration on (the champion's base models are kept, byte for byte). A bot
then reports losing outcomes; beat ingests them and the live win-rate policy fires a retrain. `farm
status` shows the workers, the market and the bot at the end. Everything started here is stopped. The
demo market's trigger cooldowns are cleared first (and are 30 s here), so a demo run again within the hour
fires its trigger again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

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

#: The unattended phase's config: one market synced from a freqtrade folder, second-scale cadences (the
#: rest: the defaults). The drift policies are off: the month of bars the first sync brings can read as a
#: feature shift, and their full retrain, started before the meta-only schedule's slot, would take that
#: run's place (a meta-only request merges into it) and leave no bars after the new champion's data for a
#: meta-only run to refit on, so the phase would wait for one in vain.
BEAT_CONFIG = """
[universe]
symbols = ["{symbol}"]
timeframes = ["{timeframe}"]
[data]
sync = "2s"
[data.sources.{symbol}]
kind = "folder"
folder = "{folder}"
[beat]
trigger_check = "3s"
outcome_ingest = "2s"
[timeframes.{timeframe}]
cadence = "40s"
meta_cadence = "20s"
[timeframes.{timeframe}.triggers]
cooldown = "30s"
feature_drift = false
calibration_drift = false
"""
#: Step 9's history ends this many days before today: the month of new 5m bars the sync brings (720 1h
#: bars and more; a meta-only run needs 400).
NEW_DAYS = 30
#: Days of bars in step 9's history.
HISTORY_DAYS = 365
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


def history_start(now: datetime) -> datetime:
    """Where step 9's history starts: the Monday (the weekday of the synthetic bars' default start, so the
    same seed gives the same market) whose HISTORY_DAYS end at least NEW_DAYS before ``now``."""
    latest = (now - timedelta(days=NEW_DAYS + HISTORY_DAYS)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return latest - timedelta(days=latest.weekday())


class _Feed:
    """Plays freqtrade's `download-data` for one pair: keeps ``folder``'s ``<SYMBOL>-5m.feather`` holding the
    bars after the stored ones that have closed by now (rewritten every second while it runs)."""

    def __init__(self, symbol: str, folder: Path) -> None:
        store = open_store()
        last = store.load(symbol).row(-1, named=True)
        start = last["date"] + timedelta(minutes=5)
        days = (datetime.now(UTC) - start).days + 2  # to now, and beyond for a demo that runs long
        self.bars = planted_signal_bars(days * 288, seed=2, start=start, price=float(last["close"]))
        self.path = folder / f"{symbol}-5m.feather"
        folder.mkdir(parents=True, exist_ok=True)
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-feed", daemon=True)

    def publish(self) -> int:
        """Write the bars closed by now (atomically); returns how many the file holds."""
        closed = self.bars.filter(pl.col("date") + timedelta(minutes=5) <= datetime.now(UTC))
        if closed.height != self.published:
            tmp = self.path.with_suffix(".tmp")
            closed.write_ipc(tmp)
            tmp.replace(self.path)
            self.published = closed.height
        return self.published

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.publish()

    def start(self) -> None:
        self.publish()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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


def _start_feed(symbol: str, timeframe: str, config_path: Path, folder: Path) -> _Feed:
    """Write the phase's config (syncing ``folder``) and start feeding the folder."""
    config_path.write_text(BEAT_CONFIG.format(symbol=symbol, timeframe=timeframe, folder=folder))
    feed = _Feed(symbol, folder)
    feed.start()
    console.print(
        f"[green]10.[/] the farm unattended: a freqtrade data folder ({folder}) receives the "
        f"{feed.published} 5m bars of {symbol} since its history ended, then each new bar as it closes; "
        f"beat syncs it every 2 s, fires a meta-only retrain every 20 s and a full one every 40 s "
        f"({config_path}), checks the triggers every 3 s"
    )
    return feed


def _wait_for_sync(
    symbol: str, before: int, feed: _Feed, processes: list[WorkerProcess | BeatProcess]
) -> bool:
    """Wait until beat's ingest-bars has stored every bar the feed published, and say so."""
    store = open_store()
    if not _wait(lambda: store.summary(symbol).rows >= before + feed.published, "the bar sync", processes):
        return False
    summary = store.summary(symbol)
    console.print(
        f"   ingest-bars synced {summary.rows - before} new bars of {symbol} from the folder; newest bar "
        f"{summary.last:%Y-%m-%d %H:%M} UTC"
    )
    return True


def run_beat_demo(symbol: str, timeframe: str, env: dict[str, str], logs: Path) -> bool:
    """Step 10 of the demo on ``symbol``/``timeframe`` (which has a champion); False when it went wrong."""
    from trainfarm.cli.status_cmds import status
    from trainfarm_client.live import LiveModel

    settings = get_settings()
    demo_dir = settings.home / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    config_path = demo_dir / "beat.toml"
    before = open_store().summary(symbol).rows
    feed = _start_feed(symbol, timeframe, config_path, demo_dir / "user_data" / "data" / "binance")
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
            ok = _wait_for_sync(symbol, before, feed, processes)
            ok = ok and _wait(lambda: runs.ended(_meta_run), "the meta-only run", processes)
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
            feed.stop()
    return ok
