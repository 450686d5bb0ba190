"""bench.capacity: the cores a universe needs, from per-run costs and the cadences."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from bench.capacity import Cadence, need, total_cores

DAY = timedelta(days=1)


def test_throughput_counts_full_and_meta_runs_per_hour() -> None:
    cadence = Cadence(full=timedelta(hours=6), meta=timedelta(hours=1), freshness=DAY)
    found = need("5m", symbols=500, full_run_s=60.0, meta_run_s=2.0, cadence=cadence, efficiency=1.0)
    # 500 x 60 s every 6 h = 5000 core-s per hour; 500 x 2 s every hour = 1000.
    assert found.core_s_per_hour == pytest.approx(6000.0)
    assert found.throughput_cores == pytest.approx(6000.0 / 3600)
    # The fan-out of 30,000 core-s must drain within 24 h - 6 h.
    assert found.headroom == timedelta(hours=18)
    assert found.drain_cores == pytest.approx(30_000 / (18 * 3600))


def test_a_lower_efficiency_needs_proportionally_more_cores() -> None:
    cadence = Cadence(full=DAY, meta=None, freshness=3 * DAY)
    full = need("1h", symbols=500, full_run_s=100.0, meta_run_s=0.0, cadence=cadence, efficiency=1.0)
    half = need("1h", symbols=500, full_run_s=100.0, meta_run_s=0.0, cadence=cadence, efficiency=0.5)
    assert half.throughput_cores == pytest.approx(2 * full.throughput_cores)
    assert half.drain_cores == pytest.approx(2 * full.drain_cores)
    with pytest.raises(ValueError, match="efficiency"):
        need("1h", symbols=1, full_run_s=1.0, meta_run_s=0.0, cadence=cadence, efficiency=0.0)


def test_a_cadence_as_long_as_the_freshness_limit_can_never_be_met() -> None:
    cadence = Cadence(full=7 * DAY, meta=None, freshness=7 * DAY)
    found = need("24h", symbols=10, full_run_s=10.0, meta_run_s=0.0, cadence=cadence, efficiency=1.0)
    assert math.isinf(found.drain_cores)


def test_total_adds_throughput_and_takes_the_largest_drain() -> None:
    day = Cadence(full=DAY, meta=None, freshness=3 * DAY)
    # 500 x 3456 s per day: 20 cores of load; drain 500 x 3456 s in 2 days: 10 cores.
    a = need("1h", symbols=500, full_run_s=3456.0, meta_run_s=0.0, cadence=day, efficiency=1.0)
    # Quick runs with almost no headroom: the drain dominates (500 x 36 s in 1 h: 5 cores).
    tight = Cadence(full=DAY, meta=None, freshness=DAY + timedelta(hours=1))
    b = need("12h", symbols=500, full_run_s=36.0, meta_run_s=0.0, cadence=tight, efficiency=1.0)
    assert a.throughput_cores == pytest.approx(20.0) and a.drain_cores == pytest.approx(10.0)
    assert b.drain_cores == pytest.approx(5.0)
    assert total_cores({"1h": a, "12h": b}) == math.ceil(20.0 + b.throughput_cores)
    assert total_cores({"12h": b}) == 5
