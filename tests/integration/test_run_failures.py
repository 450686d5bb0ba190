"""A run that fails: a base model past its time limit, and the CLI's exit status by outcome.

Workers that die mid-run are the reliability suite's (tests/reliability/test_worker_loss.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import SYMBOL, TF, Farm, start_farm

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_model_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    # A million boosting rounds: lgbm_gbdt runs until its soft time limit stops it.
    extra = "[training.model_params.lgbm_gbdt]\nnum_iterations = 1000000\n"
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", extra, time_limit="20s")


def test_timed_out_base_model_fails_the_run_naming_it(slow_model_farm: Farm) -> None:
    from trainfarm.workers.tasks import submit_retrain

    run_id = submit_retrain(SYMBOL, TF, "timeout test").run_id
    assert slow_model_farm.wait_run(run_id, timeout=180) == "failed"
    run = slow_model_farm.registry().runs.get(run_id)
    assert run.failed_model == "lgbm_gbdt"
    assert (run.error and "timed out" in run.error.lower()) or "TimeLimit" in (run.error or "")
    assert slow_model_farm.registry().versions.of_market(SYMBOL, TF) == []


@pytest.fixture
def embedded_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded")


def test_cli_retrain_wait_reports_and_exits_by_outcome(embedded_farm: Farm) -> None:
    farm = embedded_farm
    cmd = [
        sys.executable,
        "-c",
        "from trainfarm.cli.app import main; main()",
        "retrain",
        "btc/usdt",
        "-t",
        TF,
        "--wait",
        "--timeout",
        "300",
        "--json",
    ]
    out = subprocess.run(cmd, env=farm.env, capture_output=True, text=True, timeout=400, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = json.loads(out.stdout)
    assert [r["status"] for r in runs] == ["succeeded"]
    assert {"id", "symbol", "timeframe", "reason", "status"} <= set(runs[0])
    listing = subprocess.run(
        [*cmd[:3], "runs", "--json"], env=farm.env, capture_output=True, text=True, timeout=60, check=True
    )
    assert [r["id"] for r in json.loads(listing.stdout)] == [runs[0]["id"]]
    models = subprocess.run(
        [*cmd[:3], "models", "BTC/USDT", TF, "--json"],
        env=farm.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions = json.loads(models.stdout)
    assert (
        len(versions) == 1 and versions[0]["status"] in ("champion", "rejected") and "metrics" in versions[0]
    )
    bad = subprocess.run(
        [*cmd[:3], "retrain", "NOPE/USDT", "-t", TF, "--force", "--wait"],
        env=farm.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1
    failed = farm.registry().runs.newest(symbol="NOPE_USDT")
    assert failed and failed[0].status == "failed" and "NOPE_USDT" in (failed[0].error or "")
