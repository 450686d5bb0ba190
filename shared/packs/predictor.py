"""The pack predictor, for the farm: :class:`trainfarm_client.predictor.Predictor` raising farm errors.

Bots and the farm load packs with the same code, which lives in the bot client (see that module for what
loading verifies and rebuilds). The farm's handlers catch :class:`~trainfarm.shared.errors.FarmError`, so this
subclass turns the client's :class:`~trainfarm_client.errors.PackError` into
:class:`~trainfarm.shared.errors.ArtifactError` (itself a ``PackError``: code written against either still
works). Nothing else differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

from trainfarm.shared.errors import ArtifactError
from trainfarm_client import predictor as _client
from trainfarm_client.errors import PackError
from trainfarm_client.predictor import Decision, decide

__all__ = ["Decision", "Predictor", "decide", "fitted_until"]


class Predictor(_client.Predictor):
    """A loaded, verified pack (see :class:`trainfarm_client.predictor.Predictor`); raises ArtifactError."""

    @classmethod
    def load(cls, pack: Path, *, expected_manifest_sha256: str | None = None) -> Self:
        """Verify and load the pack at ``pack``; :class:`ArtifactError` names whatever is wrong."""
        try:
            return super().load(pack, expected_manifest_sha256=expected_manifest_sha256)
        except ArtifactError:
            raise
        except PackError as exc:
            raise ArtifactError(str(exc)) from exc

    @property
    def fitted_until(self) -> datetime | None:
        """The latest label end any fitted part of this pack saw (see :func:`fitted_until`)."""
        return fitted_until(self.manifest)

    def self_check(self, *, atol: float = 1e-6) -> None:
        """Reproduce the manifest's sample rows; :class:`ArtifactError` when they differ."""
        try:
            super().self_check(atol=atol)
        except ArtifactError:
            raise
        except PackError as exc:
            raise ArtifactError(str(exc)) from exc


def fitted_until(manifest: Mapping[str, Any]) -> datetime | None:
    """The latest label end any fitted part of a pack saw (the gates compare a champion only after it).

    A pack records it as ``data.deployed.label_end``. Older packs do not: their snapshot's last bar plus
    one label horizon bounds every label they were fitted on. None when the manifest has neither. Reads
    only the manifest, so callers that need no model (e.g. "is a meta-only retrain due?") stay cheap.
    """
    data = manifest.get("data")
    if not isinstance(data, dict):
        return None
    deployed = data.get("deployed")
    if isinstance(deployed, dict) and isinstance(deployed.get("label_end"), str):
        return datetime.fromisoformat(deployed["label_end"])
    last = data.get("last_bar")
    if not isinstance(last, str):
        return None
    interval = timedelta(minutes=int(manifest["feature_params"]["interval_minutes"]))
    return datetime.fromisoformat(last) + int(manifest["label"]["horizon"]) * interval
