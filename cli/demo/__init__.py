"""`farm demo`: the farm end to end on the bundled real sample.

Data (import, validate, gaps, resample, snapshots), then the training farm: two real Celery worker
processes on the farm's Redis, a retrain of every bundled symbol on every configured timeframe with live
progress, and a table of runs, versions and test metrics; a planted-signal market promoted to a live bot;
then the farm unattended (:mod:`trainfarm.cli.demo.unattended`): beat, triggers, a meta-only run, `farm
status`; and a replay on a market whose regime flips (:mod:`trainfarm.cli.demo.replay_step`). Everything it
starts, it stops.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from trainfarm.cli.demo.replay_step import SYMBOL as REPLAY_SYMBOL
from trainfarm.cli.demo.replay_step import run_replay_demo
from trainfarm.cli.demo.sample_data import SAMPLE_DIR, run_data_demo
from trainfarm.cli.demo.unattended import history_start, run_beat_demo
from trainfarm.cli.output import console, print_table
from trainfarm.cli.processes import WebProcess, WorkerProcess
from trainfarm.cli.registry_cmds import print_run_metrics
from trainfarm.cli.retrain_cmds import follow
from trainfarm.shared.champions.publish import gate_summary, promote_version, rollback
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import planted_signal_bars
from trainfarm.shared.errors import FarmError
from trainfarm.shared.evaluation.gate_report import GateReport
from trainfarm.shared.registry import PromotionReason, Registry, metric
from trainfarm.shared.settings import get_settings
from trainfarm.shared.ui_auth import ui_credentials
from trainfarm.shared.zoo.threads import available_cores
from trainfarm.workers.runs import Submitted

WORKERS = 2
#: The demo's planted-signal market: one year of 5-minute bars, trained on 1h.
SYNTHETIC, SYNTHETIC_TF, SYNTHETIC_BARS = "SYN_USDT", "1h", 365 * 288


def _worker_env() -> dict[str, str]:
    """The demo's settings, made explicit, so worker processes use the same home, Redis and config."""
    settings = get_settings()
    env = dict(os.environ)
    env["FARM_HOME"] = str(settings.home)
    config = settings.config_path()
    if config is not None:
        env["FARM_CONFIG_FILE"] = str(config)
    # Two workers share this machine: each gets its share of the cores, never more (no oversubscription).
    env["FARM_WORKER_THREADS"] = str(max(1, available_cores() // WORKERS))
    return env


def _gate_table(run_ids: list[str]) -> None:
    """Each run's version, its fate and the gate checks it failed."""
    registry = Registry.open()
    rows: list[list[object]] = []
    for run_id in run_ids:
        run = registry.runs.get(run_id)
        if run.version is None:
            rows.append([run.symbol, run.timeframe, "-", run.status.value, "-", run.error or ""])
            continue
        version = registry.versions.get(run.version)
        summary = gate_summary(version.gate_report)
        verdict = summary.describe().split(":")[0] or "-"
        rows.append(
            [
                run.symbol,
                run.timeframe,
                version.version,
                version.status.value,
                verdict,
                ", ".join(summary.failed) or "-",
            ]
        )
    print_table(
        "gates (every check stored with value, threshold, pass/fail: `farm models SYM TF --json`)",
        ["symbol", "tf", "version", "status", "gates", "failed checks"],
        rows,
    )


#: How much worse than the prior a final model may score on test and still count as "not worse" (the
#: tolerance of the quality targets in docs/QUALITY.md: test splits are samples, and 0.5% is their noise).
PRIOR_TOLERANCE = 0.005


def _versus_prior(run_ids: list[str]) -> None:
    """Per run: the chosen stacker and whether the final model scores no worse than the prior on test."""
    registry = Registry.open()
    worse: list[str] = []
    scored = 0
    for run_id in run_ids:
        run = registry.runs.get(run_id)
        if run.version is None:
            continue
        metrics = registry.versions.get(run.version).metrics
        final, prior = metric(metrics, ("meta", "logloss")), metric(metrics, ("prior", "logloss"))
        if final is None or prior is None:
            continue
        scored += 1
        if final > (1.0 + PRIOR_TOLERANCE) * prior:
            worse.append(f"{run.symbol} {run.timeframe} ({final:.4f} vs {prior:.4f})")
    verdict = "[green]none[/]" if not worse else f"[red]{', '.join(worse)}[/]"
    console.print(
        f"   final model vs the prior (the calibration split's class shares) on each test split: worse by "
        f"more than {PRIOR_TOLERANCE:.1%} in {len(worse)} of {scored} run(s): {verdict}"
    )


class _BotOutput:
    """Reads a bot subprocess's JSON lines on a thread, so the demo never blocks on it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.events: list[dict[str, object]] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    def reloads(self) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("event") == "reload"]

    def wait_reloads(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.reloads()) < count and time.monotonic() < deadline:
            time.sleep(0.2)


def _bot_demo(env: dict[str, str]) -> bool:
    """A planted-signal market: gates pass, the version is promoted, a live bot reloads it; then a second
    promotion and a rollback, each reaching the bot through Redis."""
    settings = get_settings()
    store = open_store()
    path = settings.home / "demo" / f"{SYNTHETIC}-5m.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    planted_signal_bars(SYNTHETIC_BARS, seed=1, start=history_start(datetime.now(UTC))).write_parquet(path)
    store.import_file(path, SYNTHETIC)
    console.print(
        f"[green]9.[/] a market with a planted, learnable signal ({SYNTHETIC}: a random walk plus a daily "
        "drift cycle), a live reference bot (`farm bot`) watching it, and three champion changes"
    )
    bot = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from trainfarm.cli.app import main; main()",
            "bot",
            SYNTHETIC,
            SYNTHETIC_TF,
            "--json",
            "--recheck",
            "1",
            "--interval",
            "2",
            "--replay",  # the sample ends in the past: score its newest bar as if it had just closed
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    output = _BotOutput(bot)
    ok = True
    try:
        for attempt in (1, 2):
            run_id = _submit(SYNTHETIC, SYNTHETIC_TF, f"demo promotion {attempt}").run_id
            ok &= not follow([run_id], timeout=1800)
            _gate_table([run_id])
            if attempt == 2:
                ok &= _override(run_id)
            output.wait_reloads(attempt, timeout=30)
        try:
            result = rollback(SYNTHETIC, SYNTHETIC_TF)
        except FarmError as exc:
            console.print(f"[red]   rollback impossible: {exc}[/]")
            return False
        console.print(
            f"   `farm rollback {SYNTHETIC} {SYNTHETIC_TF}`: {result.previous_version} -> {result.version}"
        )
        output.wait_reloads(3, timeout=30)
    finally:
        bot.terminate()
        try:
            bot.wait(timeout=15)
        except subprocess.TimeoutExpired:
            bot.kill()
    reloads = output.reloads()
    print_table(
        "what the bot saw (each reload: after verifying every file's sha256 and re-running the sample rows)",
        ["reload", "version", "previous", "seconds after promotion"],
        [
            [
                i + 1,
                e.get("version"),
                e.get("previous") or "-",
                round(float(str(e.get("seconds_since_promotion"))), 3),
            ]
            for i, e in enumerate(reloads)
        ],
    )
    scores = [e for e in output.events if e.get("event") == "score"]
    if scores:
        last = scores[-1]
        console.print(
            f"   last score by the bot: version {last['version']}, bar {last['bar']}: "
            f"p(down/neutral/up) = {float(str(last['p_down'])):.3f}/{float(str(last['p_neutral'])):.3f}/"
            f"{float(str(last['p_up'])):.3f}, signal {last['signal'] or 'none'}"
        )
    if len(reloads) < 3:
        console.print(f"[red]the bot reloaded {len(reloads)} time(s), expected 3[/]")
        return False
    return ok


def _override(run_id: str) -> bool:
    """The second retrain ran on the same bars a minute after the first: none of its test rows is new to
    the champion, so the gates keep that fresh champion (``champion_replaceable``, docs/ml.md#gates). An
    operator who wants the new version anyway promotes it by hand (`farm promote VERSION`, reason manual)."""
    registry = Registry.open()
    version = registry.runs.get(run_id).version
    if version is None:
        console.print("[red]   the second retrain wrote no version[/]")
        return False
    record = registry.versions.get(version)
    if record.status == "champion":
        return True
    if record.gate_report is not None:
        for check in GateReport.from_json(record.gate_report).failed():
            console.print(f"   the gates kept the champion: {check.name}: {check.detail}")
    result = promote_version(version, PromotionReason.MANUAL)
    console.print(f"   `farm promote {version}` (manual): {result.previous_version} -> {result.version}")
    return True


def _port(preferred: int) -> int:
    """``preferred`` when it is free on the loopback, else any free port (a dashboard may be running)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _submit(symbol: str, timeframe: str, reason: str) -> Submitted:
    # Celery loads when the demo runs, not for every `farm` command (the app imports this module).
    from trainfarm.workers.tasks import submit_retrain

    return submit_retrain(symbol, timeframe, reason)


def run_demo(sample_dir: Path = SAMPLE_DIR) -> bool:
    """Run the demo; returns False when something did not work as it should."""
    started_redis = run_data_demo(sample_dir)
    settings = get_settings()
    config = settings.load_config()
    logs = settings.home / "logs"
    env = _worker_env()
    workers = [WorkerProcess(f"demo{i + 1}", env, logs) for i in range(WORKERS)]
    port = _port(settings.web_port)
    dashboard = WebProcess("dashboard", env | {"FARM_WEB_PORT": str(port)}, logs)
    ok = True
    try:
        console.print(f"[green]6.[/] starting {WORKERS} Celery worker processes (queues cpu, meta, control)")
        t0 = time.perf_counter()
        for worker in workers:
            worker.start()
        console.print(f"   ready in {time.perf_counter() - t0:.1f}s; logs in {logs}")
        dashboard.start()
        creds = ui_credentials(settings)  # generated into the home on first use, kept for the next demo
        console.print(
            f"   the dashboard follows the demo live at [bold]http://{settings.web_address}:{port}[/] "
            f"(user [bold]{creds.user}[/], password [bold]{creds.password}[/], kept in {creds.source}; "
            "metrics at /metrics)"
        )
        # The real markets; the synthetic ones (left in the store by an earlier demo) have steps 9 and 11.
        symbols = [s for s in open_store().symbols() if s not in (SYNTHETIC, REPLAY_SYMBOL)]
        timeframes = [tf.value for tf in config.universe.timeframes]
        console.print(
            f"[green]7.[/] retraining {len(symbols)} symbol(s) x {len(timeframes)} timeframe(s): "
            "chord(8 base models) -> meta-learner -> calibration -> evaluation -> gates -> promote or reject"
        )
        t0 = time.perf_counter()
        submitted = [_submit(sym, tf, "demo") for sym in symbols for tf in timeframes]
        failed = follow([s.run_id for s in submitted], timeout=3600)
        ok = not failed
        console.print(f"   {len(submitted)} run(s) in {time.perf_counter() - t0:.0f}s")
        registry = Registry.open()
        print_run_metrics([registry.runs.get(s.run_id) for s in submitted])
        _versus_prior([s.run_id for s in submitted])
        console.print(
            "[green]8.[/] validation gates on the real data (a rejected candidate never touches the champion)"
        )
        _gate_table([s.run_id for s in submitted])
        ok &= _bot_demo(env)
        # Step 10 runs its own workers (with the unattended phase's config) and beat.
        for worker in workers:
            worker.stop()
        ok &= run_beat_demo(SYNTHETIC, SYNTHETIC_TF, env, logs)
        ok &= run_replay_demo(env, logs, f"http://{settings.web_address}:{port}")
    finally:
        for worker in workers:
            worker.stop()
        dashboard.stop()
        if started_redis:
            embedded_redis(settings).stop()
    console.rule("[bold]done")
    console.print(
        "Next: `farm up` (Redis, workers, beat and the dashboard in one command), `farm status`, "
        "`farm triggers`, `farm schedule`, `farm runs`, `farm models BTC/USDT 1h`, `farm bot SYN_USDT 1h`, "
        "`farm retrain BTC/USDT -t 1h --force --wait` (with `farm worker` running in another terminal)."
    )
    return ok


def demo() -> None:
    """Run the farm end to end on the bundled real sample (starts and stops its own workers)."""
    if not run_demo():
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `demo` to the main `farm` app."""
    app.command("demo")(demo)
