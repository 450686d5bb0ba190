"""Shadow challengers end to end: real packs, real `farm bot` processes walking real bars, a real Redis.

Two real packs of BTC_USDT 1h are built once for the module, on the same 110 days of synthetic 5-minute
bars: ``signal`` on a walk with a strong planted daily cycle (it learns the cycle), ``noise`` on the same
walk without it (:func:`~trainfarm.shared.data.synthetic.random_walk_bars` of the same seed: the same
noise, no cycle). The store holds the planted walk up to day 120; bots walk its bars from day 112 on (after
both packs' data), each bar scored as if it had just closed, with the champion and the challenger, and
report the pairs to ``farm:shadow``. The farm's shadow check (what beat runs; here called directly, as
`farm shadow --check` does) ingests them and decides with the farm's own labels of those bars. On these
bars the signal pack is much better than the noise pack, so the decisions are not a coin toss: that the
statistics decide right on close calls is for tests/unit/evaluation/test_shadow_test.py.

Every wait is bounded by a deadline against hangs; every process started is stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support.bots import Bot
from tests.support.packs import Version, farm_settings, register_pack, train_base_models
from tests.support.waiting import wait_until
from trainfarm.shared.champions.publish import promote_version
from trainfarm.shared.champions.shadow import reconcile_challengers, start_challenger, stop_challenger
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import DEFAULT_START, planted_signal_bars
from trainfarm.shared.dataset.snapshot import build_snapshot
from trainfarm.shared.errors import ShadowRefusedError
from trainfarm.shared.registry import (
    ChallengerOutcome,
    PromotionReason,
    Registry,
    VersionStatus,
    dispose_engine,
)
from trainfarm.shared.registry.models import Version as VersionRow
from trainfarm.shared.registry.shadow_models import ShadowScore
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.meta_stage import build_version
from trainfarm.workers import stages
from trainfarm.workers.checks import shadow_check
from trainfarm_client.contract import EVENTS_STREAM, SHADOW_STREAM, bot_key, challenger_key, champion_key
from trainfarm_client.pack import MANIFEST

pytestmark = pytest.mark.slow

SYMBOL, TF = "BTC_USDT", Timeframe.H1
BARS_PER_DAY = 288
TRAIN_DAYS, STORE_DAYS, WALK_FROM_DAY = 110, 120, 112
SEED, STRENGTH = 41, 0.6
MIN_BARS = 120
CONFIG = f"""
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"

[timeframes.1h.promotion]
mode = "shadow"
shadow_min_bars = {MIN_BARS}
shadow_max_age = "30d"
"""
#: Deadline of a bot's start (a fresh interpreter importing the model libraries, then two packs) and walk.
BOT_TIMEOUT_S = 300.0
WALK_FROM = DEFAULT_START + timedelta(days=WALK_FROM_DAY)


@dataclass(frozen=True)
class BuiltPack:
    version: str
    path: Path
    manifest_sha256: str


@dataclass(frozen=True)
class Packs:
    signal: BuiltPack
    noise: BuiltPack
    bars_file: Path  #: the planted walk up to STORE_DAYS, as a file the store imports


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Packs:
    root = tmp_path_factory.mktemp("shadow-packs")
    planted = planted_signal_bars(STORE_DAYS * BARS_PER_DAY, SEED, strength=STRENGTH)
    bars_file = root / "BTC_USDT-5m.parquet"
    planted.write_parquet(bars_file)
    built = {}
    with farm_settings(root / "home", CONFIG) as settings:
        config = settings.load_config()
        for i, (name, strength) in enumerate((("noise", 0.0), ("signal", STRENGTH))):
            window = planted_signal_bars(TRAIN_DAYS * BARS_PER_DAY, SEED, strength=strength)
            snapshot = build_snapshot(
                window, symbol=SYMBOL, timeframe=TF, config=config, root=settings.datasets_dir
            )
            work_dir = root / f"run-{name}"
            stage, results = train_base_models(snapshot, work_dir, config, symbol=SYMBOL, timeframe=TF)
            version = build_version(
                stage, snapshot, results, work_dir, threads=1,
                run_created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i),
            )  # fmt: skip
            built[name] = BuiltPack(version.version, version.path, version.manifest_sha256)
    return Packs(built["signal"], built["noise"], bars_file)


@dataclass
class Farm:
    """A test's farm home: settings, registry, store with the planted bars, embedded Redis, bots."""

    settings: FarmSettings
    registry: Registry
    client: redis.Redis
    env: dict[str, str]
    tmp: Path
    bots: list[Bot]

    def register(self, pack: BuiltPack, *, copy: bool = False) -> str:
        """Record ``pack`` as a candidate that passed its gates (a copy under this home with ``copy``)."""
        path = pack.path
        if copy:
            path = self.settings.artifacts_dir / SYMBOL / TF.value / pack.version
            shutil.copytree(pack.path, path)
        manifest = json.loads((path / MANIFEST).read_text())
        run = self.registry.runs.create(SYMBOL, TF, "test: shadow")
        self.registry.versions.add(
            pack.version, SYMBOL, TF.value, run.id, metrics=manifest["metrics"], path=str(path),
            manifest_sha256=pack.manifest_sha256, gate_report={"passed": True, "checks": []},
        )  # fmt: skip
        return pack.version

    def bot(self, name: str, *, walk_from: datetime = WALK_FROM, interval: float = 0.01) -> Bot:
        stderr_path = self.tmp / f"{name}.stderr"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable, "-c", "from trainfarm.cli.app import main; main()",
                    "bot", "BTC/USDT", TF.value, "--json", "--bot-id", name, "--recheck", "0.5",
                    "--interval", str(interval), "--duration", "600", "--walk-from", walk_from.isoformat(),
                ],
                env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
            )  # fmt: skip
        bot = Bot(proc, stderr_path)
        self.bots.append(bot)
        return bot

    def check(self) -> shadow_check.ShadowCheckReport:
        """What beat's shadow check does: ingest the paired scores, then decide."""
        return shadow_check.run(self.registry, self.client, self.settings)[1]


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    home = tmp_path / "home"
    with farm_settings(home, CONFIG) as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env |= {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(home / "farm.toml")}
        farm = Farm(settings, Registry.open(), client, env, tmp_path, [])
        try:
            yield farm
        finally:
            for bot in farm.bots:
                bot.stop()
            client.close()
            server.stop()
            dispose_engine(settings.database)


