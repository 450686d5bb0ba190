"""`farm bot` in its own process against the farm's embedded Redis: promotions, rollback, a late start,
and a promotion whose nudge is lost (connections killed, server restarted).

Two real versions of BTC_USDT 12h are built once for the module (two training windows of the bundled
sample: two different models). Each test has its own farm home with the sample imported (the bot scores
the store's newest bars) and its own embedded Redis, always stopped afterwards; every bot process is
terminated (killed if it does not stop) and every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.bots import REACT_TIMEOUT_S, Bot
from tests.support.packs import PACK_SYMBOL, PACK_TF, Version
from tests.support.waiting import wait_until
from trainfarm.shared.champions.announce import announce, champion_record, dumps
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client
from trainfarm.shared.data.store import open_store
from trainfarm.shared.settings import FarmSettings
from trainfarm_client.contract import EVENTS_STREAM, PROMOTED, bot_key, champion_key, promoted_channel

pytestmark = pytest.mark.integration

SYMBOL, TF = PACK_SYMBOL, PACK_TF
RECHECK_S = 1.0
INTERVAL_S = 0.5
BOT_LIFETIME_S = 600  # --duration: a bot outlives no test run even if its teardown never came
# The timeouts below are deadlines against hangs, never speed requirements: how fast a bot reacts is
# printed here and measured by ``python -m bench``, not asserted.
START_TIMEOUT_S = 180.0  # a fresh interpreter importing the model libraries, then loading a pack


@dataclass(frozen=True)
class BotHome:
    """A farm home with the sample's bars imported, its embedded Redis, and a client on it."""

    home: Path
    env: dict[str, str]
    server: EmbeddedRedis
    client: redis.Redis


@pytest.fixture(scope="module")
def versions(btc_versions: list[Version]) -> list[Version]:
    """Two real versions (v1 < v2) of BTC_USDT 12h, trained on two windows of the sample (shared)."""
    return btc_versions[1:]


@pytest.fixture
def bot_home(farm_home: Path, settings: FarmSettings, sample_dir: Path) -> Iterator[BotHome]:
    open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", SYMBOL)
    server = embedded_redis(settings)
    server.ensure_running()
    client = redis_client(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | {"FARM_HOME": str(farm_home)}
    try:
        yield BotHome(farm_home, env, server, client)
    finally:
        client.close()
        server.stop()


@pytest.fixture
def start_bot(bot_home: BotHome, tmp_path: Path) -> Iterator[Callable[[], Bot]]:
    """``start_bot()``: a `farm bot BTC/USDT 12h --json` process; all are stopped after the test."""
    bots: list[Bot] = []

    def start() -> Bot:
        stderr_path = tmp_path / f"bot{len(bots)}.stderr"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from trainfarm.cli.app import main; main()",  # what the `farm` console script runs
                    "bot",
                    "BTC/USDT",
                    TF.value,
                    "--json",
                    "--recheck",
                    str(RECHECK_S),
                    "--interval",
                    str(INTERVAL_S),
                    "--duration",
                    str(BOT_LIFETIME_S),
                    "--replay",  # the sample's newest bar is in the past: score it as just closed
                ],
                env=bot_home.env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        bot = Bot(proc, stderr_path)
        bots.append(bot)
        return bot

    try:
        yield start
    finally:
        for bot in bots:
            bot.stop()


def announce_version(
    client: redis.Redis, v: Version, *, event: str = "promoted", previous: Version | None = None
) -> float:
    """Announce ``v`` the farm's way (key, nudge, event); returns time.monotonic() just before."""
    started = time.monotonic()
    announce(
        client,
        symbol=SYMBOL,
        timeframe=TF.value,
        version=v.version,
        manifest_sha256=v.manifest_sha256,
        pack_path=v.path,
        event=event,
        previous_version=previous.version if previous else None,
        promoted_at=datetime.now(UTC),
    )
    return started


def subscribers(client: redis.Redis) -> int:
    return int(client.pubsub_numsub(promoted_channel(SYMBOL, TF.value))[0][1])


def check_reload(event: dict[str, Any], version: Version, previous: Version | None) -> float:
    """The reload event names ``version`` and ``previous`` and how long after the promotion it came."""
    assert event["version"] == version.version
    assert event["previous"] == (previous.version if previous else None)
    lag = float(event["seconds_since_promotion"])
    assert lag >= 0  # after the promotion: the bot read the promotion time from the record
    return lag


# -- tests ----------------------------------------------------------------------------------------


def test_a_running_bot_receives_promotions_and_a_rollback(
    start_bot: Callable[[], Bot], bot_home: BotHome, versions: list[Version]
) -> None:
    v1, v2 = versions
    rds = bot_home.client
    bot = start_bot()
    _, _, started = bot.wait(lambda e: e.get("event") == "started", START_TIMEOUT_S, "start")
    assert started["version"] is None  # no champion yet: the bot waits, it does not fail
    bot_id = str(started["bot_id"])
    wait_until(lambda: subscribers(rds) == 1, REACT_TIMEOUT_S, "a subscription")
    assert not [e for e in bot.seen() if e.get("event") == "score"]

    index = 0
    for version, previous, event in ((v1, None, "promoted"), (v2, v1, "promoted"), (v1, v2, "rollback")):
        at = announce_version(rds, version, event=event, previous=previous)
        index, when, reload = bot.reload(version.version, REACT_TIMEOUT_S, after=index)
        lag = check_reload(reload, version, previous)
        print(
            f"{event} {version.version}: reload seen {when - at:.2f}s after announcing (bot says {lag:.2f}s)"
        )
        score = bot.score(version.version, after=index)
        assert abs(score["p_down"] + score["p_neutral"] + score["p_up"] - 1) < 1e-6
        assert score["signal"] in (None, "up", "down") and score["bar"].startswith("2024-02-29")
        beat = rds.hgetall(bot_key(bot_id))
        assert beat["version"] == version.version and int(beat["pid"]) == bot.proc.pid
    assert [e["version"] for e in bot.seen() if e.get("event") == "reload"] == [
        v1.version,
        v2.version,
        v1.version,
    ]
    # Each score after a reload came from that version, and two versions score differently.
    scores = {e["version"]: e["p_up"] for e in bot.seen() if e.get("event") == "score"}
    assert scores[v1.version] != scores[v2.version]
    assert bot.stop() == 0  # SIGTERM: a clean stop ...
    assert not rds.exists(bot_key(bot_id))  # ... that removes its heartbeat at once
    assert bot.seen()[-1]["event"] == "stopped"
    assert not [e for e in bot.seen() if e.get("event") == "error"]


