"""Chronological splits with purge gaps, and purged walk-forward folds inside train.

A label at bar ``t`` looks ahead to ``label_end[t]`` (the date of bar ``t + horizon``). A training row whose
label ends at or after the first calibration bar would have learned from prices the calibration split is
scored on, so it is *purged* (dropped). The same rule separates calibration from test, and each walk-forward
fold's training rows from its validation chunk. What remains satisfies, strictly:

    max(label_end[train]) < min(date[calibration]),   max(label_end[calibration]) < min(date[test]).

Features need no embargo after a split: they look backwards only, and what they see of the previous split
is prices, never a label of the split being scored.

Rows must be one series sorted by date (strictly increasing) and every row must have a label end (drop
unlabelled rows first). Index arrays are positions into the rows passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm.shared.errors import DatasetError

Times = pl.Series | npt.NDArray[np.datetime64]
IndexArray = npt.NDArray[np.int64]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class Splits:
    """Row positions of the three splits, in time order, and the cut dates the purge used."""

    train: IndexArray
    calibration: IndexArray
    test: IndexArray
    calibration_start: datetime  #: first calibration bar; train labels end before it
    test_start: datetime  #: first test bar; calibration labels end before it
    purged_train: int  #: train rows dropped because their label reached into calibration
    purged_calibration: int  #: calibration rows dropped because their label reached into test

    def to_json(self) -> dict[str, object]:
        """Sizes and cut dates, for snapshot metadata and manifests."""
        return {
            "train_rows": int(self.train.size),
            "calibration_rows": int(self.calibration.size),
            "test_rows": int(self.test.size),
            "calibration_start": self.calibration_start.isoformat(),
            "test_start": self.test_start.isoformat(),
            "purged_train": self.purged_train,
            "purged_calibration": self.purged_calibration,
        }


@dataclass(frozen=True, eq=False)
class Fold:
    """One walk-forward fold; positions are relative to the train split's rows."""

    index: int  #: 0-based fold number
    train_idx: IndexArray  #: chunks 0..index, purged against the validation chunk
    valid_idx: IndexArray  #: chunk index + 1


def _to_datetime64(values: Times, name: str) -> npt.NDArray[np.datetime64]:
    if isinstance(values, pl.Series):
        if not isinstance(values.dtype, pl.Datetime):
            raise ValueError(f"{name} must be a datetime series, got {values.dtype}")
        if values.null_count():
            raise ValueError(f"{name} has {values.null_count()} nulls; drop unlabelled rows first")
        # Compare in UTC instants; to_numpy() of a zoned series gives its UTC wall clock.
        arr = values.dt.convert_time_zone("UTC").to_numpy() if values.dtype.time_zone else values.to_numpy()
    else:
        arr = np.asarray(values)
        if not np.issubdtype(arr.dtype, np.datetime64):
            raise ValueError(f"{name} must hold datetime64 values, got dtype {arr.dtype}")
        if np.isnat(arr).any():
            raise ValueError(f"{name} has {int(np.isnat(arr).sum())} missing values; drop unlabelled rows")
    return arr.astype("datetime64[us]")


def _as_utc(value: np.datetime64) -> datetime:
    micros = int(value.astype("datetime64[us]").astype(np.int64))
    return _EPOCH + timedelta(microseconds=micros)


def _check_times(dates: Times, label_end: Times) -> tuple[npt.NDArray[np.datetime64], ...]:
    d = _to_datetime64(dates, "dates")
    e = _to_datetime64(label_end, "label_end")
    if d.shape != e.shape or d.ndim != 1:
        raise ValueError(f"dates and label_end must be 1-d and equally long, got {d.shape} and {e.shape}")
    if d.size > 1 and not (np.diff(d) > np.timedelta64(0, "us")).all():
        raise ValueError("dates must be strictly increasing (one series, sorted by time)")
    # Both arguments are datetime columns of the same frame, so a swapped call would otherwise pass silently.
    if (e <= d).any():
        raise ValueError("every label_end must lie after its row's date (were dates and label_end swapped?)")
    return d, e