def _prepare(
    farm: Farm, packs: Packs, champion: BuiltPack, challenger: BuiltPack, *, copy: bool = False
) -> None:
    open_store().import_file(packs.bars_file, SYMBOL)
    farm.register(champion)
    promote_version(champion.version, PromotionReason.MANUAL, registry=farm.registry)
    farm.register(challenger, copy=copy)


def _walked(bot: Bot) -> list[dict[str, object]]:
    bot.wait(lambda e: e.get("event") == "walk_end", BOT_TIMEOUT_S, "the end of the walk")
    return [e for e in bot.seen() if e.get("event") == "score"]


def _paired_rows(farm: Farm) -> int:
    with farm.registry.database.read() as s:
        return s.query(ShadowScore).count()


def test_a_better_challenger_is_promoted_and_two_bots_count_each_bar_once(farm: Farm, packs: Packs) -> None:
    _prepare(farm, packs, champion=packs.noise, challenger=packs.signal)
    # The gates passed it; in shadow mode it becomes the challenger, not the champion.
    stages.settle(farm.registry.versions.get(packs.signal.version))
    assert farm.registry.champions.get(SYMBOL, TF.value).version == packs.noise.version  # type: ignore[union-attr]
    assert json.loads(farm.client.get(challenger_key(SYMBOL, TF.value)))["version"] == packs.signal.version
    scores = [_walked(bot) for bot in (farm.bot("bot-a"), farm.bot("bot-b"))]
    # Each bot acted on the champion and scored the challenger beside it, on every bar it walked.
    for walked in scores:
        assert walked and all(e["version"] == packs.noise.version for e in walked)
        assert all(e["challenger"]["version"] == packs.signal.version for e in walked)  # type: ignore[index]
    bars = {e["bar"] for e in scores[0]}
    assert bars == {e["bar"] for e in scores[1]}
    assert farm.client.xlen(SHADOW_STREAM) == 2 * len(bars)
    ingested = shadow_check.ingest(farm.client, farm.registry)
    assert (ingested.inserted, ingested.duplicates, ingested.malformed) == (len(bars), len(bars), 0)
    assert _paired_rows(farm) == len(bars)

    report = farm.check()
    assert [d["outcome"] for d in report.decided] == ["promoted"], report
    assert farm.registry.champions.get(SYMBOL, TF.value).version == packs.signal.version  # type: ignore[union-attr]
    assert farm.client.get(challenger_key(SYMBOL, TF.value)) is None
    assert json.loads(farm.client.get(champion_key(SYMBOL, TF.value)))["version"] == packs.signal.version
    (ended,) = farm.registry.shadows.history(SYMBOL, TF.value)
    assert ended.outcome is ChallengerOutcome.PROMOTED and ended.verdict is not None
    assert ended.verdict["bars"] >= MIN_BARS and ended.verdict["logloss_diff"] < 0
    report = farm.registry.versions.get(packs.signal.version).gate_report or {}
    assert [c["name"] for c in report["checks"]] == ["shadow"] and report["passed"] is True
    # One decision: checking again changes nothing.
    again = farm.check()
    assert not again.decided and not again.ended
    events = [json.loads(f["data"]) | {"event": f["event"]} for _, f in farm.client.xrange(EVENTS_STREAM)]
    assert [e["event"] for e in events if e["event"] in ("challenger", "promoted")] == [
        "promoted", "challenger", "promoted", "challenger",
    ]  # fmt: skip


