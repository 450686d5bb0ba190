"""Beat's shadow check: the bots' paired scores in, then one decision per challenger once it has its bars.

:func:`ingest` reads ``farm:shadow`` after its cursor (``farm:shadow:cursor``) and records each entry
(:meth:`~trainfarm.shared.registry.ShadowStore.record`: one row per challenger, champion and bar, so two
bots reporting the same bar, or a re-read stream, count once); a malformed entry is logged with its id and
skipped. :func:`check` then walks the active challengers:

* the champion changed under a challenger (a manual promotion, a rollback): it ends ``superseded``;
* its verdict (:func:`~trainfarm.shared.champions.shadow.judge`) is ``promote`` or ``retire``: acted on,
  once (:func:`~trainfarm.shared.champions.shadow.decide`);
* it is still waiting past ``shadow_max_age``: retired, for want of live evidence;

and starts the waiting candidate of every shadow-mode market whose slot is free. Celery-free.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from trainfarm.shared.champions.shadow import decide, end_challenger, expired, judge, start_next
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.errors import FarmError
from trainfarm.shared.registry import ChallengerOutcome, PairedScore, Registry, ScoreCounts
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, format_duration, parse_timeframe
from trainfarm.workers.checks.streams import drain
from trainfarm_client.contract import SHADOW_STREAM

log = logging.getLogger(__name__)

#: Where the id of the last ingested shadow entry is kept.
CURSOR_KEY = "farm:shadow:cursor"
#: Entries read per batch (each batch is one registry transaction).
BATCH = 500
_SIGNALS = frozenset({"", "up", "down"})


@dataclass(frozen=True)
class ShadowIngestReport:
    """What one :func:`ingest` call did."""

    read: int
    inserted: int
    duplicates: int
    malformed: int
    cursor: str


@dataclass
class ShadowCheckReport:
    """What one :func:`check` call did: challengers decided, ended otherwise, started; failures named."""

    decided: list[dict[str, object]] = field(default_factory=list)
    ended: list[dict[str, object]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: list[dict[str, object]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _probabilities(entry_id: str, name: str, raw: str) -> tuple[float, float, float]:
    try:
        values = json.loads(raw)
    except ValueError:
        raise ValueError(f"shadow {entry_id}: {name} is not JSON") from None
    ok = isinstance(values, list) and len(values) == 3
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not ok or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"shadow {entry_id}: {name} is not three probabilities in [0, 1]: {raw[:100]!r}")
    return float(values[0]), float(values[1]), float(values[2])


def parse_entry(entry_id: str, fields: Mapping[str, str]) -> PairedScore:
    """The paired score in one stream entry; ``ValueError`` naming the entry and the field that is wrong."""

    def need(name: str) -> str:
        value = fields.get(name)
        if not value:
            raise ValueError(f"shadow {entry_id}: field {name!r} is missing")
        return value

    try:
        symbol = canonical_symbol(need("symbol"))
        timeframe = parse_timeframe(need("timeframe")).value
        at = datetime.fromisoformat(need("at"))
    except (FarmError, ValueError) as exc:
        raise ValueError(f"shadow {entry_id}: {exc}") from None
    if at.tzinfo is None:
        raise ValueError(f"shadow {entry_id}: at {need('at')!r} has no time zone")
    signals = {role: fields.get(f"{role}_signal", "") for role in ("champion", "challenger")}
    for role, value in signals.items():
        if value not in _SIGNALS:
            raise ValueError(f"shadow {entry_id}: {role}_signal {value!r} is not up, down or empty")
    if need("champion") == need("challenger"):
        raise ValueError(f"shadow {entry_id}: champion and challenger are the same version")
    return PairedScore(
        symbol=symbol,
        timeframe=timeframe,
        at=at.astimezone(UTC),
        bot_id=need("bot_id"),
        champion=need("champion"),
        challenger=need("challenger"),
        champion_probabilities=_probabilities(
            entry_id, "champion_probabilities", need("champion_probabilities")
        ),
        challenger_probabilities=_probabilities(
            entry_id, "challenger_probabilities", need("challenger_probabilities")
        ),
        champion_signal=signals["champion"] or None,
        challenger_signal=signals["challenger"] or None,
    )


def ingest(client: redis.Redis, registry: Registry, *, max_batches: int = 100) -> ShadowIngestReport:
    """Record the shadow entries after the cursor (at most ``max_batches`` x ``BATCH``), then move it."""
    counts = ScoreCounts()

    def record(scores: list[PairedScore]) -> None:
        nonlocal counts
        done = registry.shadows.record(scores)
        counts = ScoreCounts(counts.inserted + done.inserted, counts.duplicates + done.duplicates)

    drained = drain(
        client, SHADOW_STREAM, CURSOR_KEY, parse_entry, record, batch=BATCH, max_batches=max_batches, log=log
    )
    return ShadowIngestReport(
        drained.read, counts.inserted, counts.duplicates, drained.malformed, drained.cursor
    )


def check(
    registry: Registry,
    client: redis.Redis,
    settings: FarmSettings,
    store: BarStore,
    config: FarmConfig,
    *,
    now: datetime | None = None,
) -> ShadowCheckReport:
    """Decide, end or keep each active challenger, then fill free shadow slots (see the module docs).

    One market's failure (its pack, its bars) is reported and leaves the others to be checked.
    """
    now = now or datetime.now(UTC)
    report = ShadowCheckReport()
    for challenger in registry.shadows.all_active():
        market = f"{challenger.symbol} {challenger.timeframe}"
        try:
            champion = registry.champions.get(challenger.symbol, challenger.timeframe)
            if champion is None or champion.version != challenger.champion_version:
                promoted = champion is not None and champion.version == challenger.version
                outcome = ChallengerOutcome.PROMOTED if promoted else ChallengerOutcome.SUPERSEDED
                why = (
                    "it is the champion"
                    if promoted
                    else f"the champion changed to {champion and champion.version}"
                )
                ended = end_challenger(
                    challenger, outcome, why, registry=registry, client=client, settings=settings
                )
                report.ended.append(ended.to_json())
                continue
            verdict = judge(challenger, registry, store, config)
            if verdict.decision != "wait":
                decided = decide(challenger, verdict, registry=registry, client=client, settings=settings)
                report.decided.append(decided.to_json())
                log.info(
                    "%s: challenger %s %s: %s", market, challenger.version, decided.outcome, verdict.reason
                )
                continue
            max_age = config.params(Timeframe(challenger.timeframe)).promotion.shadow_max_age
            if expired(challenger, max_age, now):
                why = f"no decision within {format_duration(max_age)}: {verdict.reason}"
                ended = end_challenger(
                    challenger,
                    ChallengerOutcome.RETIRED,
                    why,
                    verdict.to_json(),
                    registry=registry,
                    client=client,
                    settings=settings,
                )
                report.ended.append(ended.to_json())
                continue
            report.waiting.append({"market": market, "version": challenger.version, "reason": verdict.reason})
        except FarmError as exc:
            report.errors.append(f"{market}: challenger {challenger.version}: {exc}")
            log.error("%s: challenger %s: %s", market, challenger.version, exc)
    for symbol in config.universe.symbols:
        for name in config.universe.timeframes:
            if config.params(Timeframe(name)).promotion.mode != "shadow":
                continue
            try:
                started = start_next(symbol, name, registry=registry, client=client, settings=settings)
            except FarmError as exc:
                report.errors.append(f"{symbol} {name}: starting the waiting candidate: {exc}")
                continue
            if started is not None:
                report.started.append(started.version)
    return report


def run(
    registry: Registry, client: redis.Redis, settings: FarmSettings
) -> tuple[ShadowIngestReport, ShadowCheckReport]:
    """What beat's ``check-shadow`` entry and `farm shadow --check` do: :func:`ingest`, then :func:`check`
    with the settings' store and config."""
    ingested = ingest(client, registry)
    return ingested, check(registry, client, settings, open_store(settings), settings.load_config())


__all__ = [
    "BATCH",
    "CURSOR_KEY",
    "ShadowCheckReport",
    "ShadowIngestReport",
    "check",
    "ingest",
    "parse_entry",
    "run",
]
