"""A replay interrupted midway (Ctrl-C on `farm replay`, its worker stopped) and resumed trains no point
twice and ends with the result of an uninterrupted replay of the same request."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid

import pytest
from typer.testing import CliRunner

from tests.integration.replay.conftest import WALK, WALK_PERIOD, Replayed, replay_args
from tests.support.farm import Farm
from tests.support.waiting import wait_until
from trainfarm.cli.app import app
from trainfarm.cli.processes import WorkerProcess
from trainfarm.shared.registry import PointStatus, Registry, ReplayStatus


def test_an_interrupted_replay_resumes_without_training_a_point_twice(
    replay_farm: Farm, walk_replay: Replayed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    registry = Registry.open()
    before = {r.id for r in registry.replays.recent()}
    log = tmp_path_factory.mktemp("resume") / "replay.log"
    with log.open("wb") as sink:
        cli = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from trainfarm.cli.app import main; main()",
                "replay",
                *replay_args(WALK, WALK_PERIOD),
            ],
            env=replay_farm.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: {r.id for r in registry.replays.recent()} - before != set(), 60, "the replay recorded"
        )
        (replay_id,) = {r.id for r in registry.replays.recent()} - before

        def trained() -> list[int]:
            return [p.idx for p in registry.replays.points(replay_id) if p.status is PointStatus.TRAINED]

        wait_until(lambda: len(trained()) >= 2, 300, "two points trained", process=replay_farm.workers[0])
        cli.send_signal(signal.SIGINT)  # Ctrl-C
        assert cli.wait(timeout=60) == 130, log.read_text()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=10)
    assert registry.replays.get(replay_id).status is ReplayStatus.INTERRUPTED
    assert f"farm replay resume {replay_id}" in log.read_text()
    # The worker goes too (a warm stop: its running task finishes, what it had not started goes back to the
    # queue); a new one takes over after the resume.
    replay_farm.workers[0].stop(timeout=120)
    done_before = {p.idx: p for p in registry.replays.points(replay_id) if p.status is PointStatus.TRAINED}
    assert 2 <= len(done_before) < len(registry.replays.points(replay_id))
    worker = WorkerProcess(f"w{uuid.uuid4().hex[:6]}", replay_farm.env, log.parent, concurrency=2)
    replay_farm.workers.append(worker)
    worker.start()

    result = CliRunner().invoke(app, ["replay", "resume", replay_id, "--json"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    resumed = json.loads(result.stdout)
    points = registry.replays.points(replay_id)
    assert all(p.status is PointStatus.TRAINED and p.trainings == 1 for p in points)
    for idx, point in done_before.items():  # trained before the interruption: reused, not fitted again
        assert (points[idx].version, points[idx].base_fits) == (point.version, 8)
    # The same result as the uninterrupted replay of the same request (the same bars, seeds and gates).
    reference = walk_replay.out
    assert [d["passed"] for d in resumed["decisions"]] == [d["passed"] for d in reference["decisions"]]
    for policy, figures in reference["policies"].items():
        for key in ("logloss", "brier", "sharpe", "max_drawdown", "signals", "promotions", "scored_bars"):
            assert resumed["policies"][policy][key] == pytest.approx(figures[key], rel=1e-9, abs=1e-12), (
                policy,
                key,
            )
