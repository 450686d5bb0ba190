"""The registry: run lifecycle, idempotent base results under concurrency, versions, listings, CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError
from typer.testing import CliRunner

from tests.support.concurrency import in_threads, on_own_engine
from trainfarm.shared.errors import FarmError
from trainfarm.shared.registry import (
    AmbiguousRunIdError,
    Registry,
    RegistryConflictError,
    RunKind,
    RunNotFoundError,
    RunStatus,
    VersionNotFoundError,
    metric,
)
from trainfarm.shared.registry import models as m
from trainfarm.shared.settings import get_settings

SHA = "ab" * 32


def add_version(registry: Registry, run_id: str, version: str, **metrics: Any) -> m.VersionRecord:
    return registry.versions.add(
        version, "BTC/USDT", "1h", run_id, metrics=metrics, path=f"/packs/{version}", manifest_sha256=SHA
    )


# --- runs --------------------------------------------------------------------------------------------


def test_create_and_get_a_run(registry: Registry) -> None:
    run = registry.runs.create("btc/usdt", "60m", "no champion")
    assert len(run.id) == 32 and int(run.id, 16) >= 0
    assert (run.symbol, run.timeframe, run.reason, run.status) == ("BTC_USDT", "1h", "no champion", "queued")
    assert run.created_at.tzinfo is UTC and run.started_at is None and run.seconds is None
    assert registry.runs.get(run.id) == run
    with pytest.raises(RunNotFoundError) as info:
        registry.runs.get("0" * 32)
    assert isinstance(info.value, FarmError)


def test_explicit_run_id_is_idempotent_for_the_same_market(registry: Registry) -> None:
    first = registry.runs.create("BTC_USDT", "1h", "forced", run_id="a" * 32)
    assert registry.runs.create("BTC/USDT", "1h", "again", run_id="a" * 32) == first
    with pytest.raises(RegistryConflictError):
        registry.runs.create("ETH_USDT", "1h", "forced", run_id="a" * 32)
    with pytest.raises(FarmError, match="invalid run id"):
        registry.runs.create("BTC_USDT", "1h", "forced", run_id="../x")


def test_run_lifecycle_sets_times_once(registry: Registry, new_run: Callable[..., str]) -> None:
    rid = new_run()
    assert registry.runs.set_status(rid, "preparing", celery_task_id="task-1")
    started = registry.runs.get(rid).started_at
    assert started is not None
    assert registry.runs.set_status(
        rid, RunStatus.TRAINING, snapshot_hash="h" * 64, snapshot_path="/s.parquet", config_hash="c1"
    )
    assert registry.runs.set_status(rid, "meta")
    run = registry.runs.get(rid)
    assert run.status == "meta" and run.started_at == started and run.finished_at is None
    assert (run.snapshot_hash, run.snapshot_path, run.config_hash, run.celery_task_id) == (
        "h" * 64,
        "/s.parquet",
        "c1",
        "task-1",
    )
    with pytest.raises(ValueError, match=r"versions\.add"):
        registry.runs.set_status(rid, "succeeded")
    with pytest.raises(ValueError):
        registry.runs.set_status(rid, "exploded")


def test_a_failed_run_never_moves_and_keeps_its_first_error(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()
    registry.runs.set_status(rid, "training")
    assert registry.runs.fail(rid, "xgb: bad objective", failed_model="xgb_shallow") is True
    failed = registry.runs.get(rid)
    assert failed.status == "failed" and failed.finished_at is not None and failed.seconds is not None
    assert registry.runs.fail(rid, "chord errback: timeout") is False
    assert registry.runs.set_status(rid, "training") is False
    with pytest.raises(RegistryConflictError):
        add_version(registry, rid, "v1")
    assert registry.runs.get(rid) == failed
    assert registry.versions.of_market("BTC_USDT", "1h") == []


def test_a_queued_run_can_fail_without_starting(registry: Registry, new_run: Callable[..., str]) -> None:
    rid = new_run()
    assert registry.runs.fail(rid, "could not enqueue")
    run = registry.runs.get(rid)
    assert run.status == "failed" and run.error == "could not enqueue" and run.started_at is not None


def test_concurrent_failures_keep_exactly_one_error(
    db_url: str, registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()
    outcomes = in_threads(6, lambda i: (i, on_own_engine(db_url, lambda r: r.runs.fail(rid, f"error {i}"))))
    winners = [i for i, won in outcomes if won]
    assert len(winners) == 1
    assert registry.runs.get(rid).error == f"error {winners[0]}"


def test_the_schema_refuses_a_succeeded_run_without_a_version(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()
    with pytest.raises(IntegrityError), registry.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'succeeded' WHERE id = :id"), {"id": rid})


def test_list_runs_newest_first_with_filters(registry: Registry, new_run: Callable[..., str]) -> None:
    first = new_run("BTC_USDT", "1h")
    registry.runs.fail(first, "ended, so that its market can run again")
    ids = [first, new_run("ETH_USDT", "1h"), new_run("BTC_USDT", "24h"), new_run()]
    assert [r.id for r in registry.runs.newest()] == ids[::-1]
    assert [r.id for r in registry.runs.newest(symbol="btc/usdt")] == [ids[3], ids[2], ids[0]]
    assert [r.id for r in registry.runs.newest(timeframe="1d")] == [ids[2]]
    assert [r.id for r in registry.runs.newest("BTC_USDT", "1h", limit=1)] == [ids[3]]
    assert registry.runs.newest("SOL_USDT") == []


def test_read_many_runs_at_once(registry: Registry, new_run: Callable[..., str]) -> None:
    first = new_run("BTC_USDT", "1h", "schedule")
    second = new_run("ETH_USDT", "1h", "cli")
    found = registry.runs.get_many([second, first, first, "no-such-run"])
    assert set(found) == {first, second}  # unknown ids are left out, repeated ones read once
    assert (found[first].symbol, found[first].reasons) == ("BTC_USDT", ["schedule"])
    assert registry.runs.get_many([]) == {}


def test_the_newest_run_of_each_market_and_kind(registry: Registry, new_run: Callable[..., str]) -> None:
    """What the metrics export so that Prometheus sees a market no fan-out has reached for a cadence."""
    older = new_run("btc/usdt", "1h")
    registry.runs.fail(older, "ended")
    newer = new_run("BTC_USDT", "1h")
    registry.runs.fail(newer, "ended")
    meta = registry.runs.create("BTC_USDT", "1h", "schedule", kind=RunKind.META)
    other = new_run("ETH_USDT", "24h")
    assert registry.runs.newest_created() == {
        ("BTC_USDT", "1h", "full"): registry.runs.get(newer).created_at,
        ("BTC_USDT", "1h", "meta"): meta.created_at,
        ("ETH_USDT", "24h", "full"): registry.runs.get(other).created_at,
    }
    assert registry.runs.get(older).created_at < registry.runs.get(newer).created_at
    assert all(at.tzinfo is not None for at in registry.runs.newest_created().values())


def test_find_run_by_unique_prefix(registry: Registry) -> None:
    a = registry.runs.create("BTC_USDT", "1h", "forced", run_id="abc1" + "0" * 28).id
    registry.runs.create("ETH_USDT", "1h", "forced", run_id="abc2" + "0" * 28)
    assert registry.runs.find("ABC1").id == a
    assert registry.runs.find(a).id == a
    with pytest.raises(AmbiguousRunIdError):
        registry.runs.find("abc")
    for missing in ("fff", "a%", "a_c"):
        with pytest.raises(RunNotFoundError):
            registry.runs.find(missing)


def test_times_are_utc_and_naive_ones_are_refused(db_url: str) -> None:
    tokyo = timezone(timedelta(hours=9))
    registry = Registry.open(db_url, clock=lambda: datetime(2026, 3, 1, 9, 0, tzinfo=tokyo))
    run = registry.runs.get(registry.runs.create("BTC_USDT", "1h", "forced").id)
    assert run.created_at == datetime(2026, 3, 1, 0, 0, tzinfo=UTC) and run.created_at.tzinfo is UTC
    naive = Registry.open(db_url, clock=lambda: datetime(2026, 3, 1))
    with pytest.raises(StatementError, match="naive datetime"):
        naive.runs.create("BTC_USDT", "1h", "forced")


# --- base results ------------------------------------------------------------------------------------


def test_base_result_lifecycle_is_idempotent(registry: Registry, new_run: Callable[..., str]) -> None:
    rid = new_run()
    started = registry.runs.base_started(rid, "lgbm_fast", "lightgbm", "cuda", "gpu-1")
    assert (started.status, started.family, started.device, started.worker) == (
        "running",
        "lightgbm",
        "cuda",
        "gpu-1",
    )
    done = registry.runs.base_finished(
        rid, "lgbm_fast", seconds=12.5, metrics={"test_logloss": 0.91, "auc": 0.6}
    )
    assert done.status == "succeeded" and done.seconds == 12.5 and done.test_logloss == 0.91
    assert done.family == "lightgbm" and done.finished_at is not None
    # A redelivered task: starting, finishing or failing again leaves the first success as it was.
    registry.runs.base_started(rid, "lgbm_fast", "lightgbm", "cpu", "cpu-2")
    registry.runs.base_finished(rid, "lgbm_fast", seconds=99.0, metrics={"test_logloss": 2.0})
    registry.runs.base_failed(rid, "lgbm_fast", "worker lost")
    assert registry.runs.base_results(rid) == [done]


def test_base_failure_keeps_the_first_error_and_a_retry_restarts(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()
    registry.runs.base_started(rid, "xgb_shallow", "xgboost", "cpu", "w1")
    first = registry.runs.base_failed(rid, "xgb_shallow", "XGBoostError: bad objective")
    assert registry.runs.base_failed(rid, "xgb_shallow", "second") == first
    assert first.status == "failed" and first.error == "XGBoostError: bad objective"
    retry = registry.runs.base_started(rid, "xgb_shallow", "xgboost", "cpu", "w2")
    assert (retry.status, retry.error, retry.worker, retry.finished_at) == ("running", None, "w2", None)
    # A failure or finish without a recorded start still gives one row (family unknown).
    orphan = registry.runs.base_finished(rid, "cat_deep", seconds=1.0, metrics={})
    assert orphan.family is None and orphan.status == "succeeded"
    assert [r.model for r in registry.runs.base_results(rid)] == ["cat_deep", "xgb_shallow"]


def test_base_results_need_a_known_run(registry: Registry) -> None:
    with pytest.raises(RunNotFoundError):
        registry.runs.base_started("f" * 32, "lgbm_fast", "lightgbm", "cpu", "w")
    with pytest.raises(RunNotFoundError):
        registry.runs.base_results("f" * 32)


def test_metrics_are_stored_as_plain_json(registry: Registry, new_run: Callable[..., str]) -> None:
    import numpy as np

    rid = new_run()
    metrics = {
        "logloss": float("nan"),
        "n": np.int64(3),
        "f": np.float32(0.5),
        "per_class": (1.0, float("inf")),
    }
    stored = registry.runs.base_finished(rid, "m", seconds=1, metrics=metrics).metrics
    assert stored == {"logloss": None, "n": 3, "f": 0.5, "per_class": [1.0, None]}
    json.dumps(registry.runs.base_results(rid)[0].to_json(), allow_nan=False)
    with pytest.raises(ValueError, match=r"metrics\.bad"):
        registry.runs.base_finished(rid, "m2", seconds=1, metrics={"bad": object()})


def test_concurrent_finishes_of_one_model_leave_one_row(
    db_url: str, registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()
    registry.runs.base_started(rid, "lgbm_fast", "lightgbm", "cpu", "w0")

    def finish(i: int) -> m.BaseResultRecord:
        return on_own_engine(
            db_url, lambda r: r.runs.base_finished(rid, "lgbm_fast", seconds=float(i), metrics={"i": i})
        )

    records = in_threads(8, finish)
    stored = registry.runs.base_results(rid)
    assert len(stored) == 1 and stored[0].status == "succeeded"
    assert {r.metrics["i"] for r in records} == {stored[0].metrics["i"]}  # every caller saw the winner


def test_concurrent_first_finishes_without_a_start_leave_one_row(
    db_url: str, registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()
    in_threads(
        8,
        lambda i: on_own_engine(
            db_url, lambda r: r.runs.base_finished(rid, f"m{i % 2}", seconds=1, metrics={})
        ),
    )
    assert [r.model for r in registry.runs.base_results(rid)] == ["m0", "m1"]


# --- versions ----------------------------------------------------------------------------------------


def test_add_version_marks_the_run_succeeded(registry: Registry, new_run: Callable[..., str]) -> None:
    rid = new_run()
    registry.runs.set_status(rid, "meta")
    version = add_version(registry, rid, "20260101T000000Z-ab12cd", meta={"logloss": 0.9})
    run = registry.runs.get(rid)
    assert (run.status, run.version, run.error) == ("succeeded", version.version, None)
    assert run.finished_at == version.created_at
    assert (version.status, version.symbol, version.timeframe, version.run_id) == (
        "candidate",
        "BTC_USDT",
        "1h",
        rid,
    )
    assert version.meta_logloss == 0.9 and version.prior_logloss is None
    assert registry.versions.get(version.version) == version
    assert add_version(registry, rid, version.version) == version  # a redelivered meta task
    assert registry.runs.fail(rid, "late errback") is False
    with pytest.raises(RegistryConflictError, match="has ended"):
        add_version(registry, rid, "another")
    with pytest.raises(VersionNotFoundError):
        registry.versions.get("nope")


def test_add_version_is_one_transaction(
    registry: Registry, new_run: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = new_run()

    def boom(row: m.Version) -> m.VersionRecord:
        raise RuntimeError("crash after the insert, before the commit")

    monkeypatch.setattr(m.VersionRecord, "from_row", boom)
    with pytest.raises(RuntimeError):
        add_version(registry, rid, "v1")
    monkeypatch.undo()
    assert registry.runs.get(rid).status == "queued" and registry.versions.of_market("BTC_USDT", "1h") == []


def test_add_version_refuses_another_market_or_a_taken_id(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    rid, other = new_run(), new_run("BTC_USDT", "24h")
    with pytest.raises(RegistryConflictError, match="trains BTC_USDT 1h"):
        registry.versions.add("v", "ETH_USDT", "1h", rid, metrics={}, path="/p", manifest_sha256=SHA)
    add_version(registry, rid, "v1")
    with pytest.raises(RegistryConflictError, match="exists already"):
        registry.versions.add("v1", "BTC_USDT", "24h", other, metrics={}, path="/p", manifest_sha256=SHA)
    assert registry.runs.get(other).status == "queued"


def test_concurrent_versions_for_one_run_have_one_winner(
    db_url: str, registry: Registry, new_run: Callable[..., str]
) -> None:
    rid = new_run()

    def attempt(i: int) -> str:
        try:
            return on_own_engine(db_url, lambda r: add_version(r, rid, f"v{i}").version)
        except RegistryConflictError:
            return ""

    winners = [v for v in in_threads(4, attempt) if v]
    assert len(winners) == 1
    assert registry.runs.get(rid).version == winners[0]


def test_list_versions_newest_first(registry: Registry, new_run: Callable[..., str]) -> None:
    made = [add_version(registry, new_run(), f"v{i}").version for i in range(3)]
    registry.versions.add(
        "e1", "ETH_USDT", "1h", new_run("ETH_USDT"), metrics={}, path="/p", manifest_sha256=SHA
    )
    assert [v.version for v in registry.versions.of_market("btc/usdt", "60m")] == made[::-1]


def test_the_schema_allows_one_champion_per_market(registry: Registry, new_run: Callable[..., str]) -> None:
    for i in range(2):
        add_version(registry, new_run(), f"v{i}")
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE versions SET status = 'champion' WHERE id = 'v0'"))
    with pytest.raises(IntegrityError), registry.engine.begin() as conn:
        conn.execute(text("UPDATE versions SET status = 'champion' WHERE id = 'v1'"))


def test_metric_accessor_reads_flat_or_nested_numbers() -> None:
    metrics: dict[str, object] = {
        "meta": {"logloss": 0.8},
        "prior_logloss": 1.1,
        "flag": True,
        "nan": float("nan"),
    }
    assert metric(metrics, *m.META_LOGLOSS) == 0.8
    assert metric(metrics, *m.PRIOR_LOGLOSS) == 1.1
    assert metric(metrics, "flag", "nan", "missing", ("meta", "missing")) is None


# --- CLI ---------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_registry(farm_home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The registry the CLI will open: FARM_DATABASE_URL points at the test database."""
    monkeypatch.setenv("FARM_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return Registry.open()


def farm_json(*args: str) -> Any:
    from trainfarm.cli.app import app

    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.stdout, result.exception)
    return json.loads(result.stdout)


