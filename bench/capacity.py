"""How many worker cores a universe needs: from measured per-run costs and the configured cadences.

For each timeframe the config gives a full-retrain cadence and a freshness limit (a champion older than
that is stale), and optionally a meta-only cadence. A farm of ``cores`` single-threaded task slots, at a
measured parallel efficiency, keeps every champion fresh when both hold:

* **throughput**: the core-seconds asked for per hour fit in ``cores x efficiency x 3600``;
* **latency**: one timeframe's whole fan-out (every symbol at once, as beat sends it) drains before the
  oldest champion of that timeframe passes its freshness limit: a champion promoted just after one fan-out
  is replaced by the next one ``cadence + drain`` later, so ``drain <= freshness - cadence``, with the
  fan-out alone on the farm (the conservative case: other timeframes' work would share the cores).

The cores needed are the larger of the two. Pure arithmetic, unit-tested; the costs come from
:mod:`bench.fanout` (each run's task seconds with one thread, measured one run at a time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Cadence:
    """One timeframe's schedule: full retrains, meta-only retrains (None: off), the freshness limit."""

    full: timedelta
    meta: timedelta | None
    freshness: timedelta


@dataclass(frozen=True)
class Need:
    """Cores one timeframe needs, and why."""

    timeframe: str
    core_s_per_hour: float  #: full and meta-only runs of every symbol, per hour
    throughput_cores: float  #: core_s_per_hour / (3600 x efficiency)
    drain_cores: float  #: cores for a whole fan-out to drain within freshness - cadence
    headroom: timedelta  #: freshness - cadence: how long a fan-out may take


def need(
    timeframe: str,
    *,
    symbols: int,
    full_run_s: float,
    meta_run_s: float,
    cadence: Cadence,
    efficiency: float,
) -> Need:
    """The cores ``symbols`` markets of ``timeframe`` need (see the module docstring)."""
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    hour = 3600.0
    per_hour = symbols * full_run_s * hour / cadence.full.total_seconds()
    if cadence.meta is not None:
        # A meta-only run replaces a full one where both are due; counting both slightly overstates.
        per_hour += symbols * meta_run_s * hour / cadence.meta.total_seconds()
    headroom = cadence.freshness - cadence.full
    if headroom <= timedelta(0):
        drain = math.inf  # the config itself lets champions go stale between two fan-outs
    else:
        drain = symbols * full_run_s / (headroom.total_seconds() * efficiency)
    return Need(timeframe, per_hour, per_hour / (hour * efficiency), drain, headroom)


def total_cores(needs: Mapping[str, Need]) -> int:
    """Whole cores for every timeframe together: throughput adds up; the largest drain must fit too."""
    throughput = sum(n.throughput_cores for n in needs.values())
    drain = max((n.drain_cores for n in needs.values()), default=0.0)
    return math.ceil(max(throughput, drain))
