"""`farm replay`: SYMBOL runs a replay, list/show/resume/delete are commands; bad requests get one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from trainfarm.cli.app import app, main
from trainfarm.shared.registry import Registry
from trainfarm.shared.replay.metrics import POLICIES

runner = CliRunner()


@pytest.fixture
def small_btc(sample_dir: Path, tmp_path: Path, farm_home: Path) -> Path:
    path = tmp_path / "btc.parquet"
    pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet").head(288 * 40).write_parquet(path)
    assert runner.invoke(app, ["data", "import", str(path), "--symbol", "BTC/USDT"]).exit_code == 0
    return path


def test_list_is_a_command_not_a_symbol(farm_home: Path) -> None:
    result = runner.invoke(app, ["replay", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_help_names_the_run_form_and_the_commands(farm_home: Path) -> None:
    result = runner.invoke(app, ["replay", "--help"])
    assert result.exit_code == 0
    for command in ("run", "list", "show", "resume", "delete"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["DOGE/USDT", "-t", "1h", "--start", "2023-03-10", "--end", "2023-03-20"],
            "no stored bars of DOGE_USDT",
        ),
        (
            ["BTC/USDT", "-t", "1h", "--start", "2023-03-10", "--end", "2023-05-20"],
            "must lie inside the stored bars",
        ),
        (
            ["BTC/USDT", "-t", "1h", "--start", "2023-03-10", "--end", "2023-03-20", "--cadence", "90m"],
            "whole number",
        ),
        (
            ["BTC/USDT", "-t", "1h", "--start", "March", "--end", "2023-03-20"],
            "--start 'March' is not a date",
        ),
        (["show", "ffff0000"], "no replay 'ffff0000'"),
    ],
)
def test_bad_requests_exit_1_with_one_line_and_record_nothing(
    small_btc: Path,
    args: list[str],
    problem: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.argv", ["farm", "replay", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and problem in err and "Traceback" not in err
    assert json.loads(runner.invoke(app, ["replay", "list", "--json"]).stdout) == []


def test_show_and_list_give_every_policy_of_a_finished_replay(farm_home: Path) -> None:
    registry = Registry.open()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    replay = registry.replays.create(
        "BTC_USDT",
        "1h",
        start=start,
        end=start + timedelta(days=30),
        cadence=timedelta(days=7),
        points=[start],
        config_hash="0" * 64,
    )
    sharpe = {p: 0.25 * (i + 1) for i, p in enumerate(POLICIES)}
    registry.replays.finish(replay.id, {"policies": {p: {"sharpe": s} for p, s in sharpe.items()}})
    shown = runner.invoke(app, ["replay", "show", replay.id], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if line.startswith("│")}
    assert set(POLICIES) <= set(rows), shown.stdout  # the shadow policy's row included
    listed = runner.invoke(app, ["replay", "list"], terminal_width=300)
    assert listed.exit_code == 0, listed.output
    assert "shadow sharpe" in listed.stdout and "1.25" in listed.stdout, listed.stdout
