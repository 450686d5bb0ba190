"""The drift policies' inputs for one market: the champion on the live window of the farm's own bars.

The live window is every bar after the champion's own data ends (:attr:`Predictor.fitted_until`, the
manifest's ``data.deployed.label_end``: no fitted part of the pack saw a bar after it), from the bar
store, resampled to the timeframe, complete bars only (as training uses), at most the latest
``drift_window``. Features are computed with the training code and the pack's feature spec over each
series' history before the window (the bars a bot feeds), so they equal training's; labels with the pack's
label parameters (:func:`trainfarm.shared.dataset.labels.add_labels`), so only bars whose horizon has passed
have one. Every bar counts, not only the ones a bot traded (those are a sample biased toward the model's
confident bars, the reason outcomes never feed training labels either).

Celery-free and failure-contained: whatever goes wrong for one market (no bars in the store, a pack that
does not load) becomes that market's ``unavailable`` reason, never an exception for the others.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy.typing as npt
import polars as pl

from trainfarm.shared.config import TimeframeParams
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.dataset.inputs import load_inputs
from trainfarm.shared.dataset.labels import add_labels
from trainfarm.shared.dataset.snapshot import drop_labels_of_incomplete_bars
from trainfarm.shared.errors import ArtifactError, DataNotFoundError, FarmError
from trainfarm.shared.monitoring.drift import FeatureDistribution, calibration_gap, psi
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry.models import VersionRecord
from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe
from trainfarm_client.arrays import FloatArray
from trainfarm_client.featurespec import FeatureSpec

log = logging.getLogger(__name__)

#: Loaded champion packs kept per process (each holds 8 models): a farm has a champion per market and
#: the check visits each; a new champion evicts the oldest.
PACK_CACHE = 16
DRIFT_POLICIES = ("feature_drift", "calibration_drift")


class ChampionPack(Protocol):
    """What the drift inputs need of a loaded pack (:class:`trainfarm.shared.packs.predictor.Predictor`)."""

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def fitted_until(self) -> datetime | None: ...

    def predict_features(self, x: npt.ArrayLike) -> FloatArray: ...


PackLoader = Callable[[VersionRecord], ChampionPack]


@functools.lru_cache(maxsize=PACK_CACHE)
def _load(path: str, manifest_sha256: str) -> Predictor:
    return Predictor.load(Path(path), expected_manifest_sha256=manifest_sha256)


def load_champion(record: VersionRecord) -> ChampionPack:
    """The champion's pack, verified against its registered sha256; cached by (path, manifest sha256)."""
    return _load(record.path, record.manifest_sha256)


@dataclass(frozen=True)
class DriftInputs:
    """What :class:`trainfarm.shared.monitoring.policies.Market` takes from the live window."""

    live_bars: int = 0
    feature_psi: dict[str, float] | None = None
    labelled_bars: int = 0
    calibration_gap: float | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


def feature_frame(
    store: BarStore, symbol: str, timeframe: Timeframe, manifest: dict[str, Any], since: datetime
) -> pl.DataFrame:
    """The stored bars of ``symbol`` from each series' history before ``since`` on (the pack's
    requirements: as many bars as a bot feeds), with the pack's features (its own spec).

    Raises :class:`~trainfarm.shared.errors.DataNotFoundError` when the store lacks a series it reads.
    """
    try:
        # (the market's own names first: a manifest written before feature sets may lack them)
        spec = FeatureSpec.from_manifest({"symbol": symbol, "timeframe": timeframe.value, **manifest})
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{symbol} {timeframe}: malformed feature spec in the manifest: {exc!r}") from exc
    inputs = load_inputs(store, spec, rows_from=since)
    bars = inputs[spec.key]
    if "bars" not in bars.columns:  # 5m bars come back as stored; they get their ``bars`` count too
        inputs = {**inputs, spec.key: resample(bars, timeframe)}
    return spec.compute(inputs)


