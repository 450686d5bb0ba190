"""PostgreSQL unavailable during a promotion: never a half promotion, and a retry completes it.

docs/RELIABILITY.md, "PostgreSQL unavailable during a promotion". The farm's registry is a real PostgreSQL
database reached through a TCP proxy (``tests/support/tcp_proxy.py``) that the test cuts, which is what a
worker sees when PostgreSQL dies or becomes unreachable: open connections reset, new ones refused. Redis is
the farm home's real embedded server, the packs are real packs (8 base models and a meta stage, built once per
module), the CHAMPION pointer a real file. PostgreSQL dies at each point of a promotion of v2 over the
champion v1:

* before it starts: the promotion fails with a transient error, nothing changed; it completes once
  PostgreSQL is back;
* inside the registry transaction (after its UPDATEs, before its INSERT): PostgreSQL rolls the
  transaction back, nothing changed, the error is transient; a retry completes;
* right after the registry committed: the error is transient and says what is done and what to repeat;
  the meta task's retry (``stages.settle``) completes the pointer and the announcement;
* while committing, the COMMIT's answer lost (the commit happened; the farm cannot know): transient; the
  retry finds the promotion made and completes it without a second one;
* during the meta task's ``stages.settle``: it raises a TransientError (Celery retries it) until
  PostgreSQL is back, then promotes.

After each recovery the registry (read straight from PostgreSQL, not through the proxy), the CHAMPION
pointer and the Redis champion key name the same version, exactly one promotion row and one "promoted"
event exist for it, and no bot was ever told (key or nudge) of a version the registry does not hold as
champion. Every failure comes within seconds: nothing hangs on a dead database.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from sqlalchemy import Connection, event, make_url

from tests.support.packs import PACK_SYMBOL, PACK_TF, Version
from tests.support.services import PG_HOST, PG_PORT, postgres_database, require, tcp_port_open
from tests.support.tcp_proxy import TcpProxy
from trainfarm.shared.champions.publish import promote_version, read_pointer
from trainfarm.shared.errors import TransientError
from trainfarm.shared.registry import (
    ChampionStore,
    PromotionRecord,
    Registry,
    RegistryUnavailableError,
    VersionStatus,
    create_registry_engine,
    dispose_engine,
)
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.workers import stages
from trainfarm_client.contract import EVENTS_STREAM, PROMOTED, champion_key, promoted_channel

SYMBOL, TF = PACK_SYMBOL, PACK_TF.value
PASSED = {"passed": True, "checks": [{"name": "logloss_vs_prior", "value": 0.9, "threshold": 1.0}]}
#: A worker must learn of a dead database at once, not after some network timeout.
FAILS_WITHIN_S = 10.0
#: What the registry's error says when PostgreSQL cannot be reached, or went away mid-conversation.
UNREACHABLE = r"registry database postgresql\+psycopg://\S+: (connection failed|consuming input failed)"


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def versions(btc_versions: list[Version]) -> list[Version]:
    """Two real packs (v1 < v2) of BTC_USDT 12h, shared with other modules (no test changes them)."""
    # Checked once per module (postgres_database() checks again, per test).
    require(tcp_port_open(PG_HOST, PG_PORT), f"no PostgreSQL at {PG_HOST}:{PG_PORT}")
    return btc_versions[1:]


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database, straight on the server (never cut)."""
    yield from postgres_database()


@pytest.fixture
def proxy(database: str) -> Iterator[TcpProxy]:
    """The farm's way to PostgreSQL, which the test cuts and restores."""
    url = make_url(database)
    assert url.host is not None and url.port is not None
    with TcpProxy(url.host, url.port) as tcp:
        yield tcp


@pytest.fixture
def farm_url(database: str, proxy: TcpProxy) -> Iterator[str]:
    """The database's URL through the proxy: what FARM_DATABASE_URL says."""
    url = make_url(database).set(port=proxy.port).render_as_string(hide_password=False)
    yield url
    dispose_engine(url)  # its pool may hold connections to the dead proxy


