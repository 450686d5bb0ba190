"""The replay's simulated clock: retrain points on the timeframe's grid, refused when they cannot be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.shared.errors import ConfigError
from trainfarm.shared.replay.clock import MAX_POINTS, align, point_id, retrain_points
from trainfarm.shared.timeframes import Timeframe

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_points_start_on_the_grid_and_step_by_the_cadence_up_to_the_end() -> None:
    points = retrain_points(
        T0 + timedelta(minutes=37), T0 + timedelta(days=3, hours=1), timedelta(days=1), Timeframe.H1
    )
    assert points == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2), T0 + timedelta(days=3)]
    assert align(T0 + timedelta(hours=13), Timeframe.H12) == T0 + timedelta(hours=12)


def test_the_end_is_excluded() -> None:
    assert retrain_points(T0, T0 + timedelta(days=2), timedelta(days=1), Timeframe.H1) == [
        T0,
        T0 + timedelta(days=1),
    ]


@pytest.mark.parametrize(
    ("start", "end", "cadence", "problem"),
    [
        (T0, T0 + timedelta(days=2), timedelta(minutes=90), "whole number of 1h bars"),
        (T0, T0, timedelta(days=1), "is empty"),
        (T0, T0 + timedelta(hours=MAX_POINTS + 1), timedelta(hours=1), "at most"),
    ],
)
def test_impossible_requests_are_refused(
    start: datetime, end: datetime, cadence: timedelta, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        retrain_points(start, end, cadence, Timeframe.H1)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ConfigError, match="time zone"):
        align(datetime(2024, 1, 1), Timeframe.H1)


def test_point_ids_are_fixed_width_so_one_is_never_the_prefix_of_another() -> None:
    assert point_id("abcd", 1) == "abcd-0001"
    assert not point_id("abcd", 12).startswith(point_id("abcd", 1) + "-")
