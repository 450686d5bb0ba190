"""Chronological splits with purge gaps, purged walk-forward folds and a purged inner holdout inside train.

A label at bar ``t`` looks ahead to ``label_end[t]`` (the date of bar ``t + horizon``). A training row whose
label ends at or after the first calibration bar would have learned from prices the calibration split is
scored on, so it is *purged* (dropped). The same rule separates calibration from test, each walk-forward
fold's training rows from its validation chunk, and the inner holdout the boosted base models early-stop on
(:func:`inner_holdout`) from the rows fitted before it. What remains satisfies, strictly:

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
from trainfarm_client.arrays import IntArray

Times = pl.Series | npt.NDArray[np.datetime64]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class Splits:
    """Row positions of the three splits, in time order, and the cut dates the purge used."""

    train: IntArray
    calibration: IntArray
    test: IntArray
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
    """One walk-forward fold (or the inner holdout); positions are relative to the train split's rows."""

    index: int  #: 0-based fold number
    train_idx: IntArray  #: every row before the validation chunk, purged against it
    valid_idx: IntArray  #: the validation chunk: consecutive rows


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


def _purged_before(d: npt.NDArray[np.datetime64], e: npt.NDArray[np.datetime64], start: int) -> IntArray:
    """Rows before ``start`` whose label ends before row ``start``'s date (the purge rule)."""
    candidates = np.arange(start, dtype=np.int64)
    kept: IntArray = candidates[e[candidates] < d[start]]
    return kept


def _first_valid_row(d: npt.NDArray[np.datetime64], e: npt.NDArray[np.datetime64], need: int) -> int | None:
    """The first row ``v`` that has at least ``need`` purged training rows before it (None: no such row).

    The count of purged rows before ``v`` never decreases as ``v`` grows (a row kept before ``v`` has its
    label end before ``d[v] <= d[v + 1]``), so a binary search finds it.
    """
    lo, hi = 1, d.size - 1
    if hi < lo or _purged_before(d, e, hi).size < need:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if _purged_before(d, e, mid).size >= need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def walk_forward_folds(
    dates: Times,
    label_end: Times,
    *,
    n_folds: int,
    min_train_rows: int,
    min_train_share: float,
) -> list[Fold]:
    """Expanding-window, purged walk-forward folds over the train split's rows, each fold comparable in size
    to a fit on all of them.

    Every fold trains on at least ``min_train_share`` of the rows (after the purge), so the out-of-fold
    probabilities come from models not much smaller than the one fitted on the whole train split. The
    rows from the first row ``v`` that has that many purged rows before it to the end are cut into
    ``n_folds`` consecutive validation chunks of (nearly) equal size; fold ``i`` trains on every row before
    chunk ``i`` minus every row whose label ends at or after the chunk's first date, and validates on the
    chunk. Out-of-fold predictions thus exist exactly once for every row from ``v`` on: about
    ``1 - min_train_share`` of the rows. With ``min_train_share=0.5`` and 4 folds this is the train split
    cut into 8 chunks with the last 4 folds kept: folds train on about 4/8, 5/8, 6/8 and 7/8 of it.

    ``min_train_rows`` is a floor on every fold: where ``min_train_share`` of the rows is fewer (a small
    snapshot, or a share of 0), the first validation chunk starts later, after ``min_train_rows`` purged
    rows, and fewer rows get an out-of-fold prediction. Raises :class:`DatasetError` when what is left after
    that floor is fewer rows than folds.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    if not 0.0 <= min_train_share < 1.0:
        raise ValueError(f"min_train_share must lie in [0, 1), got {min_train_share}")
    d, e = _check_times(dates, label_end)
    n = d.size
    if n < n_folds + 1:
        raise DatasetError(
            f"{n} training rows are too few for {n_folds} walk-forward folds ({n_folds + 1} chunks needed)"
        )
    need = max(1, min_train_rows, int(np.ceil(min_train_share * n)))
    first = _first_valid_row(d, e, need)
    if first is None or n - first < n_folds:
        raise DatasetError(
            f"{n} training rows are too few for {n_folds} walk-forward folds that each train on at least "
            f"{need} rows after the purge (min_train_share={min_train_share}, "
            f"min_train_rows={min_train_rows}): {0 if first is None else n - first} rows are left for "
            f"{n_folds} validation chunks"
        )
    chunks = np.array_split(np.arange(first, n, dtype=np.int64), n_folds)
    return [
        Fold(index=i, train_idx=_purged_before(d, e, int(valid[0])), valid_idx=valid)
        for i, valid in enumerate(chunks)
    ]


def inner_holdout(dates: Times, label_end: Times, *, fraction: float, min_train_rows: int) -> Fold:
    """The last ``fraction`` of the rows as a holdout, and the rows before it purged against it.

    The boosted base models choose their number of rounds by early stopping on this holdout (see
    :mod:`trainfarm.shared.training.base`). Training rows are every row before the holdout whose label
    ends before the holdout's first date: the rule :func:`chronological_split` and the folds use. Returns a
    :class:`Fold` with index 0. Raises :class:`DatasetError` when the holdout would be empty or fewer than
    ``min_train_rows`` rows would remain to fit on.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    d, e = _check_times(dates, label_end)
    n = d.size
    start = n - round(n * fraction)
    if not 0 < start < n:
        raise DatasetError(f"{n} training rows are too few for an inner holdout of {fraction:.0%}")
    train = _purged_before(d, e, start)
    if train.size < min_train_rows:
        raise DatasetError(
            f"the inner holdout ({n - start} rows) leaves {train.size} rows to fit on after the purge "
            f"({start} before), fewer than min_train_rows={min_train_rows}; use more data"
        )
    return Fold(index=0, train_idx=train, valid_idx=np.arange(start, n, dtype=np.int64))


def oof_index(folds: list[Fold]) -> IntArray:
    """Positions that receive an out-of-fold prediction (every validation chunk, in order)."""
    if not folds:
        return np.empty(0, dtype=np.int64)
    return np.concatenate([f.valid_idx for f in folds])