@pytest.fixture
def settings(farm_home: Path, farm_url: str, monkeypatch: pytest.MonkeyPatch) -> FarmSettings:
    """The farm home's settings (embedded Redis), with the registry on PostgreSQL through the proxy."""
    monkeypatch.setenv("FARM_DATABASE_URL", farm_url)
    get_settings.cache_clear()
    current = get_settings()
    assert current.database == farm_url
    return current


@dataclass(frozen=True)
class View:
    """What each party says about the market's champion."""

    registry: str | None  #: the champion per PostgreSQL (read directly, not through the proxy)
    pointer: str | None  #: the CHAMPION file
    key: dict[str, Any] | None  #: the Redis champion key, as a bot reads it (the contract's key, JSON)
    promotions: list[tuple[str | None, str]]  #: every promotion row (from, to), oldest first
    announced: list[str]  #: the version of every "promoted" event on the stream, oldest first


@dataclass
class Market:
    """BTC_USDT 12h with v1 champion and v2 a candidate whose gates passed; the farm on the proxy."""

    v1: str
    v2: str
    proxy: TcpProxy
    farm: Registry  #: through the proxy: the engine promote_version and settle use (Registry.open())
    direct: Registry  #: straight to PostgreSQL: the truth, readable during an outage
    settings: FarmSettings
    rds: redis.Redis
    nudges: redis.client.PubSub  #: a bot's subscription to the market's channel, from before v2's turn

    def view(self) -> View:
        raw = self.rds.get(champion_key(SYMBOL, TF))
        champion = self.direct.champions.get(SYMBOL, TF)
        rows = reversed(self.direct.champions.history(SYMBOL, TF))
        entries = cast(list[tuple[str, dict[str, str]]], self.rds.xrange(EVENTS_STREAM))
        events = [json.loads(f["data"]) for _, f in entries if f["event"] == PROMOTED]
        return View(
            registry=champion.version if champion else None,
            pointer=read_pointer(self.settings.artifacts_dir, SYMBOL, TF),
            key=json.loads(raw) if raw is not None else None,
            promotions=[(p.from_version, p.to_version) for p in rows],
            announced=[e["version"] for e in events],
        )

    def assert_unchanged(self) -> None:
        """v1 is champion everywhere; v2 is still a candidate that nobody heard of."""
        now = self.view()
        assert (now.registry, now.pointer, _version(now.key)) == (self.v1, self.v1, self.v1)
        assert now.promotions == [(None, self.v1)] and now.announced == [self.v1]
        assert self.direct.versions.get(self.v2).status is VersionStatus.CANDIDATE
        assert self.received_nudges() == []

    def assert_promoted_once(self) -> None:
        """v2 is champion everywhere, with one promotion row, one event and one nudge; the key is the
        registry's champion record (a bot on the key loads exactly what the registry promoted)."""
        now = self.view()
        assert (now.registry, now.pointer, _version(now.key)) == (self.v2, self.v2, self.v2)
        assert now.promotions == [(None, self.v1), (self.v1, self.v2)]
        assert now.announced == [self.v1, self.v2]
        champion = self.direct.champions.get(SYMBOL, TF)
        assert champion is not None and now.key is not None
        assert now.key["sha256"] == champion.manifest_sha256
        assert now.key["uri"] == Path(champion.path).absolute().as_uri()
        assert self.received_nudges() == [(self.v2, self.v1)]

    def received_nudges(self) -> list[tuple[str, str | None]]:
        """(version, previous_version) of the nudges the bot got since the last call."""
        got = []
        for _ in range(50):  # bounded: a test sends one nudge at most
            message = self.nudges.get_message(timeout=0.2)
            if message is None:
                break
            data = json.loads(message["data"])
            got.append((data["version"], data["previous_version"]))
        return got


