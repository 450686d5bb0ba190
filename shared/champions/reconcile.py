"""Reconciliation: the CHAMPION pointers and Redis champion keys brought back in line with the registry.

The registry is the truth about who is champion (:mod:`trainfarm.shared.champions.publish`). A promotion that
could not finish its last steps leaves the pointer or the Redis key behind: Redis lost its data (restarted
without its append-only file), or the registry went away right after its commit and the task ran out of
retries before it came back. :func:`reconcile` finds every market where the pointer or the key disagrees
with the registry and re-announces the registry's champion
(:func:`~trainfarm.shared.champions.publish.reannounce`: the pointer rewritten, the key set, a nudge
published). Where everything agrees it writes nothing, so beat runs it every ``[beat] reconcile`` (a minute
by default) at the cost of one query and one GET per market.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from trainfarm.shared.champions.announce import NotifyError, pack_uri, read_champion
from trainfarm.shared.champions.publish import read_pointer, reannounce
from trainfarm.shared.registry import Registry, VersionRecord
from trainfarm.shared.settings import FarmSettings


@dataclass(frozen=True)
class Repair:
    """One market whose pointer or key disagreed with the registry, and what was found there."""

    symbol: str
    timeframe: str
    version: str  #: the registry's champion, now on the pointer and the key
    pointer: str | None  #: what the CHAMPION pointer named before
    key: str | None  #: what the Redis key named before ("malformed" when it held no valid record)


def disagreement(
    champion: VersionRecord, client: redis.Redis, settings: FarmSettings
) -> tuple[str | None, str | None] | None:
    """``(pointer, key)`` as found when either differs from ``champion``; None when both agree."""
    sym, tf = champion.symbol, champion.timeframe
    pointer = read_pointer(settings.artifacts_dir, sym, tf)
    try:
        record = read_champion(client, sym, tf)
    except NotifyError:
        record = {"version": "malformed"}
    uri = pack_uri(champion.path, base_url=settings.pack_base_url, root=settings.artifacts_dir)
    expected = (champion.version, champion.manifest_sha256, uri)
    found = None if record is None else (record.get("version"), record.get("sha256"), record.get("uri"))
    if pointer == champion.version and found == expected:
        return None
    key = None if record is None else str(record.get("version"))
    return pointer, key


def reconcile(registry: Registry, client: redis.Redis, settings: FarmSettings) -> list[Repair]:
    """Re-announce the champion of every market whose pointer or Redis key disagrees with the registry.

    Redis errors propagate (the caller retries later); a market the registry holds no champion for is
    not touched (a bot keeps what it serves rather than being told of nothing).
    """
    repairs: list[Repair] = []
    for symbol, timeframe in registry.champions.markets():
        champion = registry.champions.get(symbol, timeframe)
        if champion is None:  # demoted since the listing
            continue
        found = disagreement(champion, client, settings)
        if found is None:
            continue
        result = reannounce(symbol, timeframe, registry=registry, client=client, settings=settings)
        if result is not None:
            repairs.append(Repair(symbol, timeframe, result.version, *found))
    return repairs
