"""Dataset snapshots: the exact rows one retrain run learns from, written once and addressed by hash.

A snapshot is built from the store's bars at the timeframe (or 5m bars, resampled here): compute the
causal features, label the forward return, keep the timeframe's training window, split chronologically
with purge gaps. It is written as Parquet under ``<datasets>/<SYMBOL>/<TF>/<hash>.parquet`` with a JSON
sidecar. The hash covers the column values and the recipe (feature-spec version, label and split
parameters), not the Parquet bytes, so identical inputs give the identical hash whatever the Parquet
writer's version; the file's own sha256 is recorded too, for integrity checks before use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from trainfarm.shared.atomicio import atomic_write, atomic_write_text, sha256_file
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.features import FEATURE_SPEC_VERSION
from trainfarm.shared.dataset.inputs import feature_spec, load_inputs
from trainfarm.shared.dataset.labels import CLASSES, add_labels, class_weights
from trainfarm.shared.dataset.pruning import prune as prune_features
from trainfarm.shared.dataset.splits import Fold, chronological_split, inner_holdout, walk_forward_folds
from trainfarm.shared.errors import DataError, DatasetError
from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe, format_duration
from trainfarm_client.errors import BarsError
from trainfarm_client.featuresets import FeatureSetError
from trainfarm_client.featurespec import FeatureSpec, SeriesKey

if TYPE_CHECKING:
    from trainfarm.shared.data.store import BarStore

SPLITS = ("train", "calibration", "test")
#: Columns kept besides the features: what training, evaluation and the trading simulation need.
_CONTEXT = ("date", "label_end", "segment", "close", "fwd_return", "label_scale", "label", "split")


@dataclass(frozen=True)
class DatasetSnapshot:
    """Metadata of one written snapshot (the JSON sidecar)."""

    symbol: str
    timeframe: str
    content_hash: str
    file_sha256: str
    path: str
    rows: int
    first_bar: str
    last_bar: str
    split_rows: dict[str, int]
    split_first_bar: dict[str, str]
    feature_names: list[str]
    feature_spec_version: str
    classes: list[str]
    class_weights: dict[str, float]
    recipe: dict[str, object]
    config_hash: str
    created_at: str = field(compare=False)
    #: The feature spec's JSON (:class:`FeatureSpec`); sidecars written before feature sets have none.
    features: dict[str, Any] | None = None
    #: What ``[training] prune_features`` decided (:class:`~trainfarm.shared.dataset.pruning.Pruning`).
    pruning: dict[str, Any] | None = None

    def spec(self) -> FeatureSpec:
        """The features this snapshot's rows carry (core alone for a sidecar without ``features``)."""
        if self.features is not None:
            return FeatureSpec.from_json(self.features)
        gap = self.recipe.get("max_gap_bars", 3)
        return FeatureSpec(self.symbol, self.timeframe, int(gap) if isinstance(gap, int) else 3)

    def frame(self) -> pl.DataFrame:
        """Read the snapshot's rows, refusing a file whose bytes no longer match the recorded sha256."""
        path = Path(self.path)
        actual = sha256_file(path)
        if actual != self.file_sha256:
            raise DataError(
                f"snapshot file changed since it was written (sha256 {actual[:12]}...)", file=str(path)
            )
        return pl.read_parquet(path)

    def folds(
        self, frame: pl.DataFrame, *, n_folds: int, min_train_rows: int, min_train_share: float
    ) -> list[Fold]:
        """Purged walk-forward folds over the snapshot's train rows (positions within the train split),
        each training on at least ``min_train_share`` of them (see :func:`walk_forward_folds`)."""
        train = frame.filter(pl.col("split") == "train")
        return walk_forward_folds(
            train["date"],
            train["label_end"],
            n_folds=n_folds,
            min_train_rows=min_train_rows,
            min_train_share=min_train_share,
        )

    def inner_holdout(self, frame: pl.DataFrame, *, fraction: float, min_train_rows: int) -> Fold:
        """The purged inner holdout of the snapshot's train rows (see :func:`inner_holdout`)."""
        train = frame.filter(pl.col("split") == "train")
        return inner_holdout(
            train["date"], train["label_end"], fraction=fraction, min_train_rows=min_train_rows
        )


