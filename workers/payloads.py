"""The JSON payloads that travel through the broker: small references, never frames or models.

Each Celery task parses its payload into one of these models and hands it to a plain function in
:mod:`trainfarm.workers.stages`. Validation here turns a malformed message into a clear error instead of a
KeyError deep in training. Files are named relative to the artifact root (``FARM_ARTIFACT_ROOT``), never
by an absolute path: workers on other machines mount the same store somewhere else.

Tasks parse through :func:`parse_payload`: a payload that is not a JSON object, is larger than
:data:`MAX_PAYLOAD_BYTES`, or does not validate is refused with one :class:`PayloadError` naming the task
and the field, before anything is read or written. The symbol and timeframe are checked here too, so a
path-traversal symbol never reaches the store or the artifact root.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from trainfarm.shared.errors import DataError, PayloadError
from trainfarm.shared.replay.clock import point_id
from trainfarm.shared.symbols import SymbolId
from trainfarm.shared.timeframes import TimeframeName

_SHA256 = r"^[0-9a-f]{64}$"

#: The largest payload (compact JSON) a task parses. The farm's own payloads are a few hundred bytes
#: (references, never frames or models); anything near this is a bug or an attack, refused unparsed.
MAX_PAYLOAD_BYTES = 64 * 1024

_Model = TypeVar("_Model", bound=BaseModel)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunJob(_Payload):
    """Identifies one retrain run."""

    run_id: str = Field(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")
    # A symbol that cannot be a store folder (separators, "..") is refused at the door, not in a stage;
    # both are held in their canonical spelling.
    symbol: SymbolId = Field(max_length=64)
    timeframe: TimeframeName


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


class ReplayJob(_Payload):
    """One retrain point of a replay: train on the bars closed by ``at``, in the replay's own namespace."""

    replay_id: str = Field(min_length=8, max_length=32, pattern=r"^[0-9a-f]+$")
    idx: int = Field(ge=0, le=9999)
    symbol: SymbolId = Field(max_length=64)
    timeframe: TimeframeName
    at: datetime
    config_hash: str = Field(pattern=_SHA256)

    @property
    def run_id(self) -> str:
        """The point's id (``<replay>-<idx>``): the prefix of its task ids, and its packs' run id."""
        return point_id(self.replay_id, self.idx)


class ReplayStageJob(ReplayJob):
    """A replay point plus its snapshot: the payload of replay_base (with ``model``) and replay_meta."""

    snapshot: SnapshotRef
    model: str | None = Field(None, max_length=64)


def parse_payload(model: type[_Model], payload: object, *, task: str) -> _Model:
    """``payload`` parsed into ``model``; :class:`PayloadError` naming ``task`` and the problem otherwise.

    The size is checked before parsing (compact JSON, at most :data:`MAX_PAYLOAD_BYTES`), so an oversized
    message costs one serialisation, never a validation of megabytes of fields.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"{task}: payload must be a JSON object, got {type(payload).__name__}")
    try:
        size = len(json.dumps(payload, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"{task}: payload is not plain JSON ({type(exc).__name__}: {exc})") from None
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"{task}: payload is {size:,} bytes, above the {MAX_PAYLOAD_BYTES // 1024} KiB cap "
            "(payloads carry references, never data); refused unparsed"
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise PayloadError(f"{task}: malformed payload: {problems}") from None


def _problem(error: ErrorDetails) -> str:
    """One pydantic error as "field: message (got value)", the value cut to 60 characters."""
    where = ".".join(str(part) for part in error["loc"]) or "(payload)"
    message = error["msg"]
    value = error.get("input")
    if isinstance(value, str | int | float) and not isinstance(value, bool) and error["type"] != "missing":
        text = repr(value)
        message += f" (got {text[:60]}{'...' if len(text) > 60 else ''})"
    return f"{where}: {message}"
