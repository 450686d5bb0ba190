"""Rebuild a whole predictor from an artifact pack alone, and prove it reproduces the pack's own outputs.

features (from raw bars, the same code as training; a live decision computes its one row with
:mod:`trainfarm_client.newest`, to the same values) -> 8 base models -> the run's stacker ->
calibration.
Pack format 2 (``format_version``) stores the stacker the run chose and a temperature/shrinkage calibrator
(:mod:`trainfarm_client.stackers`, :mod:`trainfarm_client.calibration`); format 1 packs (no
``format_version``: the 55-feature LightGBM meta-learner and per-class isotonic calibration) still load.
A pack of a newer format than this client knows is refused, naming both formats.

Every file is checked against the manifest's sha256 before it is loaded
(:func:`trainfarm_client.pack.read_manifest`); nothing is unpickled (each model loads from its library's
own format, the sklearn ones, the linear stackers and the calibrator from JSON arrays).

A bot's use, in full::

    predictor = Predictor.load(pack_dir, expected_manifest_sha256=champion_sha256)
    predictor.self_check()                       # the manifest's sample rows, reproduced
    scored = predictor.predict_bars(bars)        # date, p_down, p_neutral, p_up per complete bar
    decision = predictor.decide(scored.select("p_down", "p_neutral", "p_up").row(-1))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm_client.arrays import FloatArray
from trainfarm_client.calibration import Calibration, load_calibration
from trainfarm_client.errors import PackError
from trainfarm_client.featuresets import CORE, FeatureSetError
from trainfarm_client.featurespec import FeatureSpec, Requirement, SeriesKey, bar_duration
from trainfarm_client.models import MODEL_KINDS, BaseModel, MetaBooster, load_base_model
from trainfarm_client.newest import closed_bars, newest_feature_row
from trainfarm_client.pack import PACK_FORMAT, read_manifest
from trainfarm_client.probs import DOWN, N_CLASSES, UP
from trainfarm_client.stackers import BoosterStacker, Stacker, load_stacker

Signal = Literal["up", "down"]

#: What a pack's features are computed from: the market's own bars (a pack that reads nothing else), or
#: the bars of every series its :attr:`Predictor.requirements` name, by (symbol, bar size).
Bars = pl.DataFrame | Mapping[SeriesKey, pl.DataFrame]


#: How late the newest closed bar may be (beyond one interval) before it counts as stale.
DEFAULT_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class NewestScore:
    """The score of the newest closed bar, or why there is none.

    ``bar`` is the open time of the newest closed bar (None when there is none); ``probabilities`` its
    (down, neutral, up) probabilities, or None with ``reason`` saying why it was not scored;
    ``features`` the feature values it was scored on, in the pack's ``feature_names`` order (None when
    it was not scored).
    """

    bar: datetime | None
    probabilities: FloatArray | None
    reason: str | None
    features: FloatArray | None = None


@dataclass(frozen=True)
class Decision:
    """What to do on one bar: ``signal`` is ``"up"``, ``"down"`` or ``None`` (stay out).

    ``probability`` is the directional confidence ``max(p_up, p_down)`` that was compared with ``p_star``,
    the pack's decision threshold (chosen on the calibration split at training time).
    """

    signal: Signal | None
    probability: float
    p_star: float


def decide(probs_row: npt.ArrayLike, p_star: float) -> Decision:
    """The decision for one row of (down, neutral, up) probabilities under the threshold ``p_star``.

    The farm's trading simulation (``trainfarm.shared.evaluation.trading.simulate``) scored the pack with
    this rule,
    so a bot trades what was evaluated: a signal when ``max(p_up, p_down) >= p_star``, up when
    ``p_up >= p_down`` (a tie goes up, as there), down otherwise. A row with NaN gives no signal.
    """
    row = np.asarray(probs_row, dtype=np.float64)
    if row.shape not in ((N_CLASSES,), (1, N_CLASSES)):
        raise ValueError(
            f"expected one row of {N_CLASSES} probabilities (down, neutral, up), got {row.shape}"
        )
    row = row.reshape(N_CLASSES)
    p_down, p_up = float(row[DOWN]), float(row[UP])
    confidence = max(p_up, p_down) if not (np.isnan(p_up) or np.isnan(p_down)) else float("nan")
    signal: Signal | None = None
    if confidence >= p_star:  # False for NaN
        signal = "up" if p_up >= p_down else "down"
    return Decision(signal=signal, probability=confidence, p_star=float(p_star))


class Predictor:
    """A loaded, verified pack: ``predict_features`` for feature rows, ``predict_bars`` for raw bars."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        bases: list[BaseModel],
        stacker: Stacker,
        calibration: Calibration,
        spec: FeatureSpec,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.spec = spec
        # Read once: a bot asks for them on every decision.
        self.feature_names: tuple[str, ...] = spec.names()
        self._requirements = spec.requirements()
        self._bases = bases
        self._stacker = stacker
        self._calibration = calibration

    @classmethod
    def load(cls, pack: Path, *, expected_manifest_sha256: str | None = None) -> Self:
        """Verify and load the pack at ``pack``; :class:`PackError` names whatever is wrong.

        ``expected_manifest_sha256`` is the registered sha256 of the manifest (the champion key's
        ``sha256``); without it the files are still checked against the manifest.
        """
        manifest = read_manifest(pack, expected_sha256=expected_manifest_sha256)
        fmt = manifest.get("format_version", 1)
        if not isinstance(fmt, int) or not 1 <= fmt <= PACK_FORMAT:
            raise PackError(
                f"{pack}: pack format {fmt!r} is newer than this client reads (up to {PACK_FORMAT}); "
                "upgrade trainfarm-client"
            )
        spec = _feature_spec(pack, manifest)
        _check_references(pack, manifest)
        try:
            bases = []
            for entry in manifest["base_models"]:
                kind = entry["kind"]
                if kind not in MODEL_KINDS:  # checked before anything is imported or opened for it
                    raise PackError(f"unknown model kind {kind!r} in manifest")
                bases.append(load_base_model(str(entry["name"]), kind, pack / entry["file"]))
            names = [b.name for b in bases]
            stacker: Stacker
            if fmt == 1:
                meta = MetaBooster.from_text((pack / manifest["meta"]["file"]).read_text())
                stacker = BoosterStacker(meta, tuple(names))
            else:
                stacker = load_stacker(pack, manifest["stacker"], names)
            calibration = load_calibration(json.loads((pack / manifest["calibrator"]["file"]).read_text()))
        except PackError:
            raise
        except Exception as exc:  # any library's load error: the pack is unusable, say which and why
            raise PackError(f"{pack}: cannot load: {type(exc).__name__}: {exc}") from exc
        return cls(pack, manifest, bases, stacker, calibration, spec)

    @property
    def version(self) -> str:
        """The pack's version id (``<UTC time>Z-<run id prefix>``)."""
        return str(self.manifest["version"])

    @property
    def base_models(self) -> tuple[BaseModel, ...]:
        """The loaded base models, in the manifest's order (what :meth:`base_probabilities` runs)."""
        return tuple(self._bases)

    @property
    def stacker(self) -> Stacker:
        """The loaded stacker: base models' probabilities to one distribution, before calibration."""
        return self._stacker

    @property
    def calibration(self) -> Calibration:
        """The loaded calibrator, applied to the stacker's output."""
        return self._calibration

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        """Every series the features read (own first) and how many of its newest bars to feed."""
        return self._requirements

    @property
    def p_star(self) -> float:
        """The decision threshold on ``max(p_up, p_down)``, chosen on the calibration split."""
        return float(self.manifest["p_star"])

    def predict_features(self, x: npt.ArrayLike) -> FloatArray:
        """Calibrated (down, neutral, up) probabilities for rows of the pack's feature columns."""
        rows = self._rows(x)
        if rows.shape[0] == 0:  # e.g. fewer bars than the features' warm-up: some libraries fail on none
            return np.empty((0, N_CLASSES), dtype=np.float64)
        base = self.base_probabilities(rows)
        return self._calibration.transform(self._stacker.predict(base, rows.shape[0]))

    def base_probabilities(self, x: npt.ArrayLike) -> dict[str, FloatArray]:
        """Each base model's (down, neutral, up) probabilities for rows of the pack's feature columns.

        What the stacker sees; the farm's meta-only retrain refits a stacker on them.
        """
        rows = self._rows(x)
        return {b.name: b.predict_proba(rows) for b in self._bases}

    def _rows(self, x: npt.ArrayLike) -> FloatArray:
        rows = np.asarray(x, dtype=np.float64)
        width = len(self.feature_names)
        if rows.ndim != 2 or rows.shape[1] != width:
            raise ValueError(f"expected rows of {width} features, got shape {rows.shape}")
        return rows

    def inputs(self, bars: Bars) -> Mapping[SeriesKey, pl.DataFrame]:
        """``bars`` as the mapping :meth:`FeatureSpec.compute` reads (a frame is the market's own bars)."""
        if isinstance(bars, pl.DataFrame):
            return {(self.spec.symbol, self.spec.timeframe): bars}
        return bars

    def predict_bars(self, bars: Bars) -> pl.DataFrame:
        """Probabilities for every bar (this timeframe, oldest first) with complete features.

        ``bars``: the market's own bars, or a mapping with every series of :attr:`requirements`. Returns
        ``date, p_down, p_neutral, p_up``; bars still in the features' warm-up are left out (feed each
        requirement's bars for training-exact values). Raises :class:`~trainfarm_client.errors.BarsError`
        for unusable or missing bars.
        """
        frame = self.feature_rows(bars)
        probs = self.predict_features(frame.select(self.feature_names).to_numpy())
        return frame.select("date").with_columns(
            p_down=pl.Series(probs[:, 0]), p_neutral=pl.Series(probs[:, 1]), p_up=pl.Series(probs[:, 2])
        )

    def feature_rows(self, bars: Bars) -> pl.DataFrame:
        """The own bars with the pack's features (:attr:`spec`), rows with a null feature left out."""
        return self.spec.compute(self.inputs(bars)).drop_nulls(list(self.feature_names))

    def score_newest(self, bars: Bars, *, now: datetime, grace: timedelta = DEFAULT_GRACE) -> NewestScore:
        """Score only the newest bar of the own bars that has closed by ``now``, or say why it cannot be.

        ``bars``: the market's own bars, or a mapping with every series of :attr:`requirements`. No
        score when: no bar has closed yet; the newest closed bar closed more than one interval plus
        ``grace`` before ``now`` (stale: the feed stopped); it is a resampled bar built from fewer 5m bars
        than its interval holds (a ``bars`` column, as the farm's store returns, says how many); a
        required series is missing or stale by the same rule; or its features are incomplete (after a gap
        they warm up again; a context bar is missing). An older bar is never scored instead.
        """
        found = self.newest_features(bars, now=now, grace=grace)
        if found.features is None:
            return found
        # Only the newest row is predicted: every stage maps a row to its probabilities on its own.
        probs = self.predict_features(found.features.reshape(1, -1))[0]
        return NewestScore(found.bar, probs, None, found.features)

    def newest_features(self, bars: Bars, *, now: datetime, grace: timedelta = DEFAULT_GRACE) -> NewestScore:
        """The features :meth:`score_newest` scores the newest closed bar on (``probabilities`` None).

        ``reason`` says why there are none, as :meth:`score_newest` does. A replay computes them once per
        bar and predicts them with several packs of the same features.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware (UTC)")
        inputs = self.inputs(bars)
        spec = self.spec
        missing = [str(r) for r in self._requirements if r.key not in inputs]
        if missing:
            return NewestScore(None, None, f"no bars given of {', '.join(missing)}, which this pack needs")
        interval = spec.interval
        closed = closed_bars(inputs[(spec.symbol, spec.timeframe)], interval=interval, now=now)
        if closed.is_empty():
            return NewestScore(None, None, f"no bar has closed by {now.isoformat()}")
        newest = closed["date"][-1]
        stale = _stale(closed, interval, now, grace)
        if stale is not None:
            return NewestScore(newest, None, f"newest closed bar {stale}")
        if "bars" in closed.columns:
            expected = max(1, interval // timedelta(minutes=5))
            have = int(closed["bars"][-1])
            if have < expected:
                return NewestScore(
                    newest,
                    None,
                    f"newest bar {newest.isoformat()} is incomplete: {have} of {expected} 5m bars",
                )
        if spec.core_only:
            # The newest row's features come from newest_feature_row (add_features' last row, without the
            # cost of a polars query) unless the bars need add_features itself to decide.
            features = newest_feature_row(closed, interval=interval, max_gap_bars=spec.max_gap_bars)
            if features is not None:
                return NewestScore(newest, None, None, features[0])
        closed_inputs = {(spec.symbol, spec.timeframe): closed}
        for need in self._requirements[1:]:
            size = bar_duration(need.timeframe)
            series = closed_bars(inputs[need.key], interval=size, now=now)
            if series.is_empty():
                return NewestScore(newest, None, f"{need.symbol} {need.timeframe}: no bar has closed yet")
            late = _stale(series, size, now, grace)
            if late is not None:
                return NewestScore(newest, None, f"{need.symbol} {need.timeframe}: newest closed bar {late}")
            closed_inputs[need.key] = series
        rows = spec.compute(closed_inputs).tail(1)
        last = rows.select(self.feature_names)
        empty = [name for name in self.feature_names if last[name][0] is None]
        if rows["date"][0] != newest or empty:
            shown = ", ".join(empty[:4]) + (f" and {len(empty) - 4} more" if len(empty) > 4 else "")
            return NewestScore(
                newest,
                None,
                f"newest bar {newest.isoformat()} has incomplete features ({shown or 'none'}: too little "
                "history, the features warming up again after a gap, or a context bar missing)",
            )
        return NewestScore(newest, None, None, last.to_numpy().astype(np.float64)[0])

    def decide(self, probs_row: npt.ArrayLike) -> Decision:
        """The trading decision for one row of (down, neutral, up) probabilities under this pack's p*."""
        return decide(probs_row, self.p_star)

    def self_check(self, *, atol: float = 1e-6) -> None:
        """Run the manifest's sample rows and compare with the outputs stored at training time.

        Raises :class:`PackError` when they differ by more than ``atol``: the pack, or this machine's
        libraries, do not compute what the farm computed, so the pack must not serve.
        """
        sample = self.manifest["sample_rows"]
        expected = np.asarray(sample["expected"], dtype=np.float64)
        actual = self.predict_features(sample["features"])
        if actual.shape != expected.shape or not np.allclose(actual, expected, atol=atol, rtol=0):
            worst = (
                float(np.max(np.abs(actual - expected))) if actual.shape == expected.shape else float("nan")
            )
            raise PackError(f"{self.path}: sample rows do not reproduce (max difference {worst:.3g})")


