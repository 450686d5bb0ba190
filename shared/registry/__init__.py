"""The registry of retrain runs, base-model results, versions, promotions and live outcomes.

``Registry.open()`` connects to the settings' database (SQLite under the farm home by default, PostgreSQL
via ``FARM_DATABASE_URL``) and migrates it to the newest schema once per process.
"""

from __future__ import annotations

from trainfarm.shared.registry.errors import ActiveRunExistsError
from trainfarm.shared.registry.migrations import create_registry_engine, dispose_engine
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
from trainfarm.shared.registry.outcomes import OutcomeCounts, Signal
from trainfarm.shared.registry.promotions import PromotionRecord
from trainfarm.shared.registry.store import (
    AmbiguousRunIdError,
    NoChampionError,
    PromotionRefusedError,
    Registry,
    RegistryConflictError,
    RegistryError,
    RegistryUnavailableError,
    RunNotFoundError,
    VersionNotFoundError,
    upgrade,
    utc_now,
)

__all__ = [
    "ActiveRunExistsError",
    "AmbiguousRunIdError",
    "BaseResultRecord",
    "BaseStatus",
    "NoChampionError",
    "OutcomeCounts",
    "PromotionReason",
    "PromotionRecord",
    "PromotionRefusedError",
    "Registry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryUnavailableError",
    "RunKind",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "Signal",
    "VersionNotFoundError",
    "VersionRecord",
    "VersionStatus",
    "create_registry_engine",
    "dispose_engine",
    "metric",
    "upgrade",
    "utc_now",
]
