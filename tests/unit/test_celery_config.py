"""Celery settings that answer known failure modes, import hygiene of the worker and the library, routing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES, ZOO, queue_for
from tests.conftest import REPO_ROOT
from trainfarm.workers.celery_app import QUEUES, build_config

SYSTEM_URL = "redis://127.0.0.1:6379/5"
ML_LIBRARIES = ("lightgbm", "xgboost", "catboost", "sklearn")


@pytest.fixture
def url_home(farm_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A farm home with FARM_REDIS_URL set: building the config contacts and starts nothing."""
    monkeypatch.setenv("FARM_REDIS_URL", SYSTEM_URL)
    get_settings.cache_clear()
    return farm_home


def _with_time_limit(home: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "farm.toml"
    config.write_text(f'[training]\ntask_time_limit = "{limit}"\n')
    monkeypatch.setenv("FARM_CONFIG_FILE", str(config))
    get_settings.cache_clear()


def test_json_only_both_ways(url_home: Path) -> None:
    conf = build_config()
    assert conf["task_serializer"] == "json"
    assert conf["result_serializer"] == "json"
    assert conf["accept_content"] == ["json"]
    assert conf["result_accept_content"] == ["json"]


def test_a_task_whose_worker_dies_goes_back_to_the_queue(url_home: Path) -> None:
    conf = build_config()
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["worker_deduplicate_successful_tasks"] is True
    assert conf["task_allow_error_cb_on_chord_header"] is True


def test_broker_connection_is_retried_forever(url_home: Path) -> None:
    conf = build_config()
    assert "broker_connection_max_retries" in conf and conf["broker_connection_max_retries"] is None
    assert conf["broker_connection_retry_on_startup"] is True
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is True


@pytest.mark.parametrize("limit", [None, "5m", "30m", "2h", "1d", "10s", "11s", "40s"])
def test_time_limits_visibility_and_expiry_are_ordered(
    url_home: Path, monkeypatch: pytest.MonkeyPatch, limit: str | None
) -> None:
    from trainfarm.workers.tasks import FarmTask

    if limit is not None:
        _with_time_limit(url_home, monkeypatch, limit)
    conf = build_config()
    hard = conf["task_time_limit"]
    assert hard == get_settings().load_config().training.task_time_limit_s
    assert 0 < conf["task_soft_time_limit"] < hard
    for options in ("broker_transport_options", "result_backend_transport_options"):
        # Redis hands an unacknowledged task to another worker after the visibility timeout.
        assert conf[options]["visibility_timeout"] > hard, options
        assert conf[options]["visibility_timeout"] > FarmTask.retry_backoff_max, options  # ETA retries
    assert conf["result_expires"] > hard  # chord bookkeeping outlives the longest task


def test_queues(url_home: Path) -> None:
    conf = build_config()
    assert [q.name for q in conf["task_queues"]] == list(QUEUES) == ["cpu", "gpu", "meta", "control"]
    assert conf["task_default_queue"] == "control"


def test_a_configured_url_is_the_broker_and_starts_nothing(url_home: Path) -> None:
    conf = build_config()
    assert conf["broker_url"] == conf["result_backend"] == SYSTEM_URL
    assert not (url_home / "redis").exists()


def test_without_a_url_celery_uses_the_embedded_socket(farm_home: Path) -> None:
    server = embedded_redis()
    try:
        conf = build_config()
        assert server.is_running()
        expected = f"redis+socket://{server.socket_path}"
        assert conf["broker_url"] == conf["result_backend"] == expected
    finally:
        server.stop()
    assert not server.is_running()


# --- import hygiene (fresh interpreters) ---------------------------------------------------------------


def _python(code: str, home: Path, **env: str) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=base | {"FARM_HOME": str(home), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_WORKER_IMPORT = f"""
import json, sys
import trainfarm.workers.tasks
loaded = sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules)
from trainfarm.workers.celery_app import app
conf = app.conf  # the lazy defaults: computed now, from the settings
print(json.dumps({{
    "loaded": loaded,
    "serializer": conf.task_serializer,
    "accept": list(conf.accept_content),
    "acks_late": conf.task_acks_late,
    "prefetch": conf.worker_prefetch_multiplier,
    "broker": conf.broker_url,
    "visibility": conf.broker_transport_options["visibility_timeout"],
    "time_limit": conf.task_time_limit,
}}))
"""


def test_the_worker_parent_loads_no_ml_library(tmp_path: Path) -> None:
    """The Celery parent must not load LightGBM & co. (and their thread pools) before forking its pool."""
    home = tmp_path / "home"
    seen = _python(_WORKER_IMPORT, home, FARM_REDIS_URL=SYSTEM_URL)
    assert seen["loaded"] == []
    # The app really runs with build_config's settings (lazily, so importing starts no Redis).
    assert seen["serializer"] == "json" and seen["accept"] == ["json"]
    assert seen["acks_late"] is True and seen["prefetch"] == 1
    assert seen["broker"] == SYSTEM_URL
    assert seen["visibility"] > seen["time_limit"]
    assert not (home / "redis").exists()


_DOMAIN_IMPORT = """
import json, pkgutil, sys
import trainfarm.shared
for info in pkgutil.walk_packages(trainfarm.shared.__path__, "trainfarm.shared."):
    if not info.name.startswith("trainfarm.shared.registry.migrations.env"):
        __import__(info.name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("celery", "kombu", "billiard", "typer")
                        or m.startswith(("trainfarm.workers", "trainfarm.cli", "trainfarm.beat")))))
"""

_ORCHESTRATION_IMPORT = """
import json, sys
import trainfarm.workers.stages, trainfarm.workers.runs, trainfarm.workers.jobs, trainfarm.workers.routing
print(json.dumps(sorted(m for m in ("celery", "kombu", "billiard", "trainfarm.cli") if m in sys.modules)))
"""


def test_the_domain_library_imports_no_celery_and_nothing_above_it(tmp_path: Path) -> None:
    """Every module of trainfarm.shared, imported: no Celery, no workers, beat or CLI module comes along."""
    assert _python(_DOMAIN_IMPORT, tmp_path / "home") == []
    assert not (tmp_path / "home" / "redis").exists()


def test_the_run_orchestration_is_celery_free(tmp_path: Path) -> None:
    assert _python(_ORCHESTRATION_IMPORT, tmp_path / "home") == []


# --- routing -------------------------------------------------------------------------------------------


def _routes() -> dict[str, str]:
    """Queue of each model as launch_chord picks it: from the settings' gpu_workers flag."""
    return {spec.name: queue_for(spec, get_settings().gpu_workers) for spec in ZOO}


def test_without_gpu_workers_every_model_goes_to_cpu(farm_home: Path) -> None:
    assert get_settings().gpu_workers is False  # the default: a quant's single machine has no GPU worker
    assert _routes() == dict.fromkeys(MODEL_NAMES, "cpu")


def test_with_gpu_workers_only_gpu_capable_models_go_to_gpu(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_GPU_WORKERS", "true")
    get_settings.cache_clear()
    routed = _routes()
    assert {name for name, queue in routed.items() if queue == "gpu"} == {
        "xgb_hist",
        "xgb_shallow",
        "cat_symmetric",
        "cat_depthwise",
    }
    for spec in ZOO:
        assert routed[spec.name] == ("gpu" if spec.gpu_capable else "cpu")
        # A task from the gpu queue trains on the GPU; one from cpu on the CPU whatever the worker has.
        assert spec.effective_device("cuda" if routed[spec.name] == "gpu" else "cpu") == (
            "cuda" if spec.gpu_capable else "cpu"
        )
    assert set(routed.values()) <= set(QUEUES)


def test_only_transient_errors_are_retried_with_backoff(farm_home: Path) -> None:
    from trainfarm.shared.errors import DataError, FarmError, RedisUnavailableError, TransientError
    from trainfarm.shared.registry import RegistryUnavailableError
    from trainfarm.workers.celery_app import rebind
    from trainfarm.workers.tasks import FarmTask, prepare_run, train_base, train_meta

    rebind()  # touching the tasks loads the app's settings: those of this test's farm home
    try:
        for task in (prepare_run, train_base, train_meta):
            assert isinstance(task, FarmTask)
            assert task.autoretry_for == (TransientError,)
            assert task.retry_backoff and task.retry_jitter and task.max_retries >= 1
    finally:
        embedded_redis().stop()
    assert issubclass(RedisUnavailableError, TransientError)
    assert issubclass(RegistryUnavailableError, TransientError)
    assert not issubclass(DataError, TransientError) and not issubclass(FarmError, TransientError)