def feature_names_of(manifest: Mapping[str, Any]) -> list[str]:
    """The pack's feature columns, in its models' order."""
    return [str(n) for n in manifest.get("feature_names", FEATURE_NAMES)]


def live_window(
    frame: pl.DataFrame, timeframe: Timeframe, since: datetime, window: int, names: Sequence[str]
) -> pl.DataFrame:
    """Complete bars after ``since`` with complete features ``names``, the latest ``window`` of them."""
    expected = max(1, timeframe.minutes // BASE_TIMEFRAME.minutes)
    whole = frame.filter((pl.col("date") > since) & (pl.col("bars") >= expected))
    return whole.drop_nulls(list(names)).tail(window)


def drift_inputs(
    champion: VersionRecord,
    timeframe: Timeframe,
    params: TimeframeParams,
    store: BarStore,
    load: PackLoader = load_champion,
) -> DriftInputs:
    """The live window's PSI and calibration gap for ``champion``; any failure is reported, not raised."""
    if not (params.triggers.feature_drift or params.triggers.calibration_drift):
        return DriftInputs()  # both off: nothing to load or compute
    try:
        return _inputs(champion, timeframe, params, store, load)
    except DataNotFoundError as exc:
        return _unavailable(f"bars missing from the farm's store: {exc}")
    except FarmError as exc:  # a pack that does not load, damaged bars: said in the detail
        log.warning("drift inputs of %s %s: %s", champion.symbol, timeframe, exc)
        return _unavailable(f"not computed: {exc}")
    except Exception as exc:  # one market's failure must not stop the check of the others
        log.exception("drift inputs of %s %s failed", champion.symbol, timeframe)
        return _unavailable(f"not computed: {type(exc).__name__}: {exc}")


def _unavailable(reason: str) -> DriftInputs:
    return DriftInputs(unavailable=dict.fromkeys(DRIFT_POLICIES, reason))


def _inputs(
    champion: VersionRecord, timeframe: Timeframe, params: TimeframeParams, store: BarStore, load: PackLoader
) -> DriftInputs:
    pack = load(champion)
    since = pack.fitted_until
    if since is None:
        return _unavailable("the champion's pack records no data end")
    manifest = pack.manifest
    frame = feature_frame(store, champion.symbol, timeframe, manifest, since)
    label = manifest.get("label") or {}
    horizon = int(label.get("horizon", params.label_horizon))
    frame = add_labels(
        frame,
        horizon=horizon,
        threshold=float(label.get("threshold", params.label_threshold)),
        vol_window=int(label.get("vol_window", params.vol_window)),
    )
    frame = drop_labels_of_incomplete_bars(frame, timeframe, horizon)
    names = feature_names_of(manifest)
    live = live_window(frame, timeframe, since, params.triggers.drift_window, names)
    unavailable: dict[str, str] = {}
    x = live.select(names).to_numpy()
    feature_psi: dict[str, float] | None = None
    raw = manifest.get("feature_distribution")
    if raw is None:
        unavailable["feature_drift"] = "pack has no training distribution (older pack)"
    elif live.height:
        try:
            feature_psi = psi(FeatureDistribution.from_json(raw), x, names)
        except ValueError as exc:
            unavailable["feature_drift"] = f"the pack's training distribution is unusable: {exc}"
    labelled = live.filter(pl.col("label").is_not_null())
    gap = None
    if labelled.height:
        probs = pack.predict_features(labelled.select(names).to_numpy())
        gap = calibration_gap(probs, labelled["label"].cast(pl.Int64).to_numpy())
    return DriftInputs(live.height, feature_psi, labelled.height, gap, unavailable)


__all__ = [
    "PACK_CACHE",
    "ChampionPack",
    "DriftInputs",
    "PackLoader",
    "drift_inputs",
    "feature_frame",
    "feature_names_of",
    "live_window",
    "load_champion",
]
