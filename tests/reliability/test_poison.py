"""A task that kills its worker every time stops after ``max_deliveries`` and fails its run, loudly.

docs/RELIABILITY.md, "A task that dies every time": no endless loop of redeliveries. The worker is a real
`celery worker` whose app SIGKILLs the pool process that trains one base model
(tests/integration/apps/dies_always.py); Celery redelivers the message each time (acks_late,
reject_on_worker_lost); the farm counts the deliveries (``farm:deliveries:<task id>``) and, past
``FARM_MAX_DELIVERIES``, fails the task for good, which fails the run naming the model and the reason. The
market is free again afterwards and nothing is promoted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import SYMBOL, TF, Farm, start_farm

POISON = "xgb_shallow"
MAX_DELIVERIES = 2


@pytest.fixture
def poisoned_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    monkeypatch.setenv("FARM_MAX_DELIVERIES", str(MAX_DELIVERIES))
    for farm in start_farm(tmp_path, monkeypatch, sample_dir, "embedded", start=False):
        worker = farm.workers[0]
        worker.app = "tests.integration.apps.dies_always"
        worker.env |= {"TRAINFARM_TEST_POISON_MODEL": POISON, "FARM_MAX_DELIVERIES": str(MAX_DELIVERIES)}
        worker.start()
        yield farm


def test_a_task_that_kills_every_worker_fails_its_run_after_the_delivery_cap(poisoned_farm: Farm) -> None:
    from trainfarm.shared.connections import redis_client
    from trainfarm.workers.runs import deliveries
    from trainfarm.workers.tasks import submit_retrain

    farm = poisoned_farm
    run_id = submit_retrain(SYMBOL, TF, "poison test").run_id
    registry = farm.registry()
    # Bounded: each delivery kills one pool process; the cap ends it after MAX_DELIVERIES + 1 starts.
    assert farm.wait_run(run_id, timeout=300) == "failed", farm.workers[0].log()[-4000:]
    run = registry.runs.get(run_id)
    assert run.error is not None and "delivered" in run.error and f"limit {MAX_DELIVERIES}" in run.error
    assert run.failed_model == POISON, (run.failed_model, run.error)
    client = redis_client()
    try:
        assert deliveries(client, f"{run_id}-{POISON}") == MAX_DELIVERIES + 1
    finally:
        client.close()
    assert registry.versions.of_market(SYMBOL, TF) == [] and registry.champions.get(SYMBOL, TF) is None
    assert registry.runs.active(SYMBOL, TF) is None  # the market may run again
    assert farm.workers[0].alive()
    log = farm.workers[0].log()
    assert "WorkerLostError" in log or "Process 'ForkPoolWorker" in log
