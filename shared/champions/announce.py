"""The farm's side of the Redis contract with bots (:mod:`trainfarm_client.contract` names the keys).

Plain functions over a redis-py client, no Celery. :func:`announce` tells bots about a new champion in one
Lua script, atomic and in this order on the server: SET the champion key (the durable truth, first),
PUBLISH the nudge, XADD the event (``MAXLEN ~ EVENTS_MAXLEN``). The keys, their JSON and what bots may
rely on: docs/bot-contract.md#farmchampionst.

Why the script can be idempotent and monotonic: when the key already holds exactly this champion record
(an earlier attempt got through but its reply was lost, or a caller retries) nothing is done again, and a
record whose ``promoted_at`` is older than the stored one (a late retry of a superseded promotion) is
dropped. Promotion times are strictly increasing per market (the registry sees to that), and all are
written in one fixed-width ISO format, so comparing them as strings is comparing times. Every JSON is
compact with sorted keys: byte-identical for equal content, which the idempotency check relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from redis.typing import EncodableT, FieldT

from trainfarm.shared.errors import FarmError, RedisUnavailableError
from trainfarm_client.contract import (
    CHALLENGER,
    EVENTS_MAXLEN,
    EVENTS_STREAM,
    PROMOTED,
    ROLLBACK,
    challenger_key,
    champion_key,
    promoted_channel,
)

#: Events :func:`announce` may publish on the channel (the contract's two).
CHANNEL_EVENTS = (PROMOTED, ROLLBACK)

# KEYS: champion key, events stream. ARGV: record, channel, message, maxlen, promoted_at, event.
# Returns 1 (announced), 0 (this record is on the key already), -1 (a newer record is on the key).
_ANNOUNCE_LUA = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  return 0
end
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and type(stored['promoted_at']) == 'string'
      and stored['promoted_at'] > ARGV[5] then
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[6], 'data', ARGV[3])
return 1
"""


# KEYS: challenger key, events stream. ARGV: record (empty: clear), channel, message, maxlen, version.
# Sets the key (or, to clear, deletes it only while it still names ARGV[5]: a newer challenger's key
# stays), then publishes the nudge and appends the event. Returns 1, or 0 when a clear found another one.
_CHALLENGER_LUA = """
if ARGV[1] == '' then
  local current = redis.call('GET', KEYS[1])
  if current then
    local ok, stored = pcall(cjson.decode, current)
    if ok and type(stored) == 'table' and stored['version'] ~= ARGV[5] then
      return 0
    end
    redis.call('DEL', KEYS[1])
  end
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', 'challenger', 'data', ARGV[3])
return 1
"""


class NotifyError(FarmError):
    """Redis refused a contract write for a reason retrying will not fix (a key of the wrong type,
    scripting disabled), or the champion key holds something that is not a champion record.

    Handled by: the caller (the promotion stage reports it; the registry and pointer stay as they are).
    """


class AnnounceOutcome(StrEnum):
    """What :func:`announce` did."""

    ANNOUNCED = "announced"  #: key set, nudge published, event appended
    ALREADY = "already announced"  #: the key held this very record: nothing repeated
    SUPERSEDED = "superseded"  #: the key holds a newer champion: nothing written


_OUTCOMES = {1: AnnounceOutcome.ANNOUNCED, 0: AnnounceOutcome.ALREADY, -1: AnnounceOutcome.SUPERSEDED}


def dumps(data: Mapping[str, object]) -> str:
    """The contract's JSON spelling: compact, sorted keys, UTF-8 kept as is."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def iso_utc(at: datetime) -> str:
    """``at`` as fixed-width ISO 8601 UTC with microseconds (``2026-01-01T00:00:00.000000+00:00``).

    Fixed width, so that two of them compare as strings the way the times do; naive times are refused.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: promotion times are timezone-aware UTC")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def pack_uri(pack_path: Path | str, *, base_url: str | None = None, root: Path | None = None) -> str:
    """Where bots fetch a pack: ``<base_url>/<S>/<T>/<version>/`` when the farm serves its packs over
    HTTP (`farm serve-packs`, ``FARM_PACK_BASE_URL``; the pack's place under the artifact ``root``), else
    the folder's ``file://`` URI (absolute; bots on the same machine or mount open it)."""
    if base_url is not None:
        if root is None:
            raise ValueError("a pack URL needs the artifact root the pack lies under")
        relative = Path(pack_path).absolute().relative_to(Path(root).absolute())
        return base_url.rstrip("/") + "/" + "/".join(quote(part) for part in relative.parts) + "/"
    # absolute(), not resolve(): a symlinked artifact root (a shared mount) keeps the name bots know it by.
    return Path(pack_path).absolute().as_uri()