def test_a_worse_challenger_is_retired_and_never_promoted(farm: Farm, packs: Packs) -> None:
    _prepare(farm, packs, champion=packs.signal, challenger=packs.noise)
    start_challenger(packs.noise.version, registry=farm.registry)
    assert _walked(farm.bot("bot-a"))
    report = farm.check()
    assert [d["outcome"] for d in report.decided] == ["retired"], report
    assert "significantly worse" in str(report.decided[0]["reason"])
    assert farm.registry.champions.get(SYMBOL, TF.value).version == packs.signal.version  # type: ignore[union-attr]
    assert farm.registry.versions.get(packs.noise.version).status is VersionStatus.REJECTED
    assert packs.noise.version not in {
        p.to_version for p in farm.registry.champions.history(SYMBOL, TF.value)
    }
    assert farm.client.get(challenger_key(SYMBOL, TF.value)) is None


def test_a_bot_killed_mid_shadow_changes_nothing(farm: Farm, packs: Packs) -> None:
    _prepare(farm, packs, champion=packs.noise, challenger=packs.signal)
    start_challenger(packs.signal.version, registry=farm.registry)
    bot = farm.bot("bot-a", interval=0.2)
    bot.wait(lambda e: e.get("event") == "score" and "challenger" in e, BOT_TIMEOUT_S, "a shadow score")
    wait_until(lambda: sum(e.get("event") == "score" for e in bot.seen()) >= 20, 120, "20 scores")
    bot.proc.kill()  # SIGKILL: no clean close, its heartbeat stays until its TTL
    bot.proc.wait(timeout=20)
    report = farm.check()
    assert not report.decided and not report.ended, report
    (waiting,) = report.waiting
    assert "of 120 labelled live bars" in str(waiting["reason"])
    assert farm.registry.champions.get(SYMBOL, TF.value).version == packs.noise.version  # type: ignore[union-attr]
    assert farm.registry.shadows.active(SYMBOL, TF.value) is not None
    reported = _paired_rows(farm)
    assert reported >= 20
    # Another bot walks the same bars again: the bars reported before count once, and the decision comes.
    assert _walked(farm.bot("bot-b"))
    report = farm.check()
    assert [d["outcome"] for d in report.decided] == ["promoted"], report
    assert _paired_rows(farm) == len({e["bar"] for e in _walked(farm.bots[-1])})


def test_a_tampered_challenger_is_refused_by_bots_and_never_decided(farm: Farm, packs: Packs) -> None:
    _prepare(farm, packs, champion=packs.noise, challenger=packs.signal, copy=True)
    start_challenger(packs.signal.version, registry=farm.registry)
    pack = Path(farm.registry.versions.get(packs.signal.version).path)
    target = next(p for p in sorted((pack / "base").iterdir()) if p.is_file())
    target.write_bytes(target.read_bytes() + b" ")  # after the farm verified it: only the bots can tell
    bot = farm.bot("bot-a")
    walked = _walked(bot)
    assert walked and all("challenger" not in e for e in walked)  # the champion served every bar
    assert all(e["version"] == packs.noise.version for e in walked)
    assert farm.client.xlen(SHADOW_STREAM) == 0
    report = farm.check()
    assert not report.decided and not report.ended and len(report.waiting) == 1, report
    assert farm.registry.shadows.active(SYMBOL, TF.value) is not None
    assert farm.registry.champions.get(SYMBOL, TF.value).version == packs.noise.version  # type: ignore[union-attr]


