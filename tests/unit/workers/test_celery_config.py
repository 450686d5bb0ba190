"""Celery settings that answer known failure modes, checked by what they do; import hygiene of each layer.

Settings whose effect needs a real worker (acks_late and reject_on_worker_lost: a killed pool process's task
is delivered again; the chord errback) are proven by the integration tests with real worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import python_json
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import build_config

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


def test_a_pickled_message_or_result_is_refused(url_home: Path) -> None:
    """What a worker does with the app's accept lists: only JSON deserialises; pickle is refused unread."""
    import pickle

    from kombu.exceptions import ContentDisallowed
    from kombu.serialization import dumps, loads, prepare_accept_content

    conf = build_config()
    payload = pickle.dumps({"run_id": "x"})
    for names in (conf["accept_content"], conf["result_accept_content"]):
        accept = prepare_accept_content(names)  # as Celery turns the setting into content types
        with pytest.raises(ContentDisallowed):
            loads(payload, "application/x-python-serialize", "binary", accept=accept)
        content_type, encoding, body = dumps({"run_id": "x"}, serializer=conf["task_serializer"])
        assert loads(body, content_type, encoding, accept=accept) == {"run_id": "x"}


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


def test_a_configured_visibility_timeout_reaches_both_transports_and_bounds_retries(
    url_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_home.mkdir(parents=True, exist_ok=True)
    config = url_home / "farm.toml"
    config.write_text('[training]\ntask_time_limit = "15s"\nvisibility_timeout = "20s"\n')
    monkeypatch.setenv("FARM_CONFIG_FILE", str(config))
    get_settings.cache_clear()
    conf = build_config()
    for options in ("broker_transport_options", "result_backend_transport_options"):
        assert conf[options]["visibility_timeout"] == 20
        # kombu's sweep for expired messages runs every interval x throttle seconds: 2 s here, not 100 s.
        assert conf[options]["unacked_restore_interval"] * conf[options]["unacked_restore_throttle"] == 2
    # A retry's countdown is held unacknowledged: it must end before the visibility timeout does.
    assert conf["task_annotations"]["*"]["retry_backoff_max"] == 10


@pytest.mark.parametrize(
    ("limit", "visibility", "problem"),
    [("30m", "30m", "must exceed training.task_time_limit"), ("15s", "5s", "at least 10s")],
)
def test_a_visibility_timeout_not_above_the_time_limit_is_refused(
    tmp_path: Path, limit: str, visibility: str, problem: str
) -> None:
    from trainfarm.shared.config import load_config
    from trainfarm.shared.errors import ConfigError

    config = tmp_path / "farm.toml"
    config.write_text(f'[training]\ntask_time_limit = "{limit}"\nvisibility_timeout = "{visibility}"\n')
    with pytest.raises(ConfigError, match=problem) as err:
        load_config(config)
    assert "visibility_timeout" in str(err.value)


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
    return python_json(code, env=base | {"FARM_HOME": str(home), **env})


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
import trainfarm.workers.stages, trainfarm.workers.runs, trainfarm.workers.payloads, trainfarm.workers.routing
print(json.dumps(sorted(m for m in ("celery", "kombu", "billiard", "trainfarm.cli") if m in sys.modules)))
"""


def test_the_domain_library_imports_no_celery_and_nothing_above_it(tmp_path: Path) -> None:
    """Every module of trainfarm.shared, imported: no Celery, no workers, beat or CLI module comes along."""
    assert _python(_DOMAIN_IMPORT, tmp_path / "home") == []
    assert not (tmp_path / "home" / "redis").exists()


def test_the_run_orchestration_is_celery_free(tmp_path: Path) -> None:
    assert _python(_ORCHESTRATION_IMPORT, tmp_path / "home") == []


_WORKERS_IMPORT = """
import json, pkgutil, sys
import trainfarm.workers
for info in pkgutil.walk_packages(trainfarm.workers.__path__, "trainfarm.workers."):
    __import__(info.name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("trainfarm.beat", "trainfarm.cli")))))
"""


def test_the_workers_import_neither_beat_nor_the_cli(tmp_path: Path) -> None:
    """Layering: beat sits on top of the workers (its app is theirs plus the schedule), never below."""
    assert _python(_WORKERS_IMPORT, tmp_path / "home") == []
