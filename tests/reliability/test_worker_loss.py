"""Workers that die mid-run: the run still completes once, with one meta stage and one version.

docs/RELIABILITY.md, "SIGKILL of a pool process during train_base" and "SIGKILL of a whole worker
(main process) mid-run", on real `celery worker` processes and a real Redis:

* the pool process training a base model is SIGKILLed (the OOM killer's usual victim). Celery
  redelivers the message (acks_late, reject_on_worker_lost), the farm's delivery counter sees the second
  start, the run completes with one meta stage and one version, and the champion does not move before the
  run has been gated;
* the whole worker (main process and pool) is SIGKILLed, as when its machine dies. Its
  unacknowledged messages go back to the queue after the broker's visibility timeout (15 s in this test's
  config, ``training.visibility_timeout``; an hour by default) and a second worker, started after the
  loss, finishes the run;
* a prepare task that dies between launching its chord and recording it is redelivered, launches again,
  and the run still completes once.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.farm import SYMBOL, TF, Farm, start_farm
from tests.support.packs import PACK_SYMBOL, PACK_TF, Version, register_pack
from tests.support.waiting import wait_until
from trainfarm.cli.processes import WorkerProcess

#: A few seconds per fit of lgbm_gbdt: long enough to kill its process in the middle of it.
SLOW_LGBM = "[training.model_params.lgbm_gbdt]\nnum_iterations = 800\nnum_leaves = 63\nmin_data_in_leaf = 2\n"
#: A short visibility timeout (above the task time limit, as the config requires): the test waits for it.
#: The line joins [training] (see tests/support/farm.py TEST_CONFIG).
SHORT_VISIBILITY = 'visibility_timeout = "15s"\n'
VISIBILITY_S = 15


def _deliveries(task_id: str) -> int:
    from trainfarm.shared.connections import redis_client
    from trainfarm.workers.runs import deliveries

    client = redis_client()
    try:
        return deliveries(client, task_id)
    finally:
        client.close()


@pytest.fixture(scope="module")
def champion_pack(btc_versions: list[Version]) -> Version:
    """A real pack of BTC_USDT 12h (shared, read only), to be copied in as the champion of a farm."""
    assert (PACK_SYMBOL, PACK_TF.value) == (SYMBOL, TF)
    return btc_versions[1]


def _install_champion(farm: Farm, pack: Version) -> str:
    """Copy ``pack`` into the farm's artifact root, register and promote it; returns its version id."""
    from trainfarm.shared.champions.publish import promote_version
    from trainfarm.shared.settings import get_settings

    target = get_settings().artifacts_dir / SYMBOL / TF / pack.version
    shutil.copytree(pack.path, target)
    registry = farm.registry()
    version = register_pack(registry, target, pack.manifest_sha256, "champion before the fault")
    promote_version(version)
    return version


@pytest.fixture
def slow_lgbm_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", SLOW_LGBM)


def test_a_killed_pool_process_is_redelivered_and_the_run_completes_once(
    slow_lgbm_farm: Farm, champion_pack: Version
) -> None:
    from trainfarm.workers.tasks import submit_retrain

    farm = slow_lgbm_farm
    champion = _install_champion(farm, champion_pack)
    run_id = submit_retrain(SYMBOL, TF, "kill a pool process").run_id
    reg = farm.registry()

    def lgbm_running() -> bool:
        return any(r.model == "lgbm_gbdt" and r.status == "running" for r in reg.runs.base_results(run_id))

    wait_until(lgbm_running, 120, "lgbm_gbdt to start", process=farm.workers[0], every=0.25)
    proc = farm.workers[0].proc
    assert proc is not None
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the worker has no pool processes"
    for child in children:  # like the OOM killer taking the pool processes mid-task
        child.kill()
    # Until the run ends, the champion stays where it was (sampled while the run recovers and finishes).
    deadline = time.monotonic() + 300
    while reg.runs.get(run_id).status not in ("succeeded", "failed") and time.monotonic() < deadline:
        current = reg.champions.get(SYMBOL, TF)
        if reg.runs.get(run_id).status not in ("succeeded", "failed"):
            assert current is not None and current.version == champion
        time.sleep(0.5)
    run = reg.runs.get(run_id)
    assert run.status == "succeeded", (run.error, farm.workers[0].log()[-4000:])
    log = farm.workers[0].log()
    assert "WorkerLostError" in log or "Process 'ForkPoolWorker" in log
    assert {r.model: r.status for r in reg.runs.base_results(run_id)}["lgbm_gbdt"] == "succeeded"
    assert _deliveries(f"{run_id}-lgbm_gbdt") == 2  # the killed task really ran twice
    assert _deliveries(f"{run_id}-meta") == 1  # one meta stage
    versions = [v for v in reg.versions.of_market(SYMBOL, TF) if v.run_id == run_id]
    assert len(versions) == 1 and run.version == versions[0].version
    # After the gates: the new version is champion when it passed, else the old one still is.
    now = reg.champions.get(SYMBOL, TF)
    assert now is not None
    passed = (versions[0].gate_report or {}).get("passed") is True
    assert now.version == (versions[0].version if passed else champion)


@pytest.fixture
def short_visibility_farm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
) -> Iterator[Farm]:
    # The hard time limit stays below the visibility timeout (the config refuses otherwise).
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", SHORT_VISIBILITY, time_limit="12s")


def test_a_killed_worker_loses_its_tasks_to_a_second_worker_after_the_visibility_timeout(
    short_visibility_farm: Farm, tmp_path: Path
) -> None:
    from trainfarm.shared.settings import get_settings
    from trainfarm.workers.tasks import submit_retrain

    farm = short_visibility_farm
    assert get_settings().load_config().training.visibility_timeout_s == VISIBILITY_S
    first = farm.workers[0]
    run_id = submit_retrain(SYMBOL, TF, "kill the worker").run_id
    reg = farm.registry()

    def training() -> bool:
        return any(r.status == "running" for r in reg.runs.base_results(run_id))

    wait_until(training, 120, "a base model to start", process=first, every=0.25)
    first.kill()  # SIGKILL to the main process and its pool: the machine is gone
    assert not first.alive()
    # Read after the kill: what was running then died with the worker and must run again elsewhere.
    lost = {r.model for r in reg.runs.base_results(run_id) if r.status == "running"}
    assert lost
    second = WorkerProcess(f"w{uuid.uuid4().hex[:6]}", farm.env, tmp_path, concurrency=2)
    farm.workers.insert(0, second)  # the one wait_run watches (and every worker is stopped afterwards)
    second.start()
    status = farm.wait_run(run_id, timeout=240)
    assert status == "succeeded", (reg.runs.get(run_id).error, second.log()[-3000:])
    results = {r.model: r for r in reg.runs.base_results(run_id)}
    assert all(r.status == "succeeded" for r in results.values())
    for model in lost:  # each task the dead worker held ran again, on the second worker
        assert _deliveries(f"{run_id}-{model}") == 2, model
        assert results[model].worker is not None and second.name in results[model].worker
    assert _deliveries(f"{run_id}-meta") == 1
    assert len([v for v in reg.versions.of_market(SYMBOL, TF) if v.run_id == run_id]) == 1


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
    assert len(farm.registry().versions.of_market(SYMBOL, TF)) == 1
