"""The Redis contract between the farm and live bots (bots in other languages depend on it too).

The names are defined here, once; the full contract (every JSON field, ordering guarantees, what a bot
may rely on, the artifact packs) is docs/bot-contract.md in the farm's repository. In short (``<S>`` the
canonical symbol such as ``BTC_USDT``, ``<T>`` the timeframe such as ``1h``):

* ``farm:champion:<S>:<T>`` (string, JSON: ``symbol``, ``timeframe``, ``version``, ``sha256``, ``uri``,
  ``promoted_at``): the durable truth about the champion, written before anything is published; bots read
  it on start, on reconnect and every few seconds.
* ``farm:promoted:<S>:<T>`` (pub/sub): the same JSON plus ``event`` and ``previous_version``; a nudge,
  delivered at most once, never the only source.
* ``farm:events`` (stream, capped): fields ``event`` (``promoted``, ``rollback``, ``rejected``,
  ``failed``, ``triggered``) and ``data`` (JSON).
* ``farm:bots:<bot id>`` (hash with a TTL, the bot's heartbeat): ``symbol``, ``timeframe``, ``version``,
  ``loaded_at``, ``host``, ``pid``, ``last_error``, ``no_signal_reason``, ``seen_at``; a missing hash
  means a dead bot.
* ``farm:outcomes`` (stream, capped): one entry per report by a bot: ``bot_id``, ``symbol``,
  ``timeframe``, ``version``, ``signal`` (``up``/``down``), ``probability``, ``at`` (the signal's bar,
  ISO-8601 with offset), ``realised_return`` (empty until known) and optionally ``features``
  (:func:`encode_features`; used only to detect train/serve skew).
* ``farm:challenger:<S>:<T>`` (string, the champion key's JSON): the market's challenger, a version that
  bots score beside the champion without acting on it (shadow mode); absent when there is none. Its
  start and its end are nudged on ``farm:promoted:<S>:<T>`` with ``event`` ``challenger`` (``active``
  true or false): bots re-read the key on that nudge and every few seconds.
* ``farm:shadow`` (stream, capped): one entry per bar a bot scored with both champion and challenger:
  ``bot_id``, ``symbol``, ``timeframe``, ``at`` (the bar), ``champion`` and ``challenger`` (versions),
  ``champion_probabilities`` and ``challenger_probabilities`` (JSON lists: down, neutral, up),
  ``champion_signal`` and ``challenger_signal`` (``up``, ``down`` or empty). The farm pairs them per bar
  (:func:`shadow_fields`) and decides on the challenger from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence

EVENTS_STREAM = "farm:events"
OUTCOMES_STREAM = "farm:outcomes"
SHADOW_STREAM = "farm:shadow"
#: Approximate caps (XADD MAXLEN ~) of the streams: history for catch-up, not an archive.
EVENTS_MAXLEN = 10_000
OUTCOMES_MAXLEN = 100_000
SHADOW_MAXLEN = 100_000

#: Event names used on the channel and in the events stream.
PROMOTED = "promoted"
ROLLBACK = "rollback"
REJECTED = "rejected"
FAILED = "failed"
#: A trigger policy fired a retrain (events stream only; the farm's alerts read it).
TRIGGERED = "triggered"
#: A market's retrains are held back (stale_data, cannot_train), once per hold (events stream only).
HELD = "held"
#: A challenger started or ended (channel and events stream; ``active`` says which on the channel).
CHALLENGER = "challenger"


def champion_key(symbol: str, timeframe: str) -> str:
    """The durable champion pointer of (symbol, timeframe)."""
    return f"farm:champion:{symbol}:{timeframe}"


def promoted_channel(symbol: str, timeframe: str) -> str:
    """The pub/sub channel that nudges bots of (symbol, timeframe)."""
    return f"farm:promoted:{symbol}:{timeframe}"


def challenger_key(symbol: str, timeframe: str) -> str:
    """The challenger pointer of (symbol, timeframe): the champion key's JSON, absent without one."""
    return f"farm:challenger:{symbol}:{timeframe}"


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


def encode_probabilities(probabilities: Iterable[float]) -> str:
    """A shadow entry's probabilities field: the JSON list (down, neutral, up); ``ValueError`` unless
    three finite numbers in [0, 1]."""
    values = [float(p) for p in probabilities]
    if len(values) != 3 or not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in values):
        raise ValueError(f"probabilities: expected three numbers in [0, 1], got {values}")
    return json.dumps(values, separators=(",", ":"))


def shadow_fields(
    *,
    bot_id: str,
    symbol: str,
    timeframe: str,
    at: str,
    champion: tuple[str, Iterable[float], str | None],
    challenger: tuple[str, Iterable[float], str | None],
) -> dict[str, str]:
    """One ``farm:shadow`` entry: each of ``champion`` and ``challenger`` is (version, probabilities,
    signal or None); ``at`` is the scored bar's open time, ISO 8601 with offset."""
    fields = {"bot_id": bot_id, "symbol": symbol, "timeframe": timeframe, "at": at}
    for role, (version, probabilities, signal) in (("champion", champion), ("challenger", challenger)):
        fields[role] = version
        fields[f"{role}_probabilities"] = encode_probabilities(probabilities)
        fields[f"{role}_signal"] = signal or ""
    return fields
