"""The `farm` CLI: exit status, JSON listings, one-line errors naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from trainfarm.cli.app import app
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.settings import get_settings

runner = CliRunner()


def farm(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        # FarmErrors surface here; main() turns them into exit 1 (tested below through main()).
        return 1, result.stdout, str(result.exception)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def small_btc(sample_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "btc.parquet"
    pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet").head(288 * 40).write_parquet(path)
    return path


def test_import_list_check_json(farm_home: Path, small_btc: Path) -> None:
    code, out, _ = farm("data", "import", str(small_btc), "--symbol", "btc/usdt", "--json")
    assert code == 0, out
    assert json.loads(out)["symbol"] == "BTC_USDT"
    code, out, _ = farm("data", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == 1
    assert set(rows[0]) >= {"symbol", "first", "last", "rows", "gaps"}
    assert rows[0]["symbol"] == "BTC_USDT" and rows[0]["rows"] == 288 * 40
    assert rows[0]["first"].startswith("2023-03-01T00:00:00")
    code, out, _ = farm("data", "check", "BTC_USDT", "--json")
    assert code == 0 and json.loads(out)["rows"] == 288 * 40


def test_empty_store_lists_an_empty_array(farm_home: Path) -> None:
    code, out, _ = farm("data", "list", "--json")
    assert code == 0 and json.loads(out) == []


def test_errors_exit_nonzero_with_one_line(
    farm_home: Path, small_btc: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainfarm.cli.app import main

    for argv in (
        ["farm", "data", "import", str(small_btc), "--symbol", "../etc"],
        ["farm", "data", "check", "DOGE/USDT"],
        ["farm", "data", "import", str(small_btc.with_name("missing.parquet")), "--symbol", "BTC"],
    ):
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err
    assert not (farm_home / "data" / "ETC").exists()


def test_dataset_build_and_list(farm_home: Path, small_btc: Path) -> None:
    assert farm("data", "import", str(small_btc), "--symbol", "BTC_USDT")[0] == 0
    code, out, _ = farm("dataset", "build", "BTC/USDT", "--timeframe", "1h", "--json")
    assert code == 0, out
    built = json.loads(out)
    assert [b["timeframe"] for b in built] == ["1h"]
    code, out, _ = farm("dataset", "list", "--json")
    assert [s["content_hash"] for s in json.loads(out)] == [built[0]["content_hash"]]


def test_config_prints_json(farm_home: Path) -> None:
    code, out, _ = farm("config")
    assert code == 0
    payload = json.loads(out)
    assert payload["settings"]["redis"] == "embedded"
    assert set(payload["config"]["timeframes"]) == {"5m", "1h", "12h", "24h"}


def test_retrain_with_the_broker_down_says_so_in_one_line_and_strands_no_run(
    farm_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on 127.0.0.1:1: the run that could not be enqueued is failed, never left queued."""
    from trainfarm.cli.app import main
    from trainfarm.shared.registry import Registry
    from trainfarm.workers.celery_app import rebind

    monkeypatch.setenv("FARM_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    rebind()
    monkeypatch.setattr("sys.argv", ["farm", "retrain", "BTC/USDT", "--timeframe", "1h", "--force"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not enqueue the run of BTC_USDT 1h") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    [run] = Registry.open().runs.newest()
    assert run.status == "failed" and run.error is not None and "could not enqueue" in run.error
    assert Registry.open().runs.active("BTC_USDT", "1h") is None  # the market is free for the next try


def test_beat_runs_the_beat_app_with_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """`farm beat` execs `celery -A trainfarm.beat.app beat` (the app that carries the schedule)."""
    seen: list[list[str]] = []
    monkeypatch.setattr("os.execv", lambda path, argv: seen.append(list(argv)))
    code, _, _ = farm("beat", "--loglevel", "DEBUG")
    assert code == 0
    assert seen[0][1:] == ["-m", "celery", "-A", "trainfarm.beat.app", "beat", "-l", "DEBUG"]


def test_triggers_lists_every_market_and_policy(server: EmbeddedRedis) -> None:
    code, out, err = farm("triggers", "--json")
    assert code == 0, err
    rows = json.loads(out)
    config = get_settings().load_config()
    assert len(rows) == len(config.universe.symbols) * len(config.universe.timeframes)
    first = rows[0]
    policies = [p["policy"] for p in first["policies"]]
    assert policies == [
        "no_champion",
        "stale",
        "live_win_rate",
        "live_sharpe",
        "feature_drift",
        "calibration_drift",
        "train_serve_skew",
    ]
    assert first["policies"][0]["retrain"] is True and first["policies"][0]["cooldown_s"] == 0
    skew = first["policies"][-1]
    assert (skew["retrain"], skew["flagged"], skew["detail"]) == (False, False, "no champion")
    code, out, _ = farm("triggers")
    assert code == 0 and "no_champion" in out and "RETRAIN" in out


def test_schedule_lists_the_coming_fires(server: EmbeddedRedis) -> None:
    code, out, err = farm("schedule", "--days", "1", "--workers", "2", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["capacity"] == 2 and plan["capacity_source"] == "--workers"
    entries = {f["entry"] for f in plan["fires"]}
    config = get_settings().load_config()
    assert entries == {f"retrain-{tf.value}" for tf in config.universe.timeframes} | {"meta-5m", "meta-1h"}
    # 5m retrains every 6 h: never ran, so now, then three more within the day; its meta-only entry hourly.
    assert sum(f["entry"] == "retrain-5m" for f in plan["fires"]) == 5
    assert sum(f["entry"] == "meta-5m" for f in plan["fires"]) == 25
    assert all(f["work_s"] is None for f in plan["fires"])  # no finished run yet: unknown
    code, out, _ = farm("schedule", "--days", "1")  # no worker answers: one is assumed
    assert code == 0 and "retrain-24h" in out and "on 1 worker" in out


def test_status_prints_every_section(server: EmbeddedRedis) -> None:
    code, out, err = farm("status", "--json", "--timeout", "0.2")
    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"workers", "queues", "runs", "markets", "bots"}
    assert report["workers"] == []  # none running here
    assert all("skew" in market for market in report["markets"])  # None: no champion to check
    code, out, _ = farm("status", "--timeout", "0.2")
    assert code == 0 and "markets" in out and "queues: cpu 0" in out


def test_retrain_follows_the_trigger_policies_unless_forced(server: EmbeddedRedis) -> None:
    """Without --force only the markets a policy asks for are enqueued; --force enqueues, still merging."""
    from tests.support.markets import crown
    from trainfarm.shared.registry import Registry
    from trainfarm.workers.celery_app import rebind

    rebind()  # the Celery app follows this test's Redis (an earlier test may have bound it elsewhere)
    registry = Registry.open()
    crown(registry, "BTC_USDT", "1h")  # a fresh champion: no policy fires for BTC 1h
    code, out, err = farm("retrain", "BTC/USDT", "--json")
    assert code == 0, err
    asked = json.loads(out)
    assert sorted(r["timeframe"] for r in asked) == ["12h", "24h", "5m"]  # no champion yet there
    assert {r["kind"] for r in asked} == {"full"}
    assert registry.runs.get(asked[0]["id"]).reasons == ["cli:no_champion"]
    assert registry.runs.active("BTC_USDT", "1h") is None
    code, out, _ = farm("retrain", "BTC/USDT", "-t", "1h")
    assert code == 0 and "no trigger policy asks for a retrain (--force retrains anyway)" in out
    assert registry.runs.active("BTC_USDT", "1h") is None
    code, out, err = farm("retrain", "BTC/USDT", "-t", "1h", "--force", "--json")
    assert code == 0, err
    [forced] = json.loads(out)
    assert registry.runs.get(forced["id"]).reasons == ["cli:forced"] and not forced["merged"]
    code, out, _ = farm("retrain", "BTC/USDT", "-t", "1h", "--force", "--reason", "again", "--json")
    [again] = json.loads(out)
    assert again["merged"] and again["id"] == forced["id"]  # never two runs of one market at once
    assert registry.runs.get(forced["id"]).reasons == ["cli:forced", "again"]
    code, _, err = farm("retrain", "DOGE/USDT", "-t", "1h")
    assert code == 1 and "DOGE_USDT is not in the universe" in err and "--force" in err


def test_a_meta_only_retrain_without_a_champion_is_skipped_with_the_reason(server: EmbeddedRedis) -> None:
    code, out, err = farm("retrain", "ETH/USDT", "-t", "12h", "--meta", "--force")
    assert code == 0, err
    assert "meta-only retrain skipped: no champion" in out
    from trainfarm.shared.registry import Registry

    assert Registry.open().runs.active("ETH_USDT", "12h") is None


def test_farm_config_never_prints_a_secret(farm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "FARM_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0KEN-123",
        "FARM_ALERT_URLS": "tgram://123456:Tg-Secret-8/42 ntfys://farm:ntfy-Secret-6@ntfy.example.com/ops",
        "FARM_SMTP_PASSWORD": "smtp-Secret-9",
        "FARM_UI_PASSWORD": "ui-Secret-7",
        "FARM_REDIS_URL": "redis://:redis-Secret-5@127.0.0.1:6379/0",
        "FARM_DATABASE_URL": "postgresql://farm:db-Secret-3@127.0.0.1:5432/farm",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    code, out, err = farm("config")
    assert code == 0, err
    needles = ("T0KEN-123", "Tg-Secret-8", "ntfy-Secret-6", "smtp-Secret-9", "ui-Secret-7", "redis-Secret-5")
    for needle in (*needles, "db-Secret-3"):
        assert needle not in out
    shown = json.loads(out)["settings"]
    assert shown["alert_webhook_url"] == shown["smtp_password"] == shown["ui_password"] == "**********"
    assert shown["alert_urls"] == "**********"
