"""Faults during a run: a timed-out model, a killed pool process, and the CLI's exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.farms import SYMBOL, TF, Farm, start_farm
from trainfarm.workers.processes import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_model_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    # A million boosting rounds: lgbm_gbdt runs until its soft time limit stops it.
    extra = "[training.model_params.lgbm_gbdt]\nnum_iterations = 1000000\n"
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", extra, time_limit="20s")


@pytest.fixture
def seconds_model_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    # A few seconds per fit: long enough to kill the pool process in the middle of it.
    extra = (
        "[training.model_params.lgbm_gbdt]\nnum_iterations = 2500\nnum_leaves = 63\nmin_data_in_leaf = 2\n"
    )
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", extra)


def test_timed_out_base_model_fails_the_run_naming_it(slow_model_farm: Farm) -> None:
    from trainfarm.workers.tasks import submit_retrain

    run_id = submit_retrain(SYMBOL, TF, "timeout test").run_id
    assert slow_model_farm.wait_run(run_id, timeout=180) == "failed"
    run = slow_model_farm.registry().get_run(run_id)
    assert run.failed_model == "lgbm_gbdt"
    assert (run.error and "timed out" in run.error.lower()) or "TimeLimit" in (run.error or "")
    assert slow_model_farm.registry().list_versions(SYMBOL, TF) == []


def test_killed_pool_process_gets_its_task_redelivered(seconds_model_farm: Farm) -> None:
    from trainfarm.workers.tasks import submit_retrain

    farm = seconds_model_farm
    run_id = submit_retrain(SYMBOL, TF, "kill test").run_id
    reg = farm.registry()

    def lgbm_running() -> bool:
        return any(r.model == "lgbm_gbdt" and r.status == "running" for r in reg.base_results(run_id))

    wait_for(lgbm_running, 120, "lgbm_gbdt to start", farm.workers[0])
    proc = farm.workers[0].proc
    assert proc is not None
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the worker has no pool processes"
    for child in children:  # like the OOM killer taking the pool processes mid-task
        child.kill()
    assert farm.wait_run(run_id) == "succeeded", farm.workers[0].log()[-4000:]
    log = farm.workers[0].log()
    assert "WorkerLostError" in log or "Process 'ForkPoolWorker" in log
    results = {r.model: r for r in reg.base_results(run_id)}
    assert results["lgbm_gbdt"].status == "succeeded"
    # The killed task really ran twice: its delivery counter saw both starts.
    assert _deliveries(f"{run_id}-lgbm_gbdt") == 2
    assert len(reg.list_versions(SYMBOL, TF)) == 1


def _deliveries(task_id: str) -> int:
    from trainfarm.shared.connections import redis_client
    from trainfarm.workers.runs import deliveries

    client = redis_client()
    try:
        return deliveries(client, task_id)
    finally:
        client.close()


@pytest.fixture
def dies_before_launch_farm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
) -> Iterator[tuple[Farm, Path]]:
    """A farm whose worker's first prepare task dies right before launching its chord."""
    marker = tmp_path / "killed-before-launch"
    for farm in start_farm(tmp_path, monkeypatch, sample_dir, "embedded", start=False):
        farm.workers[0].app = "tests.integration.apps.dies_before_launch"
        farm.workers[0].env["TRAINFARM_TEST_KILL_MARKER"] = str(marker)
        farm.workers[0].start()
        yield farm, marker


def test_a_worker_dying_between_prepare_and_chord_launch_does_not_strand_the_run(
    dies_before_launch_farm: tuple[Farm, Path],
) -> None:
    from trainfarm.workers.tasks import submit_retrain

    farm, marker = dies_before_launch_farm
    run_id = submit_retrain(SYMBOL, TF, "dies before launch").run_id
    assert farm.wait_run(run_id) == "succeeded", farm.workers[0].log()[-4000:]
    assert marker.read_text() == run_id  # the fault did fire, in this run's prepare task
    assert _deliveries(f"{run_id}-prepare") == 2  # killed once, delivered again, went through
    assert len(farm.registry().list_versions(SYMBOL, TF)) == 1


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
    failed = farm.registry().list_runs(symbol="NOPE_USDT")
    assert failed and failed[0].status == "failed" and "NOPE_USDT" in (failed[0].error or "")