def _check_references(pack: Path, manifest: dict[str, Any]) -> None:
    """Every file the predictor opens must be one that read_manifest verified (listed with its sha256)."""
    listed = manifest["files"]
    try:
        named = [(str(e["name"]), str(e["file"]), e.get("sha256")) for e in manifest["base_models"]]
        if manifest.get("format_version", 1) == 1:
            named += [("meta", str(manifest["meta"]["file"]), None)]
        elif manifest["stacker"]["kind"] == "lightgbm":
            named += [("stacker", str(manifest["stacker"]["file"]), None)]
        named += [("calibrator", str(manifest["calibrator"]["file"]), None)]
    except (KeyError, TypeError, AttributeError) as exc:
        raise PackError(f"{pack}: malformed model entries in the manifest ({exc!r})") from exc
    for name, rel, sha256 in named:
        if rel not in listed:
            raise PackError(f"{pack}: {name} file {rel} is not among the manifest's verified files")
        if sha256 is not None and sha256 != listed[rel]:
            raise PackError(f"{pack}: {name} file {rel}: its sha256 differs from the files listing")


def _stale(closed: pl.DataFrame, interval: timedelta, now: datetime, grace: timedelta) -> str | None:
    """Why the newest of ``closed`` is stale (closed over one interval plus ``grace`` ago), or None."""
    newest = closed["date"][-1]
    age = now - (newest + interval)
    if age <= interval + grace:
        return None
    return (
        f"{newest.isoformat()} is stale: it closed {_human(age)} ago "
        f"(limit: one {_human(interval)} interval plus {_human(grace)})"
    )


def _feature_spec(pack: Path, manifest: Mapping[str, Any]) -> FeatureSpec:
    """The pack's feature spec, every set of it installed here at its version, naming the manifest's
    feature columns; PackError says which of these fails."""
    try:
        spec = FeatureSpec.from_manifest(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise PackError(f"{pack}: malformed feature spec in the manifest ({exc!r})") from exc
    core = next((ref.version for ref in spec.sets if ref.name == CORE), None)
    stated = manifest.get("feature_spec_version")
    if core is not None and stated != core:  # the field older clients read must say the same
        raise PackError(
            f"{pack}: the manifest's feature_spec_version {stated!r} is not its core set's version {core!r}"
        )
    try:
        names = spec.names()
    except FeatureSetError as exc:
        raise PackError(f"{pack}: {exc}") from exc
    if list(manifest.get("feature_names", [])) != list(names):
        raise PackError(f"{pack}: the manifest's feature names differ from what its feature sets compute")
    return spec


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds}s" if seconds < 120 else f"{seconds / 60:.1f}m"
