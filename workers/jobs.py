"""The JSON payloads that travel through the broker: small references, never frames or models.

Each Celery task parses its payload into one of these models and hands it to a plain function in
:mod:`trainfarm.workers.stages`. Validation here turns a malformed message into a clear error instead of a
KeyError deep in training.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe


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
    """Where a run's dataset snapshot lives and what its bytes hash to."""

    meta_path: str
    file_sha256: str = Field(min_length=64, max_length=64)
    content_hash: str = Field(min_length=64, max_length=64)


class StageJob(RunJob):
    """A run plus its snapshot: the payload of train_base (with ``model``) and train_meta."""

    snapshot: SnapshotRef
    model: str | None = None