@pytest.fixture
def market(
    versions: list[Version],
    settings: FarmSettings,
    farm_url: str,
    database: str,
    proxy: TcpProxy,
    rds: redis.Redis,
) -> Iterator[Market]:
    v1, v2 = versions
    farm = Registry.open(farm_url)
    direct = Registry(create_registry_engine(database))
    nudges = rds.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        for pack in (v1, v2):
            run = farm.runs.create(SYMBOL, TF, "pg-down test")
            farm.versions.add(
                pack.version,
                SYMBOL,
                TF,
                run.id,
                metrics={},
                path=str(pack.path),
                manifest_sha256=pack.manifest_sha256,
                gate_report=PASSED,
            )
        promote_version(v1.version, "gate", PASSED)
        nudges.subscribe(promoted_channel(SYMBOL, TF))
        assert nudges.get_message(timeout=2) is None  # the subscription is in place (confirmation read)
        made = Market(v1.version, v2.version, proxy, farm, direct, settings, rds, nudges)
        made.assert_unchanged()
        yield made
    finally:
        nudges.close()
        direct.close()
        farm.close()


def _version(key: dict[str, Any] | None) -> str | None:
    return None if key is None else str(key["version"])


def assert_says_repeat(error: Exception, version: str, done: str) -> None:
    """The error says what is done (``done``), that the database was the trouble, and what to repeat."""
    message = str(error)
    assert done in message, message
    assert re.search(UNREACHABLE, message), message
    assert f"run `farm promote {version}` again" in message and "(idempotent)" in message, message


def _fails_transiently(call: Callable[..., object], *args: Any, **kwargs: Any) -> TransientError:
    """Run ``call``; it must raise a TransientError within FAILS_WITHIN_S (returned for its message)."""
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        call(*args, **kwargs)
    assert time.monotonic() - started < FAILS_WITHIN_S, "the farm hung on a dead database"
    return info.value


# --- the tests -------------------------------------------------------------------------------------------


def test_a_promotion_while_postgres_is_down_changes_nothing_and_completes_once_it_is_back(
    market: Market,
) -> None:
    market.proxy.cut()
    error = _fails_transiently(promote_version, market.v2, "gate", PASSED)
    assert isinstance(error, RegistryUnavailableError)
    assert error.__cause__ is not None and "OperationalError" in type(error.__cause__).__name__
    assert re.search(UNREACHABLE, str(error)) and "Connection refused" in str(error), error
    market.assert_unchanged()  # read from PostgreSQL itself, during the outage

    market.proxy.restore()
    market.assert_unchanged()
    done = promote_version(market.v2, "gate", PASSED)
    assert (done.version, done.previous_version, done.changed, done.announced) == (
        market.v2,
        market.v1,
        True,
        "announced",
    )
    market.assert_promoted_once()


