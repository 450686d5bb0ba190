"""LiveModel: a bot's always-complete, always-verified view of the champion of one (symbol, timeframe).

How it stays current (see :mod:`trainfarm_client.contract`):

* on start it reads the durable champion key and loads that pack;
* a background thread subscribes to the promotion channel; a nudge makes it re-read the key at once;
* it also re-reads the key after every reconnect and every ``recheck_interval`` seconds, because pub/sub
  delivers at most once: a bot that missed the nudge (Redis restart, network cut) converges anyway.

The key is the truth. A nudge naming the version already served is ignored (unless it is a rollback);
any other makes the bot re-read the key, so a manual promotion of an older version arrives at once and a
late nudge costs one read. A new pack is loaded *beside* the old one: every file's sha256 is checked,
the manifest's sample rows are re-run and compared, and only then is one reference swapped. Any failure
keeps the old version serving and is reported (``last_error``, the logger, the heartbeat hash at once).
Nothing is unpickled. ``last_error`` is the current problem: it clears once the key is read again and
names what is served (or nothing), but a refused version stays reported while the key still names it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt
import redis
from redis.typing import EncodableT, FieldT

from trainfarm_client.challenger import ChallengerSlot
from trainfarm_client.contract import (
    CHALLENGER,
    OUTCOMES_MAXLEN,
    OUTCOMES_STREAM,
    ROLLBACK,
    SHADOW_MAXLEN,
    SHADOW_STREAM,
    FeatureValues,
    bot_key,
    challenger_key,
    champion_key,
    encode_features,
    promoted_channel,
    shadow_fields,
)
from trainfarm_client.errors import ChampionError, NoSignalError
from trainfarm_client.features import FEATURE_NAMES
from trainfarm_client.featurespec import Requirement
from trainfarm_client.predictor import Bars, Decision, NewestScore, Predictor
from trainfarm_client.remote import fetch_pack, is_remote, prune_cache

log = logging.getLogger("trainfarm_client")

ReloadCallback = Callable[["Champion | None", "Champion"], None]
_BACKOFF_MAX_S = 5.0
#: Longest wait between two fetches of a pack whose server failed.
_FETCH_BACKOFF_MAX_S = 60.0


@dataclass(frozen=True)
class Champion:
    """What the champion key says, as loaded."""

    symbol: str
    timeframe: str
    version: str
    sha256: str
    uri: str
    promoted_at: str

    @classmethod
    def from_json(cls, raw: str | bytes) -> Champion:
        """Parse the champion key's JSON; :class:`ChampionError` naming what is missing."""
        try:
            data = json.loads(raw)
            return cls(**{name: str(data[name]) for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise ChampionError(f"malformed champion record: {exc}") from exc

    @property
    def path(self) -> Path:
        """The pack folder named by a ``file:///...`` ``uri`` (``http(s)://`` packs are fetched first)."""
        parsed = urlparse(self.uri)
        if parsed.scheme not in ("file", ""):
            raise ChampionError(f"unsupported pack uri {self.uri!r} (expected file://)")
        return Path(unquote(parsed.path))


@dataclass(frozen=True)
class _Loaded:
    champion: Champion
    predictor: Predictor
    loaded_at: float


@dataclass(frozen=True)
class Score:
    """One scoring of the newest closed bar, all from the same loaded version (a reload may swap meanwhile).

    When the newest closed bar cannot be scored (missing, stale, incomplete, features warming up),
    ``probabilities``, ``decision`` and ``features`` are None and ``reason`` says why: no signal for that
    bar. ``features`` are the values the bar was scored on, in the pack's ``feature_names`` order: pass
    them to :meth:`LiveModel.report_outcome` so the farm can check them against its own (train/serve skew).
    """

    version: str
    bar: datetime | None  #: open time of the newest closed bar
    probabilities: npt.NDArray[np.float64] | None  #: (down, neutral, up)
    decision: Decision | None
    reason: str | None = None
    features: npt.NDArray[np.float64] | None = None  #: the newest bar's feature vector
    #: The challenger's score of the same bar (shadow mode; never acted on), or None without one.
    challenger: Score | None = None


class LiveModel:
    """The champion of ``symbol``/``timeframe``, hot-reloaded; thread-safe to query while it reloads."""

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        *,
        redis_url: str,
        bot_id: str | None = None,
        recheck_interval: float = 5.0,
        heartbeat_interval: float = 10.0,
        heartbeat_ttl: float = 30.0,
        socket_timeout: float = 5.0,
        cache_dir: Path | None = None,
        pack_token: str | None = None,
    ) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.bot_id = bot_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.recheck_interval = recheck_interval
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_ttl = heartbeat_ttl
        self.last_error: str | None = None
        #: Why the last scoring gave no signal (None after a bar was scored); also in the heartbeat.
        self.no_signal_reason: str | None = None
        self.reloads = 0
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._current: _Loaded | None = None
        self._swap_lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._callbacks: list[ReloadCallback] = []
        self._refused: Champion | None = None  # the key's record whose pack failed: not retried as is
        #: Remote packs (``http(s)://`` URIs) are fetched into this folder (see trainfarm_client.remote).
        self.cache_dir = cache_dir or Path.home() / ".cache" / "trainfarm" / "packs"
        self._pack_token = pack_token
        self._fetch_failures = 0  # consecutive failed fetches of the record below
        self._fetch_failed: Champion | None = None
        self._fetch_retry_at = 0.0  # monotonic time before which that record is not fetched again
        self._stop = threading.Event()
        self._reconnected = threading.Event()  # set by the pub/sub connection on every (re)connect
        self._last_beat = float("-inf")
        self._threads: list[threading.Thread] = []
        #: The market's challenger, when the farm names one (shadow mode): scored, reported, never acted on.
        self._challenger = ChallengerSlot(self._load_challenger)
        self._shadow_reported: tuple[str, str, datetime] | None = None  # the last pair and bar reported

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, *, background: bool = True) -> LiveModel:
        """Load the current champion (if any) and, with ``background``, start watching and heartbeating."""
        self.reload_if_changed()
        if background:
            for target, name in ((self._watch, "watch"), (self._heartbeat_loop, "heartbeat")):
                thread = threading.Thread(target=target, name=f"trainfarm-{name}-{self.bot_id}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop the background threads and remove this bot's heartbeat."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.recheck_interval + 5)
        with contextlib.suppress(redis.RedisError):  # the TTL removes it anyway
            self._redis.delete(bot_key(self.bot_id))
        self._redis.close()

    def __enter__(self) -> LiveModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The version being served, or None before a champion exists."""
        current = self._current
        return current.champion.version if current else None

    @property
    def champion(self) -> Champion | None:
        current = self._current
        return current.champion if current else None

    @property
    def predictor(self) -> Predictor:
        """The loaded predictor; :class:`ChampionError` while there is none."""
        current = self._current
        if current is None:
            raise ChampionError(f"no champion loaded for {self.symbol} {self.timeframe}")
        return current.predictor

    @property
    def challenger_version(self) -> str | None:
        """The challenger scored beside the champion (shadow mode), or None."""
        return self._challenger.version

    @property
    def challenger_error(self) -> str | None:
        """Why the challenger the farm names is not loaded (None when it is, or when there is none)."""
        return self._challenger.last_error

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        """The series the served pack reads (own first), each with the newest bars to feed; the keys
        :meth:`score` wants, as ``{(r.symbol, r.timeframe): bars}``. :class:`ChampionError` while no
        champion is loaded. A new champion may need other series: read it again after a reload. With a
        challenger loaded, the series it reads besides are listed too (the most bars either needs)."""
        needs = {r.key: r for r in self.predictor.requirements}
        challenger = self._challenger.loaded
        for r in challenger.predictor.requirements if challenger else ():
            if r.key not in needs or needs[r.key].bars < r.bars:
                needs[r.key] = r
        return tuple(needs.values())

    def predict_proba(self, bars: Bars, *, now: datetime | None = None) -> npt.NDArray[np.float64]:
        """(down, neutral, up) probabilities of the newest closed bar; :class:`NoSignalError` says why not."""
        scored = self.score(bars, now=now)
        if scored.probabilities is None:
            raise NoSignalError(scored.reason or "no signal")
        return scored.probabilities

    def decide(self, bars: Bars, *, now: datetime | None = None) -> Decision:
        """The trading decision for the newest closed bar (no signal when it cannot be scored)."""
        scored = self.score(bars, now=now)
        if scored.decision is None:
            return Decision(signal=None, probability=float("nan"), p_star=self.predictor.p_star)
        return scored.decision

    def score(self, bars: Bars, *, now: datetime | None = None) -> Score:
        """Probabilities and decision for the newest bar closed by ``now`` (default: the wall clock).

        ``bars``: the market's own bars, or, for a pack that reads other series (:attr:`requirements`: a
        higher bar size, another market), a mapping ``{(symbol, timeframe): bars}`` holding each. Only the
        newest own bar is ever scored: when it is missing, stale, incomplete or lacks features, or a
        required series is missing or stale, the score has no probabilities and says why (``reason``,
        :attr:`no_signal_reason`, the heartbeat).
        """
        current = self._current
        if current is None:
            raise ChampionError(f"no champion loaded for {self.symbol} {self.timeframe}")
        now = now or datetime.now(UTC)
        newest = current.predictor.score_newest(bars, now=now)
        self.no_signal_reason = newest.reason
        if newest.probabilities is None:
            return Score(current.champion.version, newest.bar, None, None, newest.reason)
        decision = current.predictor.decide(newest.probabilities)
        scored = Score(
            current.champion.version, newest.bar, newest.probabilities, decision, features=newest.features
        )
        shadow = self._score_challenger(current.predictor, scored, bars, now)
        return scored if shadow is None else replace(scored, challenger=shadow)

    def _score_challenger(
        self, source: Predictor, champion: Score, bars: Bars, now: datetime
    ) -> Score | None:
        """The challenger's score of the champion's bar, reported to ``farm:shadow`` once per pair and bar.

        A challenger with the champion's feature spec predicts the champion's feature row of that bar (the
        same function of the same bars); one with another spec computes its own from ``bars``."""
        loaded = self._challenger.loaded
        if loaded is None or loaded.version == champion.version or champion.bar is None:
            return None
        try:
            if loaded.predictor.spec == source.spec and champion.features is not None:
                probabilities = loaded.predictor.predict_features(champion.features[None])[0]
                newest = NewestScore(champion.bar, probabilities, None, champion.features)
            else:
                newest = loaded.predictor.score_newest(bars, now=now)
        except Exception as exc:  # the challenger must never cost the champion its signal
            return Score(loaded.version, champion.bar, None, None, f"challenger failed: {exc}")
        if newest.probabilities is None or newest.bar != champion.bar:
            return Score(loaded.version, newest.bar, None, None, newest.reason or "not the champion's bar")
        decision = loaded.predictor.decide(newest.probabilities)
        shadow = Score(loaded.version, newest.bar, newest.probabilities, decision, features=newest.features)
        self._report_shadow(champion, shadow)
        return shadow

    def _report_shadow(self, champion: Score, challenger: Score) -> None:
        assert champion.bar is not None and champion.probabilities is not None and champion.decision
        assert challenger.probabilities is not None and challenger.decision is not None
        key = (champion.version, challenger.version, champion.bar)
        if key == self._shadow_reported:
            return  # this bar is reported already (a bot may score one bar many times)
        fields = shadow_fields(
            bot_id=self.bot_id,
            symbol=self.symbol,
            timeframe=self.timeframe,
            at=champion.bar.isoformat(),
            champion=(champion.version, champion.probabilities.tolist(), champion.decision.signal),
            challenger=(challenger.version, challenger.probabilities.tolist(), challenger.decision.signal),
        )
        try:
            entry: dict[FieldT, EncodableT] = dict(fields.items())
            self._redis.xadd(SHADOW_STREAM, entry, maxlen=SHADOW_MAXLEN, approximate=True)
        except redis.RedisError as exc:  # the next bar is reported when Redis is back; this one is lost
            log.warning(
                "%s %s: shadow score of %s not reported: %s", self.symbol, self.timeframe, key[2], exc
            )
            return
        self._shadow_reported = key

    def on_reload(self, callback: ReloadCallback) -> None:
        """Call ``callback(old, new)`` after every successful swap (from the watching thread)."""
        self._callbacks.append(callback)

    # -- reloading -------------------------------------------------------------------------------

    def reload_if_changed(self) -> bool:
        """Re-read the champion key and load it if it names another version; True when it swapped.

        For polling bots (``start(background=False)``): never raises for Redis (the error is reported and
        the loaded version keeps serving) and refreshes the heartbeat when it is due.
        """
        try:
            return self._check()
        except redis.RedisError as exc:
            self._fail(f"redis unavailable: {exc}")
            return False
        finally:
            if time.monotonic() - self._last_beat >= self.heartbeat_interval:
                self._beat()

    def _check(self) -> bool:
        """:meth:`reload_if_changed`, letting Redis errors through (the watcher reconnects on them)."""
        with self._check_lock:
            # One round trip reads both keys: the champion's and the challenger's (shadow mode).
            raw, challenger = self._redis.mget(
                champion_key(self.symbol, self.timeframe), challenger_key(self.symbol, self.timeframe)
            )
            swapped = self._check_champion(raw)
            if self._current is not None:  # a challenger is scored beside a champion, never alone
                before = self._challenger.last_error
                if self._challenger.sync(challenger) or self._challenger.last_error != before:
                    self._beat()  # the heartbeat says what is shadowed, or why not, at once
            return swapped

    def _check_champion(self, raw: bytes | str | None) -> bool:
        """Load the version the champion key's value ``raw`` names when it is not the one served; True when
        it swapped."""
        if raw is None:
            self.last_error = None  # Redis answers and names no champion: nothing is wrong here
            return False
        try:
            champion = Champion.from_json(raw)
        except ChampionError as exc:
            self._fail(str(exc))
            return False
        if self._refused is not None and self._refused != champion:
            self._refused = None  # the key changed (another version, pack or promotion): try again
        if self._current is not None and champion.version == self._current.champion.version:
            if self._refused is None:
                self.last_error = None  # serving what the key names: an earlier problem has passed
            return False
        if self._refused == champion:
            return False  # already refused this very record; wait for the key to change
        if self._fetch_failed == champion and time.monotonic() < self._fetch_retry_at:
            return False  # its pack server failed: retried after a backoff, not on every nudge
        return self._load(champion)

    def _load_challenger(self, raw: bytes) -> tuple[str, Predictor]:
        """The challenger key's record loaded with the champion's checks (:class:`ChallengerSlot`)."""
        record = Champion.from_json(raw)
        if (record.symbol, record.timeframe) != (self.symbol, self.timeframe):
            raise ChampionError(f"the challenger key names {record.symbol} {record.timeframe}")
        predictor = Predictor.load(self._pack_folder(record), expected_manifest_sha256=record.sha256)
        predictor.self_check()
        if predictor.version != record.version:
            raise ChampionError(f"pack at {record.uri} is version {predictor.version}, not {record.version}")
        return record.version, predictor

    def _pack_folder(self, champion: Champion) -> Path:
        """The pack's local folder: the ``file://`` path, or the verified copy of an ``http(s)://`` pack."""
        if not is_remote(champion.uri):
            return champion.path
        return fetch_pack(champion.uri, champion.sha256, self.cache_dir, token=self._pack_token)

    def _load(self, champion: Champion) -> bool:
        try:
            folder = self._pack_folder(champion)
        except Exception as exc:  # server down, or a file that is not what the key names: retry later
            failures = self._fetch_failures + 1 if self._fetch_failed == champion else 1
            self._fetch_failed, self._fetch_failures = champion, failures
            wait = min(_FETCH_BACKOFF_MAX_S, self.recheck_interval * 2 ** (self._fetch_failures - 1))
            self._fetch_retry_at = time.monotonic() + wait
            self._fail(f"could not fetch version {champion.version}: {exc}; retrying in {wait:.0f} s")
            self._beat()
            return False
        self._fetch_failed, self._fetch_failures = None, 0
        try:
            predictor = Predictor.load(folder, expected_manifest_sha256=champion.sha256)
            predictor.self_check()
            if predictor.version != champion.version:
                raise ChampionError(
                    f"pack at {champion.uri} is version {predictor.version}, not {champion.version}"
                )
        except Exception as exc:  # any failure: keep serving the old version and say why
            self._refused = champion
            self._fail(f"refused version {champion.version}: {type(exc).__name__}: {exc}")
            self._beat()  # the heartbeat hash says why at once, not one heartbeat later
            return False
        # Cleared before the swap: a reader that sees the new version never sees the old problem.
        self._refused = None
        self.last_error = None
        with self._swap_lock:
            old = self._current
            self._current = _Loaded(champion, predictor, time.time())
        if is_remote(champion.uri):  # keep the served and the previous version in the cache, no more
            keep = {champion.version} | ({old.champion.version} if old else set())
            keep |= {self._challenger.version} if self._challenger.version else set()
            prune_cache(self.cache_dir, champion.uri, keep)
        self.reloads += 1
        log.info("%s %s: serving version %s", self.symbol, self.timeframe, champion.version)
        for callback in self._callbacks:
            try:
                callback(old.champion if old else None, champion)
            except Exception:
                log.exception("on_reload callback failed")
        self._beat()
        return True

    def _on_nudge(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            version, event = str(message["version"]), str(message.get("event", ""))
        except (ValueError, KeyError, TypeError):
            self._fail(f"malformed promotion message: {data!r:.200}")
            return
        if version == self.version and event not in (ROLLBACK, CHALLENGER):
            return  # a duplicate of what is served: nothing to read
        # Any other version is re-read from the key, the one source of truth: an older version may be a
        # manual promotion (event "promoted"), and a late or replayed nudge then costs one GET and changes
        # nothing. (Judging nudges by version order left manual promotions to the periodic re-check.)
        self._check()

    def _on_pubsub_connect(self, connection: object) -> None:
        # redis-py reconnects a pub/sub connection (and resubscribes) by itself on some errors, without
        # raising: this callback is how the watcher learns of it and re-reads the key (the nudge may be lost).
        self._reconnected.set()

    def _watch(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(promoted_channel(self.symbol, self.timeframe))
                if pubsub.connection is not None:
                    pubsub.connection.register_connect_callback(self._on_pubsub_connect)
                self._reconnected.clear()
                self._check()  # (re)connected: the nudge may have been missed meanwhile
                backoff = 0.2
                last_check = time.monotonic()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=min(1.0, self.recheck_interval))
                    if message is not None and message.get("type") == "message":
                        self._on_nudge(message["data"])
                    if self._reconnected.is_set() or time.monotonic() - last_check >= self.recheck_interval:
                        self._reconnected.clear()
                        self._check()
                        last_check = time.monotonic()
            except redis.RedisError as exc:
                self._fail(f"redis connection lost: {exc}")
                self._stop.wait(backoff)
                backoff = min(_BACKOFF_MAX_S, backoff * 2)
            except Exception as exc:  # never let the watcher die: a bot would silently stop updating
                log.exception("champion watcher failed; restarting it")
                self._fail(f"watcher failed: {type(exc).__name__}: {exc}")
                self._stop.wait(backoff)
                backoff = min(_BACKOFF_MAX_S, backoff * 2)
            finally:
                with contextlib.suppress(redis.RedisError):
                    pubsub.close()

    # -- heartbeat and outcomes ------------------------------------------------------------------

    def _beat(self) -> None:
        current = self._current
        fields: dict[FieldT, EncodableT] = {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "version": current.champion.version if current else "",
            "loaded_at": datetime.fromtimestamp(current.loaded_at, UTC).isoformat() if current else "",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "last_error": self.last_error or "",
            "no_signal_reason": self.no_signal_reason or "",
            "challenger": self._challenger.version or "",
            "challenger_error": self._challenger.last_error or "",
            "seen_at": datetime.now(UTC).isoformat(),
        }
        self._last_beat = time.monotonic()
        try:
            pipe = self._redis.pipeline()
            pipe.hset(bot_key(self.bot_id), mapping=fields)
            pipe.expire(bot_key(self.bot_id), max(1, int(self.heartbeat_ttl)))
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("heartbeat failed: %s", exc)

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            self._beat()
            self._stop.wait(self.heartbeat_interval)

    def report_outcome(
        self,
        *,
        signal: str,
        probability: float,
        realised_return: float | None = None,
        at: datetime | None = None,
        features: FeatureValues | None = None,
    ) -> str:
        """Report a signal (and, once known, its realised return) to the farm; returns the stream id.

        ``at`` is the bar the signal was scored on (``Score.bar``): the farm counts one outcome per (bot,
        version, bar), so report the signal when acting on it and again with ``realised_return`` once its
        horizon has passed; a repeated report is never counted twice.

        ``features`` (optional) are the feature values the bot computed for that bar (``Score.features``):
        a sequence in the pack's ``feature_names`` order, or a mapping of every feature name to its value.
        They go into the entry's ``features`` field as a JSON list of numbers in that order; the farm
        recomputes them from its own bars and flags a difference (train/serve skew). ``ValueError`` when a
        name is missing or unknown, the length differs from the pack's, or a value is not finite. Entries
        without the field stay valid (the contract is unchanged for bots that do not send it).
        """
        fields: dict[FieldT, EncodableT] = {
            "bot_id": self.bot_id,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "version": self.version or "",
            "signal": signal,
            "probability": repr(float(probability)),
            "realised_return": "" if realised_return is None else repr(float(realised_return)),
            "at": (at or datetime.now(UTC)).isoformat(),
        }
        if features is not None:
            current = self._current
            names = current.predictor.feature_names if current else FEATURE_NAMES
            fields["features"] = encode_features(features, [str(n) for n in names])
        entry = self._redis.xadd(OUTCOMES_STREAM, fields, maxlen=OUTCOMES_MAXLEN, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def _fail(self, message: str) -> None:
        self.last_error = message
        log.warning("%s %s: %s (still serving %s)", self.symbol, self.timeframe, message, self.version)
