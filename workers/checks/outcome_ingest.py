"""Ingesting the bots' outcome stream (``farm:outcomes``) into the registry, exactly once per signal.

Bots append an entry per signal they act on, and another for the same signal once its horizon has passed,
with the realised return (:meth:`trainfarm_client.live.LiveModel.report_outcome`; the ``at`` field is the
signal's bar). :func:`ingest` reads the entries after the stored cursor (``farm:outcomes:cursor``), parses
each, records them (:meth:`trainfarm.shared.registry.OutcomeStore.record`: one row per (bot, version,
bar), so a replayed entry changes nothing) and only then moves the cursor: a crash in between re-reads the
entries, which are duplicates by then. A malformed entry is logged with its id and the problem, counted,
and skipped: one bad report never blocks the stream. Outcomes feed the triggers and the operators, never
the training labels (those come from every bar, not only the traded ones). Celery-free.

An entry may carry ``features``: the JSON list of the feature values the bot computed for the bar, in the
pack's feature order (absent or empty for bots that do not report them: still a valid entry). A field
that is not a JSON list of finite numbers makes the entry malformed; its length is checked against the
pack by the skew check (:mod:`trainfarm.workers.checks.skew`), which knows the pack.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from trainfarm.shared.registry import OutcomeCounts, Registry, Signal
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import parse_timeframe
from trainfarm.workers.checks.streams import drain
from trainfarm_client.contract import OUTCOMES_STREAM

log = logging.getLogger(__name__)

#: Where the id of the last ingested stream entry is kept.
CURSOR_KEY = "farm:outcomes:cursor"
#: Entries read per batch (each batch is one registry transaction).
BATCH = 500
#: Signals a bot may report.
SIGNALS = frozenset({"up", "down"})


@dataclass(frozen=True)
class IngestReport:
    """What one :func:`ingest` call did."""

    read: int
    inserted: int
    updated: int
    duplicates: int
    malformed: int
    cursor: str


def parse_entry(entry_id: str, fields: Mapping[str, str]) -> Signal:
    """The signal in one stream entry; ``ValueError`` naming the entry and the field that is wrong."""

    def field(name: str) -> str:
        value = fields.get(name)
        if value is None or value == "":
            raise ValueError(f"outcome {entry_id}: field {name!r} is missing")
        return value

    try:
        symbol = canonical_symbol(field("symbol"))
        timeframe = parse_timeframe(field("timeframe")).value
    except Exception as exc:
        raise ValueError(f"outcome {entry_id}: {exc}") from None
    signal = field("signal")
    if signal not in SIGNALS:
        raise ValueError(f"outcome {entry_id}: signal {signal!r} is not one of {sorted(SIGNALS)}")
    try:
        probability = float(field("probability"))
        at = datetime.fromisoformat(field("at"))
        raw_return = fields.get("realised_return") or ""
        realised = float(raw_return) if raw_return else None
    except ValueError as exc:
        raise ValueError(f"outcome {entry_id}: {exc}") from None
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"outcome {entry_id}: probability {probability} is not in [0, 1]")
    if realised is not None and not math.isfinite(realised):
        raise ValueError(f"outcome {entry_id}: realised_return {realised} is not a finite number")
    if at.tzinfo is None:
        raise ValueError(f"outcome {entry_id}: at {field('at')!r} has no time zone")
    features = parse_features(entry_id, fields.get("features") or "")
    return Signal(
        bot_id=field("bot_id"),
        symbol=symbol,
        timeframe=timeframe,
        version=field("version"),
        at=at.astimezone(UTC),
        signal=signal,
        probability=probability,
        realised_return=realised,
        features=features,
    )


#: Most feature values an entry may carry (the pack has 24; this only bounds what one entry can store).
MAX_FEATURES = 1000


def parse_features(entry_id: str, raw: str) -> tuple[float, ...] | None:
    """The ``features`` field of an entry: None when absent, else a non-empty list of finite numbers."""
    if not raw:
        return None
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"outcome {entry_id}: features is not JSON ({exc})") from None
    if not isinstance(values, list) or not values or len(values) > MAX_FEATURES:
        raise ValueError(f"outcome {entry_id}: features is not a list of 1 to {MAX_FEATURES} numbers")
    out = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"outcome {entry_id}: features[{i}] = {value!r} is not a finite number")
        out.append(float(value))
    return tuple(out)


def ingest(client: redis.Redis, registry: Registry, *, max_batches: int = 100) -> IngestReport:
    """Ingest the entries after the cursor (at most ``max_batches`` x ``BATCH``); see the module docs."""
    counts = OutcomeCounts()

    def record(signals: list[Signal]) -> None:
        nonlocal counts
        done = registry.outcomes.record(signals)
        counts = OutcomeCounts(
            counts.inserted + done.inserted,
            counts.updated + done.updated,
            counts.duplicates + done.duplicates,
        )

    drained = drain(
        client,
        OUTCOMES_STREAM,
        CURSOR_KEY,
        parse_entry,
        record,
        batch=BATCH,
        max_batches=max_batches,
        log=log,
    )
    return IngestReport(
        drained.read, counts.inserted, counts.updated, counts.duplicates, drained.malformed, drained.cursor
    )


__all__ = ["BATCH", "CURSOR_KEY", "MAX_FEATURES", "IngestReport", "ingest", "parse_entry", "parse_features"]