def test_postgres_dying_inside_the_promotion_transaction_rolls_it_back_and_a_retry_completes(
    market: Market,
) -> None:
    executed: list[str] = []

    def die_before_the_promotion_row(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        executed.append(" ".join(statement.split()))
        if statement.startswith("INSERT INTO promotions") and not market.proxy.is_cut:
            market.proxy.cut()

    engine = market.farm.engine
    event.listen(engine, "before_cursor_execute", die_before_the_promotion_row)
    try:
        error = _fails_transiently(promote_version, market.v2, "gate", PASSED)
    finally:
        event.remove(engine, "before_cursor_execute", die_before_the_promotion_row)
    assert isinstance(error, RegistryUnavailableError)
    assert_says_repeat(error, market.v2, "the registry did not confirm")
    # It died mid-transaction: the market was locked and v1 demoted and v2 crowned, uncommitted.
    assert executed[-1].startswith("INSERT INTO promotions"), executed
    assert any(s.startswith("UPDATE versions SET status") for s in executed), executed
    assert any(s.endswith("FOR UPDATE") for s in executed), executed
    market.assert_unchanged()  # PostgreSQL rolled the transaction back

    market.proxy.restore()
    market.assert_unchanged()
    done = promote_version(market.v2, "gate", PASSED)
    assert (done.changed, done.announced) == (True, "announced")
    market.assert_promoted_once()


def test_postgres_dying_right_after_the_registry_commit_is_transient_and_the_task_retry_completes_it(
    market: Market,
) -> None:
    real_promote = ChampionStore.promote

    def promote_then_die(self: ChampionStore, version_id: str, **kwargs: Any) -> PromotionRecord:
        made = real_promote(self, version_id, **kwargs)
        market.proxy.cut()
        return made

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ChampionStore, "promote", promote_then_die)
        error = _fails_transiently(promote_version, market.v2, "gate", PASSED)
    assert isinstance(error, RegistryUnavailableError)
    assert_says_repeat(error, market.v2, f"{market.v2} is the champion of {SYMBOL} {TF} in the registry")
    # Durable truth first: PostgreSQL has v2; the pointer and Redis, which come after it, are untouched.
    half = market.view()
    assert (half.registry, half.pointer, _version(half.key)) == (market.v2, market.v1, market.v1)
    assert market.received_nudges() == []

    # While PostgreSQL is down the meta task's retry fails again, transiently, and changes nothing.
    _fails_transiently(stages.settle, market.direct.versions.get(market.v2))
    assert market.view() == half and market.received_nudges() == []
    market.proxy.restore()
    # The retry of the meta task (train_meta on a registered run) settles the version as the registry has it.
    stages.settle(market.direct.versions.get(market.v2))
    market.assert_promoted_once()


def test_a_lost_commit_answer_is_transient_and_the_retry_completes_without_a_second_promotion(
    market: Market,
) -> None:
    promoting: list[bool] = []

    def note_promotion_row(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.startswith("INSERT INTO promotions"):
            promoting.append(True)

    def lose_the_commit_answer(conn: Connection) -> None:
        if promoting and not market.proxy.is_cut:
            market.proxy.cut_on_next_reply()  # COMMIT reaches PostgreSQL; its answer never comes back

    engine = market.farm.engine
    event.listen(engine, "before_cursor_execute", note_promotion_row)
    event.listen(engine, "commit", lose_the_commit_answer)
    try:
        error = _fails_transiently(promote_version, market.v2, "gate", PASSED)
    finally:
        event.remove(engine, "commit", lose_the_commit_answer)
        event.remove(engine, "before_cursor_execute", note_promotion_row)
    assert isinstance(error, RegistryUnavailableError) and market.proxy.is_cut
    assert_says_repeat(error, market.v2, "it may or may not hold it")
    # The farm cannot know the commit happened; PostgreSQL did commit. The pointer and Redis never moved.
    half = market.view()
    assert (half.registry, half.pointer, _version(half.key)) == (market.v2, market.v1, market.v1)
    assert half.promotions == [(None, market.v1), (market.v1, market.v2)]

    market.proxy.restore()
    again = promote_version(market.v2, "gate", PASSED)  # the same call, retried
    assert (again.changed, again.previous_version, again.announced) == (False, market.v1, "announced")
    market.assert_promoted_once()


def test_the_meta_tasks_settle_raises_transient_errors_while_postgres_is_down_then_promotes(
    market: Market,
) -> None:
    candidate = market.direct.versions.get(market.v2)  # what the meta task holds after registering v2
    assert candidate.status is VersionStatus.CANDIDATE
    market.proxy.cut()
    for _ in range(3):  # Celery's retries while the outage lasts: each one transient, none changes a thing
        error = _fails_transiently(stages.settle, candidate)
        assert isinstance(error, RegistryUnavailableError)
        market.assert_unchanged()
    market.proxy.restore()
    stages.settle(candidate)
    market.assert_promoted_once()
    before = market.view()
    stages.settle(market.direct.versions.get(market.v2))  # a late duplicate delivery changes nothing
    assert market.view() == before and market.received_nudges() == []
