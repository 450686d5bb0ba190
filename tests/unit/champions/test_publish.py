"""The promotion stage end to end: real packs, the settings' SQLite registry, real embedded Redis, CLI."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from typer.testing import CliRunner

from tests.support.concurrency import in_threads
from trainfarm.shared.champions.announce import read_champion
from trainfarm.shared.champions.publish import (
    NotAnnouncedError,
    champion_pointer,
    gate_summary,
    promote_version,
    prune,
    read_pointer,
    reannounce,
    record_failure,
    reject_version,
    rollback,
)
from trainfarm.shared.connections import EmbeddedRedis, redis_client
from trainfarm.shared.errors import ArtifactError, TransientError
from trainfarm.shared.registry import (
    NoChampionError,
    PromotionRefusedError,
    Registry,
    VersionStatus,
    create_registry_engine,
)
from trainfarm.shared.settings import FarmSettings
from trainfarm_client.contract import EVENTS_STREAM, promoted_channel

FAILED_REPORT = {
    "passed": False,
    "checks": [
        {"name": "logloss_vs_prior", "value": 1.2, "threshold": 1.09, "passed": False},
        {"name": "max_class_share", "value": 0.5, "threshold": 0.7, "passed": True},
        {"name": "min_sharpe", "value": -0.3, "threshold": 0.0, "passed": False},
    ],
}
PASSED_REPORT = {"passed": True, "checks": [{"name": "min_sharpe", "value": 1.0, "passed": True}]}


def events(client: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    return [(f["event"], json.loads(f["data"])) for _, f in client.xrange(EVENTS_STREAM)]


def pointer(settings: FarmSettings) -> str | None:
    return read_pointer(settings.artifacts_dir, "BTC_USDT", "1h")


# --- promote -------------------------------------------------------------------------------------------


def test_promotion_goes_registry_then_pointer_then_redis(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    v1, v2 = make_version(), make_version()
    first = promote_version(v1, "gate", PASSED_REPORT, registry=registry, client=rds)
    assert (first.version, first.previous_version, first.event, first.changed) == (v1, None, "promoted", True)
    second = promote_version(v2, "gate", registry=registry, client=rds)
    assert (second.previous_version, second.reason, second.announced) == (v1, "gate", "announced")

    champion = registry.champions.get("BTC_USDT", "1h")
    assert champion is not None and champion.version == v2
    assert registry.versions.get(v1).gate_report == PASSED_REPORT
    path = champion_pointer(settings.artifacts_dir, "BTC_USDT", "1h")
    assert path == settings.artifacts_dir / "BTC_USDT" / "1h" / "CHAMPION"
    assert path.read_text() == f"{v2}\n"
    key = read_champion(rds, "BTC_USDT", "1h")
    assert key is not None
    pack = settings.artifacts_dir / "BTC_USDT" / "1h" / v2
    assert key == {
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": v2,
        "sha256": champion.manifest_sha256,
        "uri": "file://" + str(pack),
        "promoted_at": second.to_json()["promoted_at"],
    }
    assert [(e, d["version"], d["previous_version"]) for e, d in events(rds)] == [
        ("promoted", v1, None),
        ("promoted", v2, v1),
    ]


def test_promoting_the_champion_again_only_refreshes(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    v1 = make_version()
    made = promote_version(v1, "gate", registry=registry, client=rds)
    champion_pointer(settings.artifacts_dir, "BTC_USDT", "1h").unlink()
    again = promote_version(v1, "manual", registry=registry, client=rds)
    assert (again.changed, again.announced, again.reason, again.promoted_at) == (
        False,
        "already announced",
        "gate",
        made.promoted_at,
    )
    assert pointer(settings) == v1  # the pointer is rewritten
    assert len(events(rds)) == 1 and len(registry.champions.history("BTC_USDT", "1h")) == 1


def test_a_tampered_pack_is_never_promoted(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    v1, v2, v3 = make_version(), make_version(), make_version()
    promote_version(v1, "gate", registry=registry, client=rds)
    key_before = rds.get("farm:champion:BTC_USDT:1h")
    packs = settings.artifacts_dir / "BTC_USDT" / "1h"
    (packs / v2 / "meta" / "meta.txt").write_text("a swapped model\n")  # a file the manifest lists
    manifest = packs / v3 / "manifest.json"  # the manifest itself (its sha256 is registered)
    manifest.write_text(manifest.read_text().replace('"p_star": 0.4', '"p_star": 0.9'))
    for version, problem in ((v2, "meta/meta.txt has sha256"), (v3, "differs from the registered")):
        with pytest.raises(ArtifactError, match=problem):
            promote_version(version, "manual", registry=registry, client=rds)
    champion = registry.champions.get("BTC_USDT", "1h")
    assert champion is not None and champion.version == v1
    assert registry.versions.get(v2).status is VersionStatus.CANDIDATE
    assert pointer(settings) == v1
    assert rds.get("farm:champion:BTC_USDT:1h") == key_before
    assert len(events(rds)) == 1 and len(registry.champions.history("BTC_USDT", "1h")) == 1


def test_redis_down_after_the_registry_is_transient_and_a_retry_completes(
    registry: Registry,
    rds: redis.Redis,
    settings: FarmSettings,
    make_version: Callable[..., str],
    tmp_path: Path,
) -> None:
    v1 = make_version()
    dead = redis.Redis(unix_socket_path=str(tmp_path / "gone.sock"), retry=Retry(NoBackoff(), 0))
    with pytest.raises(
        NotAnnouncedError, match=f"{v1} is the champion of BTC_USDT 1h in the registry"
    ) as info:
        promote_version(v1, "gate", registry=registry, client=dead)
    assert isinstance(info.value, TransientError) and f"farm promote {v1}" in str(info.value)
    champion = registry.champions.get("BTC_USDT", "1h")
    assert champion is not None and champion.version == v1 and pointer(settings) == v1  # durable state
    assert read_champion(rds, "BTC_USDT", "1h") is None  # Redis never heard of it
    retried = promote_version(v1, "gate", registry=registry, client=rds)
    assert (retried.changed, retried.announced) == (False, "announced")
    key = read_champion(rds, "BTC_USDT", "1h")
    assert key is not None and key["version"] == v1 and len(events(rds)) == 1


def test_the_pointer_is_replaced_atomically(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    v1, v2 = make_version(), make_version()
    path = champion_pointer(settings.artifacts_dir, "BTC_USDT", "1h")
    promote_version(v1, "gate", registry=registry, client=rds)
    seen: set[str] = set()
    stop = threading.Event()

    def read_constantly() -> None:
        while not stop.is_set():
            seen.add(path.read_text())  # never missing, never empty, never half a name

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        inode = path.stat().st_ino
        for i in range(20):
            promote_version((v2, v1)[i % 2], "manual", registry=registry, client=rds)
            assert path.stat().st_ino != inode  # a new file renamed over the old, not rewritten in place
            inode = path.stat().st_ino
    finally:
        stop.set()
        reader.join(timeout=30)
    assert seen <= {f"{v1}\n", f"{v2}\n"} and seen
    assert sorted(p.name for p in path.parent.iterdir() if not p.is_dir()) == [".CHAMPION.lock", "CHAMPION"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # bots running as other users read it
    assert os.access(path, os.R_OK)


def test_two_promoters_at_once_leave_registry_pointer_and_redis_agreeing(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    # Each promoter has its own engine and Redis connection, as two workers do. Whatever order their
    # registry commits, pointer writes and announcements interleave in, all three end on one champion.
    def promote(version: str) -> None:
        with Registry(create_registry_engine(settings.database)) as own:
            client = redis_client(settings)
            try:
                promote_version(version, "gate", registry=own, client=client)
            finally:
                client.close()

    for _ in range(5):
        candidates = [make_version(), make_version()]
        in_threads(2, lambda i, c=candidates: promote(c[i]))
        champion = registry.champions.get("BTC_USDT", "1h")
        assert champion is not None and champion.version in candidates
        key = read_champion(rds, "BTC_USDT", "1h")
        assert key is not None
        assert pointer(settings) == key["version"] == champion.version


def test_reannounce_restores_what_redis_lost(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    assert reannounce("BTC_USDT", "1h", registry=registry, client=rds) is None
    v1, v2 = make_version(), make_version()
    promote_version(v1, "gate", registry=registry, client=rds)
    made = promote_version(v2, "gate", registry=registry, client=rds)
    rds.delete("farm:champion:BTC_USDT:1h")
    again = reannounce("BTC_USDT", "1h", registry=registry, client=rds)
    assert again is not None and (again.version, again.announced, again.changed) == (v2, "announced", False)
    key = read_champion(rds, "BTC_USDT", "1h")
    assert key is not None and (key["version"], key["promoted_at"]) == (v2, made.to_json()["promoted_at"])
    assert reannounce("BTC_USDT", "1h", registry=registry, client=rds).announced == "already announced"  # type: ignore[union-attr]


# --- rollback, reject, failures -------------------------------------------------------------------------


def test_rollback_goes_back_to_the_previous_champion_and_says_so(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    v1, v2 = make_version(), make_version()
    with pytest.raises(NoChampionError, match=r"BTC_USDT 1h has no previous champion.*there is no champion"):
        rollback("btc/usdt", "1h", registry=registry, client=rds)
    promote_version(v1, "gate", registry=registry, client=rds)
    with pytest.raises(NoChampionError, match=f"BTC_USDT 1h .*{v1} was the first"):
        rollback("BTC_USDT", "1h", registry=registry, client=rds)
    promote_version(v2, "gate", registry=registry, client=rds)
    nudges = rds.pubsub(ignore_subscribe_messages=True)
    nudges.subscribe(promoted_channel("BTC_USDT", "1h"))
    try:
        nudges.get_message(timeout=1)  # the subscription confirmation
        back = rollback("BTC_USDT", "60m", registry=registry, client=rds)
        message = nudges.get_message(timeout=5)
    finally:
        nudges.close()
    assert (back.version, back.previous_version, back.reason, back.event) == (v1, v2, "rollback", "rollback")
    assert message is not None
    assert json.loads(message["data"])["event"] == "rollback"
    assert json.loads(message["data"])["previous_version"] == v2
    assert pointer(settings) == v1
    key = read_champion(rds, "BTC_USDT", "1h")
    assert key is not None and key["version"] == v1
    assert events(rds)[-1][0] == "rollback"
    assert registry.champions.history("BTC_USDT", "1h")[0].reason.value == "rollback"


def test_a_rejected_version_is_recorded_and_only_promoted_by_hand(
    registry: Registry, rds: redis.Redis, make_version: Callable[..., str]
) -> None:
    v1, v2 = make_version(), make_version()
    promote_version(v1, "gate", registry=registry, client=rds)
    rejected = reject_version(v2, FAILED_REPORT, registry=registry, client=rds)
    assert rejected.status is VersionStatus.REJECTED and rejected.gate_report == FAILED_REPORT
    event, data = events(rds)[-1]
    assert event == "rejected"
    assert (data["version"], data["failed"]) == (v2, ["logloss_vs_prior", "min_sharpe"])
    with pytest.raises(PromotionRefusedError, match="rejected by its gates"):
        promote_version(v2, "gate", registry=registry, client=rds)
    assert promote_version(v2, "manual", registry=registry, client=rds).reason == "manual"


def test_a_failed_run_becomes_an_event(registry: Registry, rds: redis.Redis) -> None:
    rid = registry.runs.create("ETH_USDT", "5m", "schedule").id
    registry.runs.fail(rid, "ValueError: bad bars", failed_model="xgb_deep")
    entry = record_failure(registry.runs.get(rid), client=rds)
    [(entry_id, fields)] = rds.xrange(EVENTS_STREAM)
    assert entry_id == entry and fields["event"] == "failed"
    assert json.loads(fields["data"]) == {
        "run_id": rid,
        "symbol": "ETH_USDT",
        "timeframe": "5m",
        "model": "xgb_deep",
        "error": "ValueError: bad bars",
    }


def test_gate_summary_reads_lists_maps_and_missing_reports() -> None:
    assert gate_summary(None).describe() == ""
    assert gate_summary(FAILED_REPORT).describe() == "failed: logloss_vs_prior, min_sharpe"
    assert gate_summary(PASSED_REPORT).describe() == "passed"
    by_name = {"checks": {"ece": {"passed": True}, "sharpe": {"passed": False}}}
    assert (gate_summary(by_name).passed, gate_summary(by_name).failed) == (False, ("sharpe",))
    assert gate_summary({"note": "no checks"}).passed is None


# --- retention --------------------------------------------------------------------------------------------


def test_prune_keeps_newest_champion_and_previous_champion(
    registry: Registry, rds: redis.Redis, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    ids = [make_version() for _ in range(8)]  # v01 (oldest) .. v08
    promote_version("v02", "gate", registry=registry, client=rds)
    promote_version("v03", "gate", registry=registry, client=rds)  # champion v03, previous champion v02
    packs = settings.artifacts_dir / "BTC_USDT" / "1h"
    result = prune("BTC_USDT", "1h", keep=3, registry=registry)
    assert result.pruned == result.deleted == ["v05", "v04", "v01"]
    kept = {"v02", "v03", "v06", "v07", "v08"}
    assert {p.name for p in packs.iterdir() if p.is_dir()} == kept
    assert pointer(settings) == "v03"
    assert {v.version for v in registry.versions.of_market("BTC_USDT", "1h") if v.pruned_at} == set(
        ids
    ) - kept
    assert prune("BTC_USDT", "1h", keep=3, registry=registry).deleted == []
    with pytest.raises(ArtifactError, match=r"no manifest\.json"):
        promote_version("v04", "manual", registry=registry, client=rds)
    # Default keep: the [retention] config (5): v06..v08 plus champion and previous are all kept now.
    assert prune("BTC_USDT", "1h", registry=registry).keep == settings.load_config().retention.keep_versions


def test_prune_finishes_an_interrupted_deletion_and_refuses_odd_paths(
    registry: Registry, settings: FarmSettings, make_version: Callable[..., str]
) -> None:
    for _ in range(3):
        make_version()
    marked = registry.champions.mark_pruned(
        "BTC_USDT", "1h", keep=1
    )  # as if the process died before deleting
    assert [v.version for v in marked] == ["v02", "v01"]
    assert prune("BTC_USDT", "1h", keep=1, registry=registry).deleted == ["v02", "v01"]
    run = registry.runs.create("BTC_USDT", "1h", "test").id
    odd = settings.home / "precious"
    (odd / "x").mkdir(parents=True)
    registry.versions.add("v00", "BTC_USDT", "1h", run, metrics={}, path=str(odd), manifest_sha256="0" * 64)
    make_version()  # v04; newest first now: v04, v00, v03 (v02, v01 pruned)
    with pytest.raises(ArtifactError, match=f"refusing to delete .*{odd} \\(v00\\)"):
        prune("BTC_USDT", "1h", keep=1, registry=registry)
    assert (odd / "x").is_dir()
    assert not (settings.artifacts_dir / "BTC_USDT" / "1h" / "v03").exists()  # the rest went on
    assert not list((settings.artifacts_dir / "BTC_USDT" / "1h").glob(".pruning-*"))


# --- CLI ----------------------------------------------------------------------------------------------------

runner = CliRunner()


def farm(*args: str) -> Any:
    from trainfarm.cli.app import app

    result = runner.invoke(app, [*args])
    assert result.exit_code == 0, (result.stdout, result.exception)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def test_cli_promote_rollback_and_models(
    registry: Registry, server: EmbeddedRedis, make_version: Callable[..., str]
) -> None:
    v1, v2, v3 = make_version(), make_version(), make_version()
    registry.champions.reject(v3, FAILED_REPORT)
    shown = farm("promote", v1, "--json")
    assert (shown["version"], shown["previous_version"], shown["reason"]) == (v1, None, "manual")
    assert f"-> {v2} (manual)" in farm("promote", v2)
    assert "is the champion already" in farm("promote", v2)
    back = farm("rollback", "BTC/USDT", "1h", "--json")
    assert (back["version"], back["previous_version"], back["event"]) == (v1, v2, "rollback")

    listed = {v["version"]: v for v in farm("models", "BTC_USDT", "1h", "--json")}
    assert [v["champion"] for v in listed.values()] == [False, False, True]  # newest first: v3, v2, v1
    assert listed[v3]["status"] == "rejected" and listed[v3]["gate_report"] == FAILED_REPORT
    assert listed[v3]["gates"] == {"passed": False, "failed": ["logloss_vs_prior", "min_sharpe"]}
    assert listed[v1]["gates"] == {"passed": None, "failed": []}
    table = farm("models", "BTC_USDT", "1h")
    assert "failed: logloss_vs_prior, min_sharpe" in table
    assert f"champion: {v1}; `farm rollback` returns to {v2}" in table


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["promote", "nope"], "no version 'nope'"),
        (["rollback", "ETH/USDT", "24h"], "ETH_USDT 24h has no previous champion"),
        (["promote", "v01"], "sha256"),
    ],
)
def test_cli_errors_are_one_line(
    registry: Registry,
    server: EmbeddedRedis,
    settings: FarmSettings,
    make_version: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    needle: str,
) -> None:
    from trainfarm.cli.app import main

    make_version()
    (settings.artifacts_dir / "BTC_USDT" / "1h" / "v01" / "calibrator.json").write_text("{ }")
    monkeypatch.setattr("sys.argv", ["farm", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err and "Traceback" not in err and err.count("\n") == 1
