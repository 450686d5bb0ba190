"""The registry as callers hold it: six stores (runs, versions, champions, outcomes, replays, shadows), one
database.

``Registry.open()`` gives ``registry.runs``, ``registry.versions``, ``registry.champions``,
``registry.outcomes``, ``registry.replays`` and ``registry.shadows``, which share one
:class:`~trainfarm.shared.registry.database.Database`. Every store
method is one short transaction and returns frozen records, never live ORM rows, so Celery tasks, the CLI and
bots can call them from any process or thread without sharing sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from trainfarm.shared.registry.champion_store import ChampionStore
from trainfarm.shared.registry.database import Database, open_engine, utc_now
from trainfarm.shared.registry.outcome_store import OutcomeStore
from trainfarm.shared.registry.replay_store import ReplayStore
from trainfarm.shared.registry.run_store import RunStore
from trainfarm.shared.registry.shadow_store import ShadowStore
from trainfarm.shared.registry.version_store import VersionStore
from trainfarm.shared.settings import get_settings


class Registry:
    """Runs (with their base results), versions, champions, live outcomes, replays and challengers, one store
    each."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        """Wrap an engine whose database is migrated already (see :meth:`open` and ``upgrade``)."""
        self.database = Database(engine, clock=clock)
        self.runs = RunStore(self.database)
        self.versions = VersionStore(self.database)
        self.champions = ChampionStore(self.database)
        self.outcomes = OutcomeStore(self.database)
        self.replays = ReplayStore(self.database)
        self.shadows = ShadowStore(self.database)

    @classmethod
    def open(cls, url: str | None = None, *, clock: Callable[[], datetime] | None = None) -> Registry:
        """The registry at ``url`` (default: the settings' database), migrated to head once per process."""
        return cls(open_engine(url or get_settings().database), clock=clock or utc_now)

    @property
    def engine(self) -> Engine:
        """The database's engine (one per URL per process when opened with :meth:`open`)."""
        return self.database.engine

    def close(self) -> None:
        """Close the engine's idle connections (it stays usable; new connections open on demand)."""
        self.database.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Registry"]
