"""registry.replays: a replay and its points, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.shared.errors import AmbiguousRunIdError, ReplayNotFoundError
from trainfarm.shared.registry import PointStatus, Registry, ReplayStatus

T0 = datetime(2024, 1, 1, tzinfo=UTC)
POINTS = [T0 + timedelta(days=7 * i) for i in range(3)]


def create(registry: Registry) -> str:
    replay = registry.replays.create(
        "BTC_USDT", "1h", start=T0, end=T0 + timedelta(days=21), cadence=timedelta(days=7), points=POINTS,
        config_hash="c" * 64,
    )  # fmt: skip
    return replay.id


def test_a_replay_is_created_with_its_points_pending(registry: Registry) -> None:
    replay_id = create(registry)
    replay = registry.replays.get(replay_id[:6])
    assert (replay.status, replay.cadence, replay.start) == (ReplayStatus.RUNNING, timedelta(days=7), T0)
    points = registry.replays.points(replay_id)
    assert [(p.idx, p.at, p.status) for p in points] == [
        (i, at, PointStatus.PENDING) for i, at in enumerate(POINTS)
    ]
    assert registry.replays.recent()[0].id == replay_id


def test_counters_count_every_start_and_a_trained_point_stays_trained(registry: Registry) -> None:
    replay_id = create(registry)
    registry.replays.submitted(replay_id, 1)
    for _ in range(8):
        registry.replays.base_started(replay_id, 1)
    registry.replays.trained(replay_id, 1, version="v1", path="/p", manifest_sha256="a" * 64)
    registry.replays.submitted(replay_id, 1)  # a resumed replay's late submission
    registry.replays.point_failed(replay_id, 1, "late complaint")
    point = registry.replays.point(replay_id, 1)
    assert (point.status, point.version, point.trainings, point.base_fits, point.error) == (
        PointStatus.TRAINED, "v1", 1, 8, None,
    )  # fmt: skip
    registry.replays.point_failed(replay_id, 2, "DatasetError: too few rows")
    assert registry.replays.point(replay_id, 2).status is PointStatus.FAILED
    registry.replays.submitted(replay_id, 2)  # resumed: submitted again, its error cleared
    assert registry.replays.point(replay_id, 2).error is None


def test_finish_fail_resume_and_delete(registry: Registry) -> None:
    replay_id = create(registry)
    registry.replays.fail(replay_id, "interrupted", status=ReplayStatus.INTERRUPTED)
    assert registry.replays.get(replay_id).status is ReplayStatus.INTERRUPTED
    registry.replays.resumed(replay_id)
    assert registry.replays.get(replay_id).error is None
    # NaN is not JSON on PostgreSQL: it is stored as null.
    done = registry.replays.finish(replay_id, {"policies": {"gated": {"sharpe": float("nan"), "signals": 3}}})
    assert done.status is ReplayStatus.FINISHED
    assert registry.replays.get(replay_id).result == {"policies": {"gated": {"sharpe": None, "signals": 3}}}
    registry.replays.delete(replay_id)
    with pytest.raises(ReplayNotFoundError):
        registry.replays.get(replay_id)
    assert registry.replays.points(replay_id) == []


def test_unknown_and_ambiguous_ids_are_refused(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["abcd0000" + "0" * 24, "abcd1111" + "0" * 24])
    monkeypatch.setattr("trainfarm.shared.registry.replay_store.uuid4", lambda: uuid.UUID(next(ids)))
    first, second = create(registry), create(registry)
    assert (first, second) == ("abcd000000000000", "abcd111100000000")
    with pytest.raises(AmbiguousRunIdError, match="several replays"):
        registry.replays.get("abcd")
    assert registry.replays.get("abcd1").id == second
    with pytest.raises(ReplayNotFoundError, match="no replay"):
        registry.replays.get("ffff")
    with pytest.raises(ReplayNotFoundError):
        registry.replays.get("../etc")
    with pytest.raises(ReplayNotFoundError, match="no point 99"):
        registry.replays.point(first, 99)
