"""The market's challenger as a bot holds it: loaded beside the champion, verified alike, never acted on.

The farm names a challenger on ``farm:challenger:<S>:<T>`` (the champion key's JSON; see
:mod:`trainfarm_client.contract`). :class:`ChallengerSlot` follows that key: a new record is loaded with
the champion's checks (every file's sha256 against the manifest, whose sha256 the key gives; the
manifest's sample rows re-run), a missing key unloads it. A challenger that fails to load is refused with
the reason (``last_error``, in the heartbeat as ``challenger_error``) and tried again only when the key
changes or a minute later; the champion serves on regardless. :class:`~trainfarm_client.live.LiveModel`
scores the challenger on the same newest bar as the champion and reports the pair to ``farm:shadow``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from trainfarm_client.predictor import Predictor

log = logging.getLogger("trainfarm_client")

#: Seconds before a refused challenger record is tried again (a pack server may have been restarting).
RETRY_S = 60.0


@dataclass(frozen=True)
class LoadedChallenger:
    """A challenger that passed verification: its version, the key's value it came from, the pack."""

    version: str
    raw: bytes
    predictor: Predictor


class ChallengerSlot:
    """Follows the challenger key of one market; thread-safe to read while it changes."""

    def __init__(self, load: Callable[[bytes], tuple[str, Predictor]]) -> None:
        """``load(raw)``: the version the key's value ``raw`` names and its verified predictor, or an
        exception saying why not (:meth:`trainfarm_client.live.LiveModel` verifies as for a champion)."""
        self._load = load
        self._lock = threading.Lock()
        self._loaded: LoadedChallenger | None = None
        self._refused: bytes | None = None
        self._retry_at = 0.0
        #: Why the challenger named by the key is not loaded (None when it is, or when there is none).
        self.last_error: str | None = None

    @property
    def loaded(self) -> LoadedChallenger | None:
        """The loaded challenger, or None."""
        return self._loaded

    @property
    def version(self) -> str | None:
        """The loaded challenger's version, or None."""
        loaded = self._loaded
        return loaded.version if loaded else None

    def sync(self, raw: bytes | str | None) -> bool:
        """Bring the slot in line with the key's value ``raw`` (None: no challenger); True when it changed."""
        with self._lock:
            if raw is None:
                changed = self._loaded is not None
                self._loaded, self._refused, self.last_error = None, None, None
                if changed:
                    log.info("challenger unloaded (the farm ended it)")
                return changed
            data = raw.encode() if isinstance(raw, str) else raw
            loaded = self._loaded
            if loaded is not None and loaded.raw == data:
                return False
            if self._refused == data and time.monotonic() < self._retry_at:
                return False
            try:
                version, predictor = self._load(data)
            except Exception as exc:  # any failure: no challenger scored, the champion serves on
                self._refused, self._retry_at = data, time.monotonic() + RETRY_S
                self.last_error = f"refused challenger: {type(exc).__name__}: {exc}"
                log.warning("%s", self.last_error)
                return False
            self._loaded, self._refused, self.last_error = (
                LoadedChallenger(version, data, predictor),
                None,
                None,
            )
            log.info("challenger %s loaded beside the champion", version)
            return True


__all__ = ["RETRY_S", "ChallengerSlot", "LoadedChallenger"]
