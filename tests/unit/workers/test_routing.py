"""Queue routing: one router decides every task's queue, from each model's declared device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.zoo import MODEL_NAMES, ZOO
from trainfarm.workers.routing import QUEUES, queue_for_task, route_task

GPU_CAPABLE = {"xgb_hist", "xgb_shallow", "cat_symmetric", "cat_depthwise"}


def _payload(model: str | None = None) -> dict[str, object]:
    payload: dict[str, object] = {"run_id": "a" * 32, "symbol": "BTC_USDT", "timeframe": "1h"}
    return payload | ({"model": model} if model else {})


def test_without_gpu_workers_every_model_goes_to_cpu(farm_home: Path) -> None:
    assert get_settings().gpu_workers is False  # the default: a quant's single machine has no GPU worker
    routed = {m: route_task("farm.train_base", (_payload(m),), {}, {})["queue"] for m in MODEL_NAMES}
    assert routed == dict.fromkeys(MODEL_NAMES, "cpu")


def test_with_gpu_workers_only_gpu_capable_models_go_to_gpu(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_GPU_WORKERS", "true")
    get_settings.cache_clear()
    routed = {m: route_task("farm.train_base", (_payload(m),), {}, {})["queue"] for m in MODEL_NAMES}
    assert {name for name, queue in routed.items() if queue == "gpu"} == GPU_CAPABLE
    # A replay point's base models go where a live run's go.
    replayed = {m: route_task("farm.replay_base", (_payload(m),), {}, {})["queue"] for m in MODEL_NAMES}
    assert replayed == routed
    for spec in ZOO:
        # A task from the gpu queue trains on the GPU; one from cpu on the CPU whatever the worker has.
        assert spec.effective_device("cuda" if routed[spec.name] == "gpu" else "cpu") == (
            "cuda" if spec.gpu_capable else "cpu"
        )


def test_the_meta_stage_and_control_tasks_have_their_own_queues(farm_home: Path) -> None:
    # A chord body is sent with the header's results first and its own payload last.
    assert route_task("farm.train_meta", ([{"model": "x"}], _payload()), {}, {}) == {"queue": "meta"}
    assert route_task("farm.meta_refit", (_payload(),), {}, {}) == {"queue": "meta"}  # a meta-only run
    assert route_task("farm.prepare_run", (_payload(),), {}, {}) == {"queue": "control"}
    assert route_task("farm.replay_meta", ([{"model": "x"}], _payload()), {}, {}) == {"queue": "meta"}
    assert route_task("farm.replay_prepare", (_payload(),), {}, {}) == {"queue": "control"}
    assert route_task("farm.something_new", (), {}, {}) == {"queue": "control"}


@pytest.mark.parametrize("payload", [None, {}, {"model": 3}, {"model": "rf_mystery"}])
def test_a_malformed_base_payload_still_gets_a_queue(payload: dict[str, object] | None) -> None:
    """The router never raises: the task itself refuses the payload with a clear error."""
    assert queue_for_task("farm.train_base", payload, gpu_workers=True) == "cpu"


_LAUNCH = """
from trainfarm.workers.payloads import SnapshotRef, StageJob
from trainfarm.workers.tasks import launch_chord
ref = SnapshotRef(path="datasets/x.json", file_sha256="0" * 64, content_hash="0" * 64)
launch_chord(StageJob(run_id="c" * 32, symbol="BTC_USDT", timeframe="1h", snapshot=ref, config_hash="0" * 64))
"""


def test_celery_sends_each_chord_message_where_the_router_says(
    settings: FarmSettings, rds: redis.Redis
) -> None:
    """A real chord launch into a real Redis (no worker): the header lands on gpu and cpu by device.

    Launched from a fresh interpreter, as a worker's prepare task would: the launching process keeps
    result subscriptions that must not outlive this test's Redis.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env |= {"FARM_HOME": str(settings.home), "FARM_GPU_WORKERS": "true"}
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCH], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    depth = {q: int(rds.llen(q)) for q in QUEUES}
    cpu = len(MODEL_NAMES) - len(GPU_CAPABLE)
    assert depth == {"cpu": cpu, "gpu": len(GPU_CAPABLE), "meta": 0, "control": 0}