def test_cli_lists_runs_and_shows_one(cli_registry: Registry) -> None:
    rid = cli_registry.runs.create("BTC_USDT", "1h", "forced").id
    cli_registry.runs.base_started(rid, "lgbm_fast", "lightgbm", "cpu", "w1")
    cli_registry.runs.base_finished(rid, "lgbm_fast", seconds=3.0, metrics={"test_logloss": 0.95})
    failed = cli_registry.runs.create("ETH_USDT", "24h", "schedule").id
    cli_registry.runs.fail(failed, "boom", failed_model="xgb_shallow")

    rows = farm_json("runs")
    assert isinstance(rows, list) and [r["id"] for r in rows] == [failed, rid]
    assert set(rows[0]) >= {"id", "symbol", "timeframe", "reason", "status", "error", "failed_model"}
    assert (
        farm_json("runs", "--symbol", "eth/usdt", "--timeframe", "1d", "--limit", "5")[0]["status"]
        == "failed"
    )
    shown = farm_json("runs", "show", rid[:6])
    assert shown["id"] == rid and [r["model"] for r in shown["models"]] == ["lgbm_fast"]
    assert shown["models"][0]["metrics"] == {"test_logloss": 0.95}

    from trainfarm.cli.app import app

    table = runner.invoke(app, ["runs"])
    assert table.exit_code == 0 and rid[:8] in table.stdout and "xgb_shallow: boom" in table.stdout
    detail = runner.invoke(app, ["runs", "show", rid])
    assert detail.exit_code == 0 and "lgbm_fast" in detail.stdout and "0.95" in detail.stdout