def test_a_refused_challenger_is_named_in_the_heartbeat(farm: Farm, packs: Packs) -> None:
    _prepare(farm, packs, champion=packs.noise, challenger=packs.signal, copy=True)
    start_challenger(packs.signal.version, registry=farm.registry)
    pack = Path(farm.registry.versions.get(packs.signal.version).path)
    (pack / MANIFEST).write_text((pack / MANIFEST).read_text() + " ")
    bot = farm.bot("bot-a", interval=0.5)
    bot.wait(lambda e: e.get("event") == "score", BOT_TIMEOUT_S, "a score by the champion")
    beat: Callable[[], dict[str, str]] = lambda: farm.client.hgetall(bot_key("bot-a"))  # noqa: E731
    wait_until(lambda: "refused challenger" in beat().get("challenger_error", ""), 60, "the reason")
    assert beat()["version"] == packs.noise.version and beat()["challenger"] == ""


LIFECYCLE_CONFIG = """
[timeframes.12h.promotion]
mode = "shadow"
"""


@pytest.fixture
def twelve_hour(
    tmp_path: Path, btc_versions: list[Version]
) -> Iterator[tuple[Registry, redis.Redis, list[str]]]:
    """A home in shadow mode at 12h with the session's three real BTC_USDT 12h versions, v1 the champion."""
    with farm_settings(tmp_path / "home", LIFECYCLE_CONFIG) as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        registry = Registry.open()
        try:
            ids = [
                register_pack(registry, v.path, v.manifest_sha256, "test: lifecycle") for v in btc_versions
            ]
            promote_version(ids[0], PromotionReason.MANUAL, registry=registry)
            yield registry, client, ids
        finally:
            client.close()
            server.stop()
            dispose_engine(settings.database)


def _passed(registry: Registry, version: str) -> None:
    with registry.database.write() as s:
        row = s.get(VersionRow, version)
        assert row is not None
        row.gate_report = {"passed": True, "checks": []}


def test_candidates_wait_for_the_slot_and_an_old_challenger_is_retired_without_evidence(
    twelve_hour: tuple[Registry, redis.Redis, list[str]],
) -> None:
    registry, client, (v1, v2, v3) = twelve_hour
    for version in (v2, v3):
        _passed(registry, version)
        stages.settle(registry.versions.get(version))
    active = registry.shadows.active(SYMBOL, "12h")
    assert active is not None and active.version == v2  # v3 passed too, and waits as a candidate
    assert registry.versions.get(v3).status is VersionStatus.CANDIDATE
    assert json.loads(client.get(challenger_key(SYMBOL, "12h")))["version"] == v2
    settings = get_settings()
    later = active.started_at + timedelta(days=91)  # past shadow_max_age (90d) with no bar scored
    report = shadow_check.check(registry, client, settings, open_store(), settings.load_config(), now=later)
    (ended,) = report.ended
    assert ended["outcome"] == "retired" and "no decision within 90d" in str(ended["reason"])
    assert report.started == [v3]
    assert registry.versions.get(v2).status is VersionStatus.CANDIDATE  # no evidence is no verdict
    assert json.loads(client.get(challenger_key(SYMBOL, "12h")))["version"] == v3
    assert registry.champions.get(SYMBOL, "12h").version == v1  # type: ignore[union-attr]


def test_a_champion_change_supersedes_the_challenger_and_an_operator_can_stop_one(
    twelve_hour: tuple[Registry, redis.Redis, list[str]],
) -> None:
    registry, client, (v1, v2, v3) = twelve_hour
    start_challenger(v2, registry=registry)
    promote_version(v3, PromotionReason.MANUAL, registry=registry)  # an operator moves the champion
    settings = get_settings()
    report = shadow_check.check(registry, client, settings, open_store(), settings.load_config())
    assert [(e["version"], e["outcome"]) for e in report.ended] == [(v2, "superseded")]
    assert client.get(challenger_key(SYMBOL, "12h")) is None
    start_challenger(v1, registry=registry)  # by hand: the former champion, against v3
    client.delete(challenger_key(SYMBOL, "12h"))  # Redis lost it: reconciliation sets it again
    assert reconcile_challengers(registry, client, settings) == [v1]
    assert json.loads(client.get(challenger_key(SYMBOL, "12h")))["version"] == v1
    stopped = stop_challenger(SYMBOL, "12h", registry=registry)
    assert stopped.outcome is ChallengerOutcome.STOPPED and client.get(challenger_key(SYMBOL, "12h")) is None
    with pytest.raises(ShadowRefusedError, match="no active challenger"):
        stop_challenger(SYMBOL, "12h", registry=registry)
    with pytest.raises(ShadowRefusedError, match="is the champion"):
        start_challenger(v3, registry=registry)
