"""The JSON payloads that travel through the broker: small references, never frames or models.

Each Celery task parses its payload into one of these models and hands it to a plain function in
:mod:`trainfarm.workers.stages`. Validation here turns a malformed message into a clear error instead of a
KeyError deep in training. Files are named relative to the artifact root (``FARM_ARTIFACT_ROOT``), never
by an absolute path: workers on other machines mount the same store somewhere else.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainfarm.shared.errors import DataError
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe

_SHA256 = r"^[0-9a-f]{64}$"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunJob(_Payload):
    """Identifies one retrain run."""

    run_id: str = Field(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")
    symbol: str
    timeframe: str

    def symbol_id(self) -> str:
        return canonical_symbol(self.symbol)

    def tf(self) -> Timeframe:
        return parse_timeframe(self.timeframe)


class SnapshotRef(_Payload):
    """Where a run's dataset snapshot lives (relative to the artifact root) and what its bytes hash to."""

    path: str = Field(min_length=1, max_length=512)  #: POSIX path of the snapshot's JSON sidecar
    file_sha256: str = Field(pattern=_SHA256)
    content_hash: str = Field(pattern=_SHA256)

    @field_validator("path")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f"snapshot path {value!r} must be relative to the artifact root, without '..'")
        return value

    @classmethod
    def of(cls, meta_path: Path, root: Path, *, file_sha256: str, content_hash: str) -> SnapshotRef:
        """The reference of a sidecar at ``meta_path``, which must lie under the artifact root ``root``."""
        try:
            relative = meta_path.resolve().relative_to(root.resolve())
        except ValueError:
            raise DataError("snapshot lies outside the artifact root", file=str(meta_path)) from None
        return cls(path=relative.as_posix(), file_sha256=file_sha256, content_hash=content_hash)

    def resolve(self, root: Path) -> Path:
        """Where this host finds the sidecar: under its own mount of the artifact root."""
        return root.joinpath(*PurePosixPath(self.path).parts)


class StageJob(RunJob):
    """A run plus its snapshot and pinned config: the payload of train_base (with ``model``) and train_meta.

    ``config_hash`` is the hash of the config the run was prepared with; every stage checks that its own
    config hashes the same, so one run never mixes two configs.
    """

    snapshot: SnapshotRef
    config_hash: str = Field(pattern=_SHA256)
    model: str | None = Field(None, max_length=64)