def champion_record(
    *,
    symbol: str,
    timeframe: str,
    version: str,
    manifest_sha256: str,
    pack_path: Path | str,
    promoted_at: datetime,
    base_url: str | None = None,
    root: Path | None = None,
) -> dict[str, str]:
    """The value of the champion key: the contract's six fields (``uri``: see :func:`pack_uri`)."""
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "version": version,
        "sha256": manifest_sha256,
        "uri": pack_uri(pack_path, base_url=base_url, root=root),
        "promoted_at": iso_utc(promoted_at),
    }


def announce(
    client: redis.Redis,
    *,
    symbol: str,
    timeframe: str,
    version: str,
    manifest_sha256: str,
    pack_path: Path | str,
    event: str,
    previous_version: str | None,
    promoted_at: datetime,
    base_url: str | None = None,
    root: Path | None = None,
) -> AnnounceOutcome:
    """SET the champion key, then PUBLISH the nudge, then XADD the event; atomic and idempotent.

    Raises :class:`~trainfarm.shared.errors.RedisUnavailableError` when Redis cannot be reached (nothing was
    written then: the script runs whole or not at all) and :class:`NotifyError` when Redis refuses.
    """
    if event not in CHANNEL_EVENTS:
        raise ValueError(f"event must be one of {CHANNEL_EVENTS}, got {event!r}")
    record = champion_record(
        symbol=symbol,
        timeframe=timeframe,
        version=version,
        manifest_sha256=manifest_sha256,
        pack_path=pack_path,
        promoted_at=promoted_at,
        base_url=base_url,
        root=root,
    )
    message = dumps({**record, "event": event, "previous_version": previous_version})
    script = client.register_script(_ANNOUNCE_LUA)
    keys = [champion_key(symbol, timeframe), EVENTS_STREAM]
    args: list[EncodableT] = [
        dumps(record),
        promoted_channel(symbol, timeframe),
        message,
        EVENTS_MAXLEN,
        record["promoted_at"],
        event,
    ]
    with _redis_errors(f"announcing {version} as champion of {symbol} {timeframe}"):
        result = script(keys=keys, args=args)
    return _OUTCOMES[int(result)]


def announce_challenger(
    client: redis.Redis,
    *,
    symbol: str,
    timeframe: str,
    version: str,
    record: Mapping[str, str] | None,
    details: Mapping[str, object],
) -> bool:
    """SET the challenger key to ``record`` (None: clear it, unless it names another version by now),
    PUBLISH a ``challenger`` nudge (``active`` says which) and XADD the event; atomic. False when a clear
    left a newer challenger's key alone (nothing published then)."""
    message = dumps(
        {
            **(record or {"symbol": symbol, "timeframe": timeframe, "version": version}),
            "event": CHALLENGER,
            "active": record is not None,
            **details,
        }
    )
    script = client.register_script(_CHALLENGER_LUA)
    args: list[EncodableT] = [
        dumps(record) if record is not None else "",
        promoted_channel(symbol, timeframe),
        message,
        EVENTS_MAXLEN,
        version,
    ]
    doing = f"{'announcing' if record else 'clearing'} challenger {version} of {symbol} {timeframe}"
    with _redis_errors(doing):
        result = script(keys=[challenger_key(symbol, timeframe), EVENTS_STREAM], args=args)
    return int(result) == 1


def read_challenger(client: redis.Redis, symbol: str, timeframe: str) -> dict[str, Any] | None:
    """The challenger record on the key, or None; :class:`NotifyError` when it is not a record."""
    return _read_record(client, challenger_key(symbol, timeframe), "challenger")


def record_event(client: redis.Redis, event: str, data: Mapping[str, object]) -> str:
    """Append one event (rejection, failure, ...) to the events stream; returns its stream id."""
    fields: dict[FieldT, EncodableT] = {"event": event, "data": dumps(data)}
    with _redis_errors(f"recording a {event} event"):
        entry = client.xadd(EVENTS_STREAM, fields, maxlen=EVENTS_MAXLEN, approximate=True)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def read_champion(client: redis.Redis, symbol: str, timeframe: str) -> dict[str, Any] | None:
    """The champion record on the key, or None when there is none; :class:`NotifyError` if malformed."""
    return _read_record(client, champion_key(symbol, timeframe), "champion")


def _read_record(client: redis.Redis, key: str, what: str) -> dict[str, Any] | None:
    with _redis_errors(f"reading {key}"):
        raw = client.get(key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise NotifyError(f"{key} holds no JSON: {exc}") from None
    if not isinstance(data, dict) or not {"version", "sha256", "uri", "promoted_at"} <= data.keys():
        raise NotifyError(f"{key} holds no {what} record: {str(raw)[:200]}")
    return data


@contextmanager
def _redis_errors(doing: str) -> Iterator[None]:
    # redis-py's errors become the farm's: unreachable is transient (retry later), the rest is not.
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailableError(f"Redis unreachable while {doing}: {exc}") from exc
    except redis.RedisError as exc:
        raise NotifyError(f"Redis refused {doing}: {exc}") from exc
