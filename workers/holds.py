"""Markets whose retrains are held back, and why.

- ``stale_data``: the symbol has a source but its newest bar is older than its limit
  (:mod:`trainfarm.shared.data.freshness`): a retrain would learn the same old bars again and look like
  success. Released as soon as the sync brings current bars.
- ``cannot_train``: the market's last run failed because its data cannot make a dataset (too few rows for
  its window, an interval that cannot build the timeframe). It is not re-submitted at every cooldown: the
  dataset is tried again (without training) whenever the symbol's newest bar changes, and the hold lasts
  until that succeeds.

Schedules and triggers skip a held market with the reason (`farm triggers`, `farm status`, the
dashboard); a person's ``farm retrain --force`` is not held. :func:`track` records a ``held`` event (one
alert) when a hold begins or changes, and forgets it when the hold is released.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import redis

from trainfarm.shared.champions.announce import record_event
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.freshness import Freshness, freshness
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.dataset.inputs import feature_spec, load_inputs
from trainfarm.shared.dataset.snapshot import build_frame
from trainfarm.shared.errors import DataError, DataNotFoundError, DatasetError
from trainfarm.shared.registry import Registry
from trainfarm.shared.registry.models import RunStatus
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.contract import HELD

#: Redis key holding a market's current hold (its flag), so each hold alerts once.
HOLD_KEY = "farm:holds:{symbol}:{timeframe}"
#: Errors of a failed run that mean "this data cannot make a dataset" (the run's error starts with one).
DATASET_ERRORS = ("DatasetError", "DataNotFoundError")

Flag = Literal["stale_data", "cannot_train"]


@dataclass(frozen=True)
class Hold:
    """Why a market's retrains are held back."""

    flag: Flag
    reason: str

    def line(self) -> str:
        """``flag: reason``, as listings show it."""
        return f"{self.flag}: {self.reason}"


#: (store root, symbol, timeframe, newest close, config hash) -> the dataset's problem (None: it builds).
_TRIED: dict[tuple[str, str, str, str, str], str | None] = {}
_TRIED_LOCK = threading.Lock()
_TRIED_MAX = 256


def _dataset_problem(store: BarStore, config: FarmConfig, symbol: str, tf: Timeframe) -> str | None:
    """Why ``symbol``'s bars cannot make ``tf``'s dataset now (None: they can); tried once per newest bar."""
    newest = store.newest_close(symbol).isoformat() if store.has(symbol) else ""
    key = (str(store.root), symbol, tf.value, newest, config.config_hash())
    with _TRIED_LOCK:
        if key in _TRIED:
            return _TRIED[key]
    try:
        spec = feature_spec(config, symbol, tf)
        inputs = load_inputs(store, spec)
        build_frame(inputs[spec.key], tf, config, spec=spec, context=inputs)
        problem = None
    except (DatasetError, DataNotFoundError, DataError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    with _TRIED_LOCK:
        if len(_TRIED) >= _TRIED_MAX:
            _TRIED.clear()
        _TRIED[key] = problem
    return problem


def hold_of(
    registry: Registry,
    store: BarStore,
    config: FarmConfig,
    symbol: str,
    tf: Timeframe,
    now: datetime,
    *,
    fresh: Freshness | None = None,
) -> Hold | None:
    """The hold on the market (``symbol``, ``tf``), or None when its retrains may go ahead. ``fresh``: the
    symbol's freshness when the caller has it already (a status page reads it once per symbol)."""
    fresh = fresh or freshness(store, config, symbol)
    if fresh.stale(now):
        return Hold("stale_data", fresh.reason(now))
    runs = registry.runs.newest(symbol, tf, limit=1)
    last = runs[0] if runs else None
    if (
        last is None
        or last.status is not RunStatus.FAILED
        or not (last.error or "").startswith(DATASET_ERRORS)
    ):
        return None
    problem = _dataset_problem(store, config, fresh.symbol, tf)
    if problem is None:
        return None  # the data has grown enough: the next retrain goes ahead
    return Hold(
        "cannot_train", f"{problem} (the last run {last.id[:8]} failed so; held until the data grows)"
    )


def track(client: redis.Redis, holds: Mapping[tuple[str, str], Hold | None]) -> list[tuple[str, str, Hold]]:
    """Record a ``held`` event for each hold that began or changed flag; forget released ones. Returns
    the holds announced now."""
    announced = []
    for (symbol, timeframe), hold in holds.items():
        key = HOLD_KEY.format(symbol=symbol, timeframe=timeframe)
        if hold is None:
            client.delete(key)
            continue
        previous = client.getset(key, hold.flag)
        if (
            previous is not None
            and (previous.decode() if isinstance(previous, bytes) else str(previous)) == hold.flag
        ):
            continue
        record_event(
            client, HELD, {"symbol": symbol, "timeframe": timeframe, "flag": hold.flag, "reason": hold.reason}
        )
        announced.append((symbol, timeframe, hold))
    return announced