def test_cli_lists_versions(cli_registry: Registry) -> None:
    from trainfarm.cli.app import app

    assert farm_json("models", "BTC/USDT", "1h") == []
    rid = cli_registry.runs.create("BTC_USDT", "1h", "forced").id
    add_version(cli_registry, rid, "20260101T000000Z-ab12cd", meta={"logloss": 0.9}, prior={"logloss": 1.0})
    versions = farm_json("models", "btc_usdt", "60m")
    assert [v["version"] for v in versions] == ["20260101T000000Z-ab12cd"]
    assert set(versions[0]) >= {"version", "symbol", "timeframe", "status", "metrics"}
    assert versions[0]["metrics"]["meta"] == {"logloss": 0.9}
    table = runner.invoke(app, ["models", "BTC_USDT", "1h"])
    assert table.exit_code == 0 and "candidate" in table.stdout and "0.9" in table.stdout


def test_cli_errors_print_one_line_and_exit_1(
    cli_registry: Registry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainfarm.cli.app import main

    for argv in (["runs", "show", "ffff"], ["models", "../x", "1h"], ["runs", "--timeframe", "2h"]):
        monkeypatch.setattr("sys.argv", ["farm", *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err and err.count("\n") == 1


def test_the_newest_versions_of_a_market_can_be_read_alone(
    registry: Registry, new_run: Callable[..., str]
) -> None:
    made = [add_version(registry, new_run(), f"v{i}").version for i in range(5)]
    assert [v.version for v in registry.versions.of_market("BTC_USDT", "1h", limit=2)] == made[::-1][:2]
    assert len(registry.versions.of_market("BTC_USDT", "1h", limit=None)) == 5
