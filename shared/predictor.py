"""Rebuild a whole predictor from an artifact pack alone, and prove it reproduces the pack's own outputs.

features (from raw bars, the same code as training) -> 8 base models -> 55 stacked features -> meta-learner
-> per-class isotonic calibration. Every file is checked against the manifest's sha256 before it is
loaded; nothing is unpickled (each model loads from its library's own format, the sklearn ones and the
calibrator from JSON arrays).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl

from shared.artifacts import read_manifest
from shared.errors import ArtifactError
from shared.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, add_features
from shared.labels import CLASSES
from shared.meta.calibration import IsotonicCalibrator
from shared.meta.learner import MetaModel
from shared.meta.stacking import stack_features
from shared.zoo.spec import Family

FloatArray = npt.NDArray[np.float64]
_FAMILIES = ("lightgbm", "xgboost", "catboost", "sklearn")


@dataclass(frozen=True)
class _Base:
    name: str
    family: Family
    model: Any


class Predictor:
    """A loaded, verified pack: ``predict_features`` for feature rows, ``predict_bars`` for raw bars."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        bases: list[_Base],
        meta: MetaModel,
        calibrator: IsotonicCalibrator,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self._bases = bases
        self._meta = meta
        self._calibrator = calibrator

    @classmethod
    def load(cls, pack: Path, *, expected_manifest_sha256: str | None = None) -> Predictor:
        """Verify and load the pack at ``pack``; :class:`ArtifactError` names whatever is wrong."""
        manifest = cast(dict[str, Any], read_manifest(pack, expected_sha256=expected_manifest_sha256))
        if manifest.get("feature_spec_version") != FEATURE_SPEC_VERSION:
            raise ArtifactError(
                f"{pack}: built with feature spec {manifest.get('feature_spec_version')!r}, "
                f"this code computes {FEATURE_SPEC_VERSION!r}"
            )
        if list(manifest.get("feature_names", [])) != list(FEATURE_NAMES):
            raise ArtifactError(f"{pack}: feature names differ from this code's")
        _check_references(pack, manifest)
        try:
            bases = [
                _Base(entry["name"], fam := _family(entry["kind"]), fam.load(pack / entry["file"]))
                for entry in manifest["base_models"]
            ]
            meta = MetaModel.from_text((pack / manifest["meta"]["file"]).read_text())
            calibrator = IsotonicCalibrator.from_json(
                json.loads((pack / manifest["calibrator"]["file"]).read_text())
            )
        except ArtifactError:
            raise
        except Exception as exc:  # any library's load error: the pack is unusable, say which and why
            raise ArtifactError(f"{pack}: cannot load: {type(exc).__name__}: {exc}") from exc
        return cls(pack, manifest, bases, meta, calibrator)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def p_star(self) -> float:
        return float(self.manifest["p_star"])

    def predict_features(self, x: npt.ArrayLike) -> FloatArray:
        """Calibrated (down, neutral, up) probabilities for rows of the pack's feature columns."""
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected rows of {len(FEATURE_NAMES)} features, got shape {rows.shape}")
        if rows.shape[0] == 0:  # e.g. fewer bars than the features' warm-up: some libraries fail on none
            return np.empty((0, len(CLASSES)), dtype=np.float64)
        probs = [b.family.predict_proba(b.model, rows) for b in self._bases]
        stacked = stack_features(probs, [b.name for b in self._bases])
        return self._calibrator.transform(self._meta.predict_proba(stacked))

    def predict_bars(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Probabilities for every bar of ``bars`` (this timeframe, oldest first) with complete features."""
        params = self.manifest["feature_params"]
        frame = add_features(
            bars,
            interval=timedelta(minutes=int(params["interval_minutes"])),
            max_gap_bars=int(params["max_gap_bars"]),
        ).drop_nulls(list(FEATURE_NAMES))
        probs = self.predict_features(frame.select(FEATURE_NAMES).to_numpy())
        return frame.select("date").with_columns(
            p_down=pl.Series(probs[:, 0]), p_neutral=pl.Series(probs[:, 1]), p_up=pl.Series(probs[:, 2])
        )

    def self_check(self, *, atol: float = 1e-6) -> None:
        """Run the manifest's sample rows and compare with the outputs stored at training time."""
        sample = self.manifest["sample_rows"]
        expected = np.asarray(sample["expected"], dtype=np.float64)
        actual = self.predict_features(sample["features"])
        if actual.shape != expected.shape or not np.allclose(actual, expected, atol=atol, rtol=0):
            worst = (
                float(np.max(np.abs(actual - expected))) if actual.shape == expected.shape else float("nan")
            )
            raise ArtifactError(f"{self.path}: sample rows do not reproduce (max difference {worst:.3g})")


def _check_references(pack: Path, manifest: dict[str, Any]) -> None:
    """Every file the predictor opens must be one that read_manifest verified (listed with its sha256)."""
    listed = manifest["files"]
    try:
        named = [(str(e["name"]), str(e["file"]), e.get("sha256")) for e in manifest["base_models"]]
        named += [("meta", str(manifest["meta"]["file"]), None)]
        named += [("calibrator", str(manifest["calibrator"]["file"]), None)]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"{pack}: malformed model entries in the manifest ({exc!r})") from exc
    for name, rel, sha256 in named:
        if rel not in listed:
            raise ArtifactError(f"{pack}: {name} file {rel} is not among the manifest's verified files")
        if sha256 is not None and sha256 != listed[rel]:
            raise ArtifactError(f"{pack}: {name} file {rel}: its sha256 differs from the files listing")


def _family(kind: str) -> Family:
    if kind not in _FAMILIES:
        raise ArtifactError(f"unknown model kind {kind!r} in manifest")
    return cast(Family, importlib.import_module(f"shared.zoo.{kind}_family"))
