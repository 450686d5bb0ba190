"""`farm replay`: SYMBOL runs a replay, list/show/resume/delete are commands; bad requests get one line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from trainfarm.cli.app import app, main

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
