"""The farm unattended: beat, two workers and a bot, second-scale cadences, nobody typing `farm retrain`.

A planted-signal market (SYN_USDT 1h, 120 days: the gate-property tests' size, which passes the gates) is
the whole universe. Beat's first fire of the full-retrain entry (and the trigger check finding no
champion) starts a run that promotes and reaches the bot. The bot then reports losing outcomes; beat
ingests them, the live win-rate policy fires, and the triggered run promotes again and reaches the bot.
`farm status --json` shows the champion served by the bot. Every wait is bounded and every process stopped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.waiting import wait_until
from trainfarm.cli.app import app as cli
from trainfarm.cli.processes import BeatProcess, ChildProcess, WorkerProcess
from trainfarm.shared.connections import embedded_redis, redis_url
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import planted_signal_bars
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import rebind
from trainfarm_client.live import LiveModel

pytestmark = pytest.mark.integration

SYMBOL, TF = "SYN_USDT", "1h"
RUN_TIMEOUT_S = 420.0  # deadlines against hangs, not speed requirements
CONFIG = f"""
[universe]
symbols = ["{SYMBOL}"]
timeframes = ["{TF}"]
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
[beat]
trigger_check = "2s"
outcome_ingest = "1s"
[timeframes.1h]
training_window = "120d"
cadence = "15s"
"""


@dataclass
class Unattended:
    """A farm home run by beat and two workers (its processes), and the bot the test starts."""

    home: Path
    processes: list[ChildProcess]
    bot: LiveModel | None = None


@pytest.fixture
def unattended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Unattended]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "farm.toml").write_text(CONFIG)
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    env_vars = {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(home / "farm.toml")}
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    rebind()
    bars = tmp_path / f"{SYMBOL}-5m.parquet"
    planted_signal_bars(120 * 288, 201, strength=0.25).write_parquet(bars)
    open_store().import_file(bars, SYMBOL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | env_vars
    logs = tmp_path / "logs"
    state = Unattended(home, [WorkerProcess(f"u{uuid.uuid4().hex[:4]}{i}", env, logs) for i in range(2)])
    state.processes.append(BeatProcess("beat", env, logs))
    try:
        for process in state.processes:
            process.start()
        yield state
    finally:
        if state.bot is not None:
            state.bot.close()
        for process in state.processes:
            process.stop()
        embedded_redis().stop()
        get_settings.cache_clear()


def _logs(unattended: Unattended) -> str:
    return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in unattended.processes)


def _first_champion(registry: Registry, unattended: Unattended) -> str:
    """The market's champion once the first run is settled (recorded as succeeded, then promoted: waited
    for, bounded); what the gates said when none comes."""

    def version() -> str | None:
        found = registry.champions.get(SYMBOL, TF)
        return found.version if found else None

    try:
        wait_until(lambda: version() is not None, 60, "the first champion", every=0.25)
    except AssertionError:
        versions = [
            (v.version, v.status, (v.gate_report or {}).get("failed"))
            for v in registry.versions.of_market(SYMBOL, TF)
        ]
        pytest.fail(f"no champion after the scheduled run; versions {versions}\n{_logs(unattended)}")
    found = version()
    assert found is not None
    return found


def test_scheduled_and_triggered_runs_promote_and_reach_the_bot(unattended: Unattended) -> None:
    registry = Registry.open()

    def champion() -> str | None:
        found = registry.champions.get(SYMBOL, TF)
        return found.version if found else None

    def scheduled() -> list[str]:
        return [r.id for r in registry.runs.newest(SYMBOL, TF) if "schedule" in r.reasons]

    def ended(run_id: str) -> bool:
        return registry.runs.get(run_id).status in ("succeeded", "failed")

    # The trigger check finds no champion at once; the full-retrain entry first fires one cadence after
    # beat starts (Celery's interval schedules count from then): it merges into a run under way or starts
    # the next one, never a second at the same time.
    try:
        wait_until(lambda: bool(scheduled()) and ended(scheduled()[0]), RUN_TIMEOUT_S, "the scheduled run")
    except AssertionError:
        runs = [(r.id, r.reasons, r.status, r.error) for r in registry.runs.newest()]
        pytest.fail(f"no scheduled run finished; runs {runs}\n{_logs(unattended)}")
    first = registry.runs.get(scheduled()[0])
    assert first.status == "succeeded" and first.version is not None, (first.error, _logs(unattended))
    first_version = _first_champion(registry, unattended)
    bot = LiveModel(SYMBOL, TF, redis_url=redis_url(), recheck_interval=1.0, heartbeat_interval=1.0)
    unattended.bot = bot
    bot.start()
    wait_until(lambda: bot.version == first_version, 120, "the bot serving the first champion")

    # The champion loses live: for whichever version the bot serves (scheduled runs keep promoting), it
    # reports 20 losing outcomes (the live win-rate policy's minimum), one per bar.
    def triggered() -> list[str]:
        return [r.id for r in registry.runs.newest(SYMBOL, TF) if "trigger:live_win_rate" in r.reasons]

    start = first.created_at.replace(minute=0, second=0, microsecond=0)
    reported: set[str] = set()

    def lose_and_look() -> bool:
        version = bot.version
        if version is not None and version not in reported:
            reported.add(version)
            for i in range(20):
                bar = start + timedelta(hours=i)
                bot.report_outcome(signal="up", probability=0.6, at=bar, realised_return=-0.01)
        return bool(triggered())

    wait_until(lose_and_look, 180, "a run triggered by the live win rate")
    wait_until(lambda: ended(triggered()[0]), RUN_TIMEOUT_S, "the triggered run to finish")
    run = registry.runs.get(triggered()[0])
    assert run.status == "succeeded" and run.version is not None, (run.error, _logs(unattended))
    # The run ends when its version is registered; the gates' verdict (promotion or rejection) follows.
    version = run.version
    wait_until(lambda: registry.versions.get(version).status != "candidate", 120, "the gates' verdict")
    promoted = {p.to_version for p in registry.champions.history(SYMBOL, TF)}
    assert run.version in promoted  # the same planted signal passes the gates again

    def converged() -> bool:
        return bot.version is not None and bot.version == champion()

    wait_until(converged, 120, "the bot serving the current champion")

    # `farm status --json` shows the market's champion served by the bot (scheduled runs may promote
    # again meanwhile: read until one report has the bot caught up).
    seen: list[dict[str, object]] = []

    def status_shows_the_bot_serving_the_champion() -> bool:
        result = CliRunner().invoke(cli, ["status", "--json", "--timeout", "2"])
        assert result.exit_code == 0, result.output
        status = json.loads(result.stdout)
        seen.append(status)
        market = next(m for m in status["markets"] if m["symbol"] == SYMBOL)
        served = [b for b in status["bots"] if b["bot_id"] == bot.bot_id]
        return (
            bool(served)
            and market["champion"] is not None
            and served[0]["version"] == market["champion"]
            and "lagging" not in served[0]["flags"]
            and len(status["workers"]) == 2
        )

    wait_until(status_shows_the_bot_serving_the_champion, 120, "farm status showing the bot on the champion")
