"""The policies' champions over time, from the gated decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainfarm.shared.replay.decisions import Decision, TrainedPoint, candidate_path, promotions, timeline

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def points(n: int) -> list[TrainedPoint]:
    return [
        TrainedPoint(i, T0 + timedelta(days=7 * i), f"v{i}", Path(f"/p/v{i}"), "0" * 64) for i in range(n)
    ]


def decided(*passed: bool) -> list[Decision]:
    return [Decision(i, p, None, {"passed": p}) for i, p in enumerate(passed)]


def test_each_policy_scores_with_its_own_champion_of_the_moment() -> None:
    pts = points(5)
    lines = timeline(pts, decided(False, True, False, True, False))
    versions = {policy: [p.version if p else None for p in line] for policy, line in lines.items()}
    assert versions == {
        "gated": [None, "v1", "v1", "v3", "v3"],  # none until a candidate passes; kept while others fail
        "always": ["v0", "v1", "v2", "v3", "v4"],
        "static": ["v0"] * 5,
        "prior": [None] * 5,
    }
    changed = {policy: [p.version for p in found] for policy, found in promotions(lines).items()}
    assert changed == {
        "gated": ["v1", "v3"],
        "always": ["v0", "v1", "v2", "v3", "v4"],
        "static": ["v0"],
        "prior": [],
    }


def test_a_gated_policy_that_never_passes_is_the_prior_throughout() -> None:
    lines = timeline(points(3), decided(False, False, False))
    assert lines["gated"] == [None, None, None]
    assert promotions(lines)["gated"] == []


def test_the_candidate_file_lies_beside_the_pack_not_in_it() -> None:
    assert candidate_path(Path("/r/packs/BTC/1h/v7")) == Path("/r/packs/BTC/1h/v7.candidate.npz")
