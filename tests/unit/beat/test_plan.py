"""The schedule plan: fires in time order, work from the registry's durations, backlog flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.beat.plan import Entry, next_fire, plan, run_seconds

NOW = datetime(2026, 12, 1, tzinfo=UTC)
HOURLY = Entry("retrain-1h", "1h", timedelta(hours=6), runs_per_fire=2)
DAILY = Entry("retrain-24h", "24h", timedelta(days=1), runs_per_fire=2)


def test_next_fire_follows_the_last_run() -> None:
    assert next_fire(HOURLY, None, NOW) == NOW  # never ran: fires at once
    assert next_fire(HOURLY, NOW - timedelta(hours=2), NOW) == NOW + timedelta(hours=4)
    assert next_fire(HOURLY, NOW - timedelta(days=2), NOW) == NOW  # overdue: once, now


def test_fires_in_time_order_with_their_work() -> None:
    fires = plan(
        [HOURLY, DAILY],
        {"retrain-1h": NOW - timedelta(hours=5), "retrain-24h": None},
        NOW,
        horizon=timedelta(hours=13),
        seconds_per_run=run_seconds({"1h": [100.0, 300.0, 200.0], "24h": []}),
        capacity=2,
    )
    assert [(f.entry, f.at - NOW) for f in fires] == [
        ("retrain-24h", timedelta(0)),
        ("retrain-1h", timedelta(hours=1)),
        ("retrain-1h", timedelta(hours=7)),
        ("retrain-1h", timedelta(hours=13)),
    ]
    assert fires[0].work_s is None  # no finished 24h run yet: unknown, not zero
    assert fires[1].work_s == 2 * 200.0  # two symbols, the median run
    assert not any(f.over_capacity for f in fires)


def test_work_that_outlasts_the_cadence_is_flagged() -> None:
    fires = plan(
        [HOURLY],
        {},
        NOW,
        horizon=timedelta(hours=12),
        seconds_per_run={"1h": 4 * 3600.0},  # each fire: 8 h of work on 1 worker, every 6 h
        capacity=1,
    )
    assert [f.over_capacity for f in fires] == [False, True, True]
    assert fires[1].backlog_s == 2 * 3600.0 and fires[2].backlog_s == 4 * 3600.0
    heavy = {"1h": 4 * 3600.0}
    more = plan([HOURLY], {}, NOW, horizon=timedelta(hours=12), seconds_per_run=heavy, capacity=2)
    assert not any(f.over_capacity for f in more)  # two workers drain it in 4 h
    with pytest.raises(ValueError, match="capacity"):
        plan([HOURLY], {}, NOW, horizon=timedelta(hours=1), seconds_per_run={}, capacity=0)
