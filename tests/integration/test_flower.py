"""Flower on a real farm: a finished retrain task read through its HTTP API with credentials, 401 without."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.farm import SYMBOL, TF, Farm
from tests.support.services import free_port
from tests.support.waiting import wait_until
from trainfarm.cli.flower_cmds import flower_env
from trainfarm.cli.processes import FlowerProcess
from trainfarm.shared.settings import get_settings
from trainfarm.shared.ui_auth import ui_credentials

pytestmark = pytest.mark.integration


def _get(url: str, auth: str | None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


@pytest.mark.parametrize("farm", ["embedded"], indirect=True)
def test_flower_shows_a_finished_retrain_only_to_its_user(farm: Farm, tmp_path: Path) -> None:
    from trainfarm.workers.tasks import submit_retrain

    settings = get_settings()
    port = free_port()
    flower = FlowerProcess(
        "flower", farm.env | flower_env(settings), tmp_path, address="127.0.0.1", port=port
    )
    flower.start()
    try:
        run = submit_retrain(SYMBOL, TF, "flower test")
        assert farm.wait_run(run.run_id) == "succeeded", farm.workers[0].log()[-3000:]
        creds = ui_credentials(settings)
        # The chord body (the meta stage) keeps its result in the backend: Flower reads it from there.
        url = f"http://127.0.0.1:{port}/api/task/result/{run.run_id}-meta"
        assert _get(url, None)[0] == 401
        assert _get(url, f"{creds.user}:not-the-password")[0] == 401
        # The run is recorded as succeeded with its version; the meta task then settles it (promotion,
        # announcement) and frees its staging before its own result is SUCCESS: wait for that, bounded.
        seen: dict[str, object] = {}

        def meta_succeeded() -> bool:
            status, body = _get(url, f"{creds.user}:{creds.password}")
            assert status == 200, body
            seen.update(json.loads(body))
            return seen.get("state") == "SUCCESS"

        wait_until(meta_succeeded, 60, "the meta task's result in Flower", every=0.25)
        answer = seen
        assert answer["task-id"] == f"{run.run_id}-meta"
        version = farm.registry().runs.get(run.run_id).version
        assert answer["result"] == {"run_id": run.run_id, "version": version}
        assert creds.password not in flower.log()
        # Flower's own Prometheus endpoint is behind the same auth (its /healthcheck says only "OK").
        metrics = f"http://127.0.0.1:{port}/metrics"
        assert _get(metrics, None)[0] == 401
        assert _get(metrics, f"{creds.user}:{creds.password}")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/healthcheck", None) == (200, b"OK")
    finally:
        flower.stop()
