"""The Redis contract between the farm and live bots (bots in other languages depend on it too).

Keys and channels (``<S>`` is the canonical symbol id such as ``BTC_USDT``, ``<T>`` the timeframe such as
``1h``):

* ``farm:champion:<S>:<T>`` (string, JSON): the durable truth about the champion:
  ``{"symbol", "timeframe", "version", "sha256", "uri", "promoted_at"}``; ``sha256`` is the manifest's,
  ``uri`` the pack folder (``file:///...``), ``promoted_at`` ISO-8601 UTC. Written before anything is
  published; bots read it on start, on reconnect and every few seconds.
* ``farm:promoted:<S>:<T>`` (pub/sub channel): the same JSON plus ``"event"`` (``"promoted"`` or
  ``"rollback"``) and ``"previous_version"``. A nudge, delivered at most once: never the only source.
* ``farm:events`` (stream, capped): every promotion, rollback, rejection and failure, one entry each, with
  a field ``event`` and a field ``data`` holding the JSON.
* ``farm:bots:<bot id>`` (hash with a TTL): ``symbol``, ``timeframe``, ``version``, ``loaded_at``,
  ``host``, ``pid``; refreshed by the bot's heartbeat, so a missing hash means a dead bot.
* ``farm:outcomes`` (stream, capped): signals and realised results reported by bots, one entry per
  report with the fields ``bot_id``, ``symbol``, ``timeframe``, ``version``, ``signal`` (``up``/``down``),
  ``probability``, ``realised_return`` (empty until known) and ``at`` (the signal's bar, ISO-8601 with
  offset); optionally ``features``: a JSON list of the finite feature values the bot computed for that
  bar, in the pack's ``feature_names`` order (see :func:`encode_features`). An entry without ``features``
  is valid; the farm uses them only to detect train/serve skew.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence

EVENTS_STREAM = "farm:events"
OUTCOMES_STREAM = "farm:outcomes"
#: Approximate caps (XADD MAXLEN ~) of the streams: history for catch-up, not an archive.
EVENTS_MAXLEN = 10_000
OUTCOMES_MAXLEN = 100_000

#: Event names used on the channel and in the events stream.
PROMOTED = "promoted"
ROLLBACK = "rollback"
REJECTED = "rejected"
FAILED = "failed"
#: A trigger policy fired a retrain (events stream only; the farm's alerts read it).
TRIGGERED = "triggered"


def champion_key(symbol: str, timeframe: str) -> str:
    """The durable champion pointer of (symbol, timeframe)."""
    return f"farm:champion:{symbol}:{timeframe}"


def promoted_channel(symbol: str, timeframe: str) -> str:
    """The pub/sub channel that nudges bots of (symbol, timeframe)."""
    return f"farm:promoted:{symbol}:{timeframe}"


def bot_key(bot_id: str) -> str:
    """A bot's heartbeat hash."""
    return f"farm:bots:{bot_id}"


BOT_KEY_PATTERN = "farm:bots:*"


#: What a bot may pass as its feature values: name -> value, or the values (a list, a tuple, a 1-d numpy
#: array such as ``Score.features``) in the pack's order. (No numpy import here: this module is the
#: contract, importable with nothing installed.)
FeatureValues = Mapping[str, float] | Iterable[float]


def encode_features(features: FeatureValues, names: Sequence[str]) -> str:
    """The outcome entry's ``features`` field: a JSON list of the values in ``names``' order.

    ``ValueError`` when a mapping misses or adds a name, a sequence's length differs from ``names``, or a
    value is not finite (the farm would refuse such an entry as malformed).
    """
    if isinstance(features, Mapping):
        unknown = sorted(set(features) - set(names))
        missing = [n for n in names if n not in features]
        if unknown or missing:
            raise ValueError(f"features: unknown names {unknown}, missing names {missing}")
        values = [float(features[n]) for n in names]
    else:
        values = [float(v) for v in features]
        if len(values) != len(names):
            raise ValueError(f"features: {len(values)} values, the pack has {len(names)} features")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("features: every value must be a finite number")
    return json.dumps(values, separators=(",", ":"))