def chronological_split(
    label_end: Times,
    dates: Times,
    *,
    calibration_fraction: float,
    test_fraction: float,
    min_train_rows: int,
) -> Splits:
    """Split rows sorted by time into train / calibration / test, purging labels that cross a cut.

    The last ``test_fraction`` of the rows is test, the ``calibration_fraction`` before it calibration,
    the rest train (by row counts, before the purge). Then train rows with ``label_end >=`` the first
    calibration date and calibration rows with ``label_end >=`` the first test date are dropped. Raises
    :class:`DatasetError` when a split would be empty or train would keep fewer than ``min_train_rows``.
    """
    if not (0 < calibration_fraction < 1 and 0 < test_fraction < 1):
        raise ValueError("calibration_fraction and test_fraction must lie strictly between 0 and 1")
    if calibration_fraction + test_fraction >= 1:
        raise ValueError("calibration_fraction + test_fraction must leave rows for training")
    d, e = _check_times(dates, label_end)
    n = d.size
    test_start = n - round(n * test_fraction)
    cal_start = test_start - round(n * calibration_fraction)
    sizes = {"train": cal_start, "calibration": test_start - cal_start, "test": n - test_start}
    empty = [name for name, size in sizes.items() if size <= 0]
    if empty:
        raise DatasetError(
            f"{n} labelled rows are too few to split: the {' and '.join(empty)} split would be empty "
            f"(fractions calibration={calibration_fraction}, test={test_fraction})"
        )
    train_all = np.arange(cal_start, dtype=np.int64)
    cal_all = np.arange(cal_start, test_start, dtype=np.int64)
    train = train_all[e[train_all] < d[cal_start]]
    calibration = cal_all[e[cal_all] < d[test_start]]
    if calibration.size == 0:
        raise DatasetError(
            f"the calibration split ({cal_all.size} rows) is empty after purging labels that reach into "
            "test: the label horizon is longer than the calibration split; use more data"
        )
    if train.size < min_train_rows:
        raise DatasetError(
            f"training would have {train.size} rows after the purge ({train_all.size} before), fewer than "
            f"min_train_rows={min_train_rows}; use a longer training window or more data"
        )
    return Splits(
        train=train,
        calibration=calibration,
        test=np.arange(test_start, n, dtype=np.int64),
        calibration_start=_as_utc(d[cal_start]),
        test_start=_as_utc(d[test_start]),
        purged_train=int(train_all.size - train.size),
        purged_calibration=int(cal_all.size - calibration.size),
    )


def walk_forward_folds(
    dates: Times,
    label_end: Times,
    *,
    n_folds: int,
    min_train_rows: int,
) -> list[Fold]:
    """Expanding-window, purged walk-forward folds over the train split's rows.

    The rows are cut into ``n_folds + 1`` consecutive chunks of (nearly) equal size. Fold ``i`` trains on
    chunks ``0..i`` minus every row whose label ends at or after the validation chunk's first date, and
    validates on chunk ``i + 1``. Out-of-fold predictions thus exist exactly once for every row outside
    chunk 0. Raises :class:`DatasetError` when a chunk would be empty or a fold would train on fewer
    than ``min_train_rows`` rows.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    d, e = _check_times(dates, label_end)
    n = d.size
    if n < n_folds + 1:
        raise DatasetError(
            f"{n} training rows are too few for {n_folds} walk-forward folds ({n_folds + 1} chunks needed)"
        )
    chunks = np.array_split(np.arange(n, dtype=np.int64), n_folds + 1)
    folds: list[Fold] = []
    for i in range(n_folds):
        valid = chunks[i + 1]
        candidates = np.arange(valid[0], dtype=np.int64)
        train = candidates[e[candidates] < d[valid[0]]]
        if train.size < min_train_rows:
            raise DatasetError(
                f"walk-forward fold {i + 1} of {n_folds} would train on {train.size} rows after the purge "
                f"({candidates.size} before), fewer than min_train_rows={min_train_rows}; "
                f"{n} training rows are too few for {n_folds} folds"
            )
        folds.append(Fold(index=i, train_idx=train, valid_idx=valid))
    return folds


def oof_index(folds: list[Fold]) -> IndexArray:
    """Positions that receive an out-of-fold prediction (every validation chunk, in order)."""
    if not folds:
        return np.empty(0, dtype=np.int64)
    return np.concatenate([f.valid_idx for f in folds])
