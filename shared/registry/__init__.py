"""The registry of retrain runs, base-model results, versions, promotions, live outcomes and challengers.

``Registry.open()`` connects to the settings' database (SQLite under the farm home by default, PostgreSQL
via ``FARM_DATABASE_URL``), migrates it to the newest schema once per process, and gives one store per
aggregate: ``registry.runs``, ``registry.versions``, ``registry.champions``, ``registry.outcomes``,
``registry.replays`` and ``registry.shadows``.
"""

from __future__ import annotations

from trainfarm.shared.errors import (
    ActiveRunExistsError,
    AmbiguousRunIdError,
    NoChampionError,
    PromotionRefusedError,
    RegistryConflictError,
    RegistryError,
    RegistryUnavailableError,
    ReplayNotFoundError,
    RunNotFoundError,
    ShadowRefusedError,
    VersionNotFoundError,
)
from trainfarm.shared.registry.champion_store import ChampionStore, PromotionRecord, ReasonLike
from trainfarm.shared.registry.database import Database, upgrade, utc_now
from trainfarm.shared.registry.engine import create_registry_engine, dispose_engine
from trainfarm.shared.registry.models import (
    BaseResultRecord,
    BaseStatus,
    PromotionReason,
    RunKind,
    RunRecord,
    RunStatus,
    VersionRecord,
    VersionStatus,
    metric,
)
from trainfarm.shared.registry.outcome_store import OutcomeCounts, OutcomeStore, Signal
from trainfarm.shared.registry.replay_models import PointStatus, ReplayPointRecord, ReplayRecord, ReplayStatus
from trainfarm.shared.registry.replay_store import ReplayStore
from trainfarm.shared.registry.run_store import RunStore
from trainfarm.shared.registry.shadow_models import ChallengerOutcome, ChallengerRecord
from trainfarm.shared.registry.shadow_store import PairedScore, ScoreCounts, ShadowStore
from trainfarm.shared.registry.store import Registry
from trainfarm.shared.registry.version_store import VersionStore

__all__ = [
    "ActiveRunExistsError",
    "AmbiguousRunIdError",
    "BaseResultRecord",
    "BaseStatus",
    "ChallengerOutcome",
    "ChallengerRecord",
    "ChampionStore",
    "Database",
    "NoChampionError",
    "OutcomeCounts",
    "OutcomeStore",
    "PairedScore",
    "PointStatus",
    "PromotionReason",
    "PromotionRecord",
    "PromotionRefusedError",
    "ReasonLike",
    "Registry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryUnavailableError",
    "ReplayNotFoundError",
    "ReplayPointRecord",
    "ReplayRecord",
    "ReplayStatus",
    "ReplayStore",
    "RunKind",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "ScoreCounts",
    "ShadowRefusedError",
    "ShadowStore",
    "Signal",
    "VersionNotFoundError",
    "VersionRecord",
    "VersionStatus",
    "VersionStore",
    "create_registry_engine",
    "dispose_engine",
    "metric",
    "upgrade",
    "utc_now",
]