def test_a_bot_started_after_a_promotion_serves_the_champion_at_once(
    start_bot: Callable[[], Bot], bot_home: BotHome, versions: list[Version]
) -> None:
    v1, v2 = versions
    announce_version(bot_home.client, v1)
    announce_version(bot_home.client, v2, previous=v1)
    bot = start_bot()
    index, _, started = bot.wait(lambda e: e.get("event") == "started", START_TIMEOUT_S, "start")
    assert started["version"] == v2.version  # loaded before the bot said it had started
    events = bot.seen()
    reloads = [e for e in events[:index] if e.get("event") == "reload"]
    assert len(reloads) == 1
    check_reload(reloads[0], v2, None)
    first_score = bot.wait(lambda e: e.get("event") == "score", REACT_TIMEOUT_S, "a score")[2]
    assert first_score["version"] == v2.version


def test_a_bot_whose_connections_are_killed_during_a_promotion_converges(
    start_bot: Callable[[], Bot], bot_home: BotHome, versions: list[Version]
) -> None:
    """The bot's connections are killed in the same transaction that promotes v2, so the nudge provably
    reaches nobody (PUBLISH counts 0 receivers); the bot must still come to serve v2, found by its
    periodic re-check or by re-reading the key when it reconnects."""
    v1, v2 = versions
    rds = bot_home.client
    announce_version(rds, v1)
    bot = start_bot()
    index, _, _ = bot.wait(lambda e: e.get("event") == "started", START_TIMEOUT_S, "start")
    wait_until(lambda: subscribers(rds) == 1, REACT_TIMEOUT_S, "a subscription")
    index, _, _ = bot.wait(lambda e: e.get("event") == "score", REACT_TIMEOUT_S, "a score", after=index)

    record = champion_record(
        symbol=SYMBOL,
        timeframe=TF.value,
        version=v2.version,
        manifest_sha256=v2.manifest_sha256,
        pack_path=v2.path,
        promoted_at=datetime.now(UTC),
    )
    message = dumps({**record, "event": PROMOTED, "previous_version": v1.version})
    pipe = rds.pipeline(transaction=True)  # MULTI ... EXEC: nothing runs between these commands
    pipe.client_kill_filter(_type="pubsub")
    pipe.client_kill_filter(_type="normal", skipme=True)
    pipe.set(champion_key(SYMBOL, TF.value), dumps(record))
    pipe.publish(promoted_channel(SYMBOL, TF.value), message)
    pipe.xadd(EVENTS_STREAM, {"event": PROMOTED, "data": message})
    at = time.monotonic()
    killed_pubsub, killed_normal, _, receivers, _ = pipe.execute()
    assert killed_pubsub == 1 and killed_normal >= 1
    assert receivers == 0  # the nudge is lost: only the re-check (or the reconnect) can find v2

    # Only the re-check (every RECHECK_S) or the reconnect can find v2 now; either must.
    index, when, reload = bot.reload(v2.version, REACT_TIMEOUT_S, after=index)
    print(f"converged {when - at:.2f}s after the killed promotion (recheck {RECHECK_S}s)")
    check_reload(reload, v2, v1)
    assert bot.score(v2.version, after=index)["version"] == v2.version
    wait_until(lambda: subscribers(rds) == 1, REACT_TIMEOUT_S, "the bot to subscribe again")


def test_a_bot_converges_after_a_redis_restart_and_serves_meanwhile(
    start_bot: Callable[[], Bot], bot_home: BotHome, versions: list[Version]
) -> None:
    v1, v2 = versions
    rds, server = bot_home.client, bot_home.server
    announce_version(rds, v1)
    bot = start_bot()
    index, _, _ = bot.wait(lambda e: e.get("event") == "started", START_TIMEOUT_S, "start")
    wait_until(lambda: subscribers(rds) == 1, REACT_TIMEOUT_S, "a subscription")

    assert server.stop()
    index, _, error = bot.wait(
        lambda e: e.get("event") == "error" and "redis" in str(e.get("error")).lower(),
        REACT_TIMEOUT_S,
        "a connection error",
        after=index,
    )
    print(f"the bot reported: {error['error'][:120]}")
    bot.score(v1.version, after=index)  # Redis is down: the loaded version keeps serving
    server.ensure_running()  # append-only file replayed: the key still names v1
    lost = subscribers(rds) == 0
    at = announce_version(rds, v2, previous=v1)
    index, when, reload = bot.reload(v2.version, REACT_TIMEOUT_S, after=index)
    print(
        f"converged {when - at:.2f}s after the promotion that followed the restart "
        f"({'no bot was subscribed at the announcement' if lost else 'the bot had resubscribed by then'})"
    )
    # Reconnecting waits out the client's backoff, then re-reads the key; the re-check would find it too.
    check_reload(reload, v2, v1)
    bot.score(v2.version, after=index)