#: How a meta-only run splits the bars after the champion's data: the first half fits the stacker (the
#: "train" split: the champion's base models never saw it, so their predictions there are out of sample),
#: then a quarter calibration and a quarter test.
META_CALIBRATION_FRACTION = 0.25
META_TEST_FRACTION = 0.25


def build_frame(
    bars: pl.DataFrame,
    timeframe: Timeframe,
    config: FarmConfig,
    *,
    after: datetime | None = None,
    spec: FeatureSpec | None = None,
    context: Mapping[SeriesKey, pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """Features, labels and the split column for ``bars``; no I/O. Deterministic in its inputs.

    ``bars`` are the timeframe's bars with their ``bars`` count, as :meth:`BarStore.load` gives them (built
    from whatever interval is stored), or plain 5m bars, resampled here. ``spec`` says which features
    (default: the core set alone); ``context`` holds the other series it reads
    (:func:`trainfarm.shared.dataset.inputs.load_inputs`).

    With ``after`` (a meta-only run: the champion's data ends there), only rows after it are kept, at
    least the timeframe's ``meta_min_rows`` of them, split by :data:`META_CALIBRATION_FRACTION` and
    :data:`META_TEST_FRACTION`.
    """
    params = config.params(timeframe)
    if "bars" not in bars.columns:
        bars = resample(bars, timeframe)
    if bars.is_empty():
        raise DatasetError(f"no complete {timeframe} bars in the data")
    # Features and labels use all available history and the training window is cut afterwards: the EMAs
    # keep a faint memory of where they started, so the longest warm-up gives the most settled values.
    if spec is None:
        spec = FeatureSpec("", timeframe.value, params.max_gap_bars)
    names = spec.names()
    try:
        frame = spec.compute({**(context or {}), (spec.symbol, spec.timeframe): bars})
    except BarsError as exc:  # the bot client's error; farm code reports unusable data as a FarmError
        raise DataError(exc.problem, column=exc.column) from exc
    except FeatureSetError as exc:
        raise DatasetError(str(exc)) from exc
    frame = add_labels(
        frame, horizon=params.label_horizon, threshold=params.label_threshold, vol_window=params.vol_window
    )
    frame = drop_labels_of_incomplete_bars(frame, timeframe, params.label_horizon)
    window_start = bars["date"][-1] - params.training_window
    frame = frame.filter(pl.col("date") > window_start).drop_nulls([*names, "label"])
    if frame.height == 0:
        raise DatasetError(
            f"no labelled {timeframe} rows in the training window {format_duration(params.training_window)}"
        )
    splits = config.splits
    cal_fraction, test_fraction, min_train = (
        splits.calibration_fraction,
        splits.test_fraction,
        splits.min_train_rows,
    )
    if after is not None:
        frame = frame.filter(pl.col("date") > after)
        if frame.height < params.meta_min_rows:
            raise DatasetError(
                f"only {frame.height} labelled {timeframe} rows after {after.isoformat()} (the champion's "
                f"data); a meta-only retrain needs {params.meta_min_rows} (meta_min_rows)"
            )
        cal_fraction, test_fraction = META_CALIBRATION_FRACTION, META_TEST_FRACTION
        min_train = splits.min_fold_train_rows
    parts = chronological_split(
        frame["label_end"],
        frame["date"],
        calibration_fraction=cal_fraction,
        test_fraction=test_fraction,
        min_train_rows=min_train,
    )
    split = np.full(frame.height, "", dtype=object)
    split[parts.train] = "train"
    split[parts.calibration] = "calibration"
    split[parts.test] = "test"
    frame = frame.with_columns(split=pl.Series(split, dtype=pl.String))
    # Purged rows (label reaching into the next split) carry no split; they are not in the snapshot.
    frame = frame.filter(pl.col("split") != "")
    return frame.select(*_CONTEXT, *names)


def drop_labels_of_incomplete_bars(frame: pl.DataFrame, timeframe: Timeframe, horizon: int) -> pl.DataFrame:
    """No label from a resampled bar that lacks 5m bars (an outage inside its bucket).

    A label compares the close of bar ``t`` with the close of bar ``t + horizon``: when either bucket holds
    fewer 5m bars than its interval, its close is not the market's close at that time, so the row gets no
    label (and is neither trained nor tested on). Features keep such bars, so that the bars after them
    still have their history; a bot never scores one (:meth:`Predictor.score_newest`).
    """
    expected = max(1, timeframe.minutes // BASE_TIMEFRAME.minutes)
    whole = pl.col("bars") >= expected
    ok = whole & whole.shift(-horizon).over("segment").fill_null(False)
    return frame.with_columns(
        pl.when(ok).then(pl.col("label")).alias("label"),
        pl.when(ok).then(pl.col("label_end")).alias("label_end"),
        pl.when(ok).then(pl.col("fwd_return")).alias("fwd_return"),
    )


def content_hash(frame: pl.DataFrame, recipe: dict[str, object]) -> str:
    """sha256 over column names, types and values, plus the recipe: stable across Parquet writers."""
    digest = hashlib.sha256()
    digest.update(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode())
    for name in frame.columns:
        series = frame[name]
        digest.update(f"\x00{name}\x00{series.dtype}\x00".encode())
        digest.update(series.is_null().to_numpy().tobytes())
        if series.dtype == pl.String:
            digest.update("\x1f".join(series.fill_null("").to_list()).encode())
            continue
        if series.dtype.is_temporal():
            series = series.dt.epoch("ms")
        values = series.to_numpy()
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def build_snapshot(
    bars: pl.DataFrame,
    *,
    symbol: str,
    timeframe: Timeframe,
    config: FarmConfig,
    root: Path,
    after: datetime | None = None,
    spec: FeatureSpec | None = None,
    context: Mapping[SeriesKey, pl.DataFrame] | None = None,
    prune: bool = False,
) -> DatasetSnapshot:
    """Build (or reuse, when the same hash exists) the snapshot of ``symbol`` at ``timeframe``.

    ``bars``: see :func:`build_frame`. ``after``: a meta-only run's snapshot, of the rows after the
    champion's data (see :func:`build_frame`). ``spec``: the features (default: the config's for this
    market, :func:`~trainfarm.shared.dataset.inputs.feature_spec`); ``context``: the bars of the other
    series it reads. ``prune``: drop the features pruning finds useless on the train split
    (:mod:`trainfarm.shared.dataset.pruning`); the spec then records them as ``dropped``.
    """
    params = config.params(timeframe)
    if spec is None:
        spec = feature_spec(config, symbol, timeframe)
    frame = build_frame(bars, timeframe, config, after=after, spec=spec, context=context)
    pruning = None
    if prune:
        pruning = prune_features(frame, spec.names(), config)
        spec = replace(spec, dropped=(*spec.dropped, *pruning.dropped))
        frame = frame.drop(pruning.dropped)
    train = frame.filter(pl.col("split") == "train")
    weights = class_weights(train["label"])
    recipe: dict[str, object] = {
        "symbol": symbol,
        "timeframe": timeframe.value,
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "label_horizon": params.label_horizon,
        "label_threshold": params.label_threshold,
        "vol_window": params.vol_window,
        "max_gap_bars": params.max_gap_bars,
        "training_window": format_duration(params.training_window),
        "splits": config.splits.model_dump(mode="json"),
    }
    if not spec.core_only:  # (core alone keeps the hashes snapshots had before feature sets)
        recipe["features"] = spec.to_json()
    if prune:
        recipe["prune_features"] = True
    if after is not None:
        recipe["meta_only_after"] = after.isoformat()
        recipe["meta_fractions"] = [META_CALIBRATION_FRACTION, META_TEST_FRACTION]
    digest = content_hash(frame, recipe)
    folder = root / symbol / timeframe.value
    data_path = folder / f"{digest}.parquet"
    meta_path = folder / f"{digest}.json"
    if meta_path.exists() and data_path.exists():
        existing = load_snapshot(meta_path)
        if existing.file_sha256 == sha256_file(data_path):
            return existing
    atomic_write(data_path, lambda tmp: frame.write_parquet(tmp, compression="zstd", statistics=False))
    split_col = frame["split"]
    snapshot = DatasetSnapshot(
        symbol=symbol,
        timeframe=timeframe.value,
        content_hash=digest,
        file_sha256=sha256_file(data_path),
        path=str(data_path),
        rows=frame.height,
        first_bar=frame["date"][0].isoformat(),
        last_bar=frame["date"][-1].isoformat(),
        split_rows={s: int((split_col == s).sum()) for s in SPLITS},
        split_first_bar={s: frame.filter(split_col == s)["date"][0].isoformat() for s in SPLITS},
        feature_names=list(spec.names()),
        feature_spec_version=FEATURE_SPEC_VERSION,
        classes=list(CLASSES),
        class_weights={CLASSES[k]: v for k, v in sorted(weights.items())},
        recipe=recipe,
        config_hash=config.config_hash(),
        created_at=datetime.now(UTC).isoformat(),
        features=spec.to_json(),
        pruning=pruning.to_json() if pruning is not None else None,
    )
    # The sidecar goes last: a snapshot whose JSON exists is complete.
    atomic_write_text(meta_path, json.dumps(asdict(snapshot), indent=2, sort_keys=True) + "\n")
    return snapshot


def snapshot_from_store(
    store: BarStore,
    *,
    symbol: str,
    timeframe: Timeframe,
    config: FarmConfig,
    root: Path,
    end: datetime | None = None,
    after: datetime | None = None,
    spec: FeatureSpec | None = None,
) -> DatasetSnapshot:
    """:func:`build_snapshot` of the store's bars closed by ``end``: the market's own and every series
    ``spec`` reads, each cut at ``end`` too. Without ``spec``, the config's, pruned when
    ``[training] prune_features`` says so (a given spec, a champion's, is used as it is)."""
    prune = spec is None and config.training.prune_features
    spec = spec or feature_spec(config, symbol, timeframe)
    inputs = load_inputs(store, spec, end=end)
    return build_snapshot(
        inputs[spec.key],
        symbol=symbol,
        timeframe=timeframe,
        config=config,
        root=root,
        after=after,
        spec=spec,
        context=inputs,
        prune=prune,
    )


def load_snapshot(meta_path: Path) -> DatasetSnapshot:
    """Read a snapshot's JSON sidecar.

    The data file is the sidecar's sibling (``<hash>.parquet`` beside ``<hash>.json``), wherever this host
    mounts the artifact root: the absolute path recorded when it was written may be another machine's.
    """
    try:
        raw = json.loads(meta_path.read_text())
        raw["path"] = str(meta_path.with_suffix(".parquet"))
        return DatasetSnapshot(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"unreadable snapshot metadata: {exc}", file=str(meta_path)) from exc


def list_snapshots(root: Path, symbol: str | None = None) -> list[DatasetSnapshot]:
    """Every snapshot under ``root`` (optionally one symbol's), oldest first."""
    pattern = f"{symbol}/*/*.json" if symbol else "*/*/*.json"
    found = [load_snapshot(p) for p in root.glob(pattern)]
    return sorted(found, key=lambda s: (s.created_at, s.symbol, s.timeframe))
