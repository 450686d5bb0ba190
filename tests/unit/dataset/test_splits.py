"""Chronological splits, walk-forward folds and the inner holdout: order, purge gaps, OOF coverage, fold
sizes, errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.services import SAMPLE_DIR
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.features import FEATURE_NAMES, add_features
from trainfarm.shared.dataset.labels import add_labels
from trainfarm.shared.dataset.splits import (
    Fold,
    Splits,
    chronological_split,
    inner_holdout,
    oof_index,
    walk_forward_folds,
)
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.timeframes import Timeframe

SAMPLE = SAMPLE_DIR
START = np.datetime64("2024-01-01T00:00", "ms")
HOUR = np.timedelta64(1, "h")


def hourly(n: int, horizon: int) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.datetime64]]:
    """Regular hourly rows whose labels end ``horizon`` bars later."""
    dates = START + np.arange(n) * HOUR
    return dates, dates + horizon * HOUR


def split(dates: object, label_end: object, *, min_train_rows: int = 10, **fractions: float) -> Splits:
    kw = {"calibration_fraction": 0.15, "test_fraction": 0.15, **fractions}
    return chronological_split(label_end, dates, min_train_rows=min_train_rows, **kw)  # type: ignore[arg-type]


def assert_splits_are_purged(
    s: Splits, dates: npt.NDArray[np.datetime64], end: npt.NDArray[np.datetime64]
) -> None:
    parts = [s.train, s.calibration, s.test]
    assert all(p.size > 0 for p in parts)
    assert all((np.diff(p) > 0).all() for p in parts)  # each in time order
    assert np.intersect1d(s.train, s.calibration).size == 0
    assert np.intersect1d(s.calibration, s.test).size == 0
    assert s.train[-1] < s.calibration[0] and s.calibration[-1] < s.test[0]
    # The purge: no training label sees a calibration price, no calibration label sees a test price.
    assert end[s.train].max() < dates[s.calibration].min()
    assert end[s.calibration].max() < dates[s.test].min()
    assert s.test[-1] == dates.size - 1


def assert_folds_are_purged(
    folds: list[Fold],
    dates: npt.NDArray[np.datetime64],
    end: npt.NDArray[np.datetime64],
    n_folds: int,
    *,
    share: float = 0.0,
    min_rows: int = 1,
) -> None:
    n = dates.size
    need = max(1, min_rows, math.ceil(share * n))
    assert len(folds) == n_folds
    for i, fold in enumerate(folds):
        assert fold.index == i
        assert fold.train_idx.size > 0 and fold.valid_idx.size > 0
        assert fold.train_idx.max() < fold.valid_idx.min()
        assert end[fold.train_idx].max() < dates[fold.valid_idx].min()
        # Exactly the purge rule: every earlier row whose label ends before the chunk starts, no other.
        before = np.arange(fold.valid_idx[0])
        assert np.array_equal(fold.train_idx, before[end[before] < dates[fold.valid_idx[0]]])
        # Comparable to the final fit: every fold trains on at least the share (and the floor), purged.
        assert fold.train_idx.size >= need
        if i:  # expanding window
            assert np.isin(folds[i - 1].train_idx, fold.train_idx).all()
    # The first validation chunk starts at the first row that has enough purged rows before it.
    first_valid = int(folds[0].valid_idx[0])
    earlier = np.arange(first_valid - 1)
    assert (end[earlier] < dates[first_valid - 1]).sum() < need
    # Every row from there on gets exactly one out-of-fold prediction; the rows before it none.
    oof = oof_index(folds)
    assert np.array_equal(np.sort(oof), np.arange(first_valid, n))
    assert np.unique(oof).size == oof.size
    sizes = [f.valid_idx.size for f in folds]
    assert max(sizes) - min(sizes) <= 1  # equal chunks


@settings(deadline=None, max_examples=50)
@given(
    n=st.integers(1000, 5000),
    horizon=st.integers(1, 24),
    cal=st.floats(0.05, 0.3),
    test=st.floats(0.05, 0.3),
    n_folds=st.integers(2, 8),
    share=st.floats(0.0, 0.9),
)
def test_purge_on_regular_synthetic_rows(
    n: int, horizon: int, cal: float, test: float, n_folds: int, share: float
) -> None:
    dates, end = hourly(n, horizon)
    s = split(dates, end, calibration_fraction=cal, test_fraction=test)
    assert_splits_are_purged(s, dates, end)
    # On regular bars exactly the last `horizon` rows before each cut are purged.
    assert s.purged_train == horizon and s.purged_calibration == horizon
    assert s.train.size + s.calibration.size + s.test.size == n - 2 * horizon
    folds = walk_forward_folds(
        dates[s.train], end[s.train], n_folds=n_folds, min_train_rows=1, min_train_share=share
    )
    assert_folds_are_purged(folds, dates[s.train], end[s.train], n_folds, share=share)
    for fold in folds:
        assert fold.valid_idx[0] - fold.train_idx[-1] == horizon + 1


@settings(deadline=None, max_examples=30)
@given(
    steps=st.lists(st.integers(1, 40), min_size=400, max_size=1500),
    horizon=st.integers(1, 12),
    share=st.floats(0.0, 0.9),
    min_rows=st.integers(1, 150),
)
def test_purge_on_irregular_synthetic_rows(
    steps: list[int], horizon: int, share: float, min_rows: int
) -> None:
    """Rows after a gap, and labels whose horizon spans one, still respect the purge."""
    dates = START + np.cumsum(steps) * HOUR
    end = np.concatenate([dates[horizon:], dates[-1] + np.arange(1, horizon + 1) * HOUR])
    s = split(dates, end)
    assert_splits_are_purged(s, dates, end)
    train_dates, train_end = dates[s.train], end[s.train]
    folds = walk_forward_folds(
        train_dates, train_end, n_folds=4, min_train_rows=min_rows, min_train_share=share
    )
    assert_folds_are_purged(folds, train_dates, train_end, 4, share=share, min_rows=min_rows)
    held = inner_holdout(train_dates, train_end, fraction=0.2, min_train_rows=1)
    assert_holdout_is_purged(held, train_dates, train_end, fraction=0.2)


def assert_holdout_is_purged(
    held: Fold, dates: npt.NDArray[np.datetime64], end: npt.NDArray[np.datetime64], *, fraction: float
) -> None:
    n = dates.size
    start = int(held.valid_idx[0])
    assert np.array_equal(held.valid_idx, np.arange(start, n))  # the time-ordered tail
    assert held.valid_idx.size == round(n * fraction)
    # No fitted row's label reaches the holdout, and only those rows are dropped.
    assert end[held.train_idx].max() < dates[start]
    before = np.arange(start)
    assert np.array_equal(held.train_idx, before[end[before] < dates[start]])


@settings(deadline=None, max_examples=30)
@given(n=st.integers(300, 3000), horizon=st.integers(1, 24), fraction=st.floats(0.05, 0.5))
def test_inner_holdout_is_the_purged_tail(n: int, horizon: int, fraction: float) -> None:
    dates, end = hourly(n, horizon)
    held = inner_holdout(dates, end, fraction=fraction, min_train_rows=10)
    assert_holdout_is_purged(held, dates, end, fraction=fraction)
    # On regular bars exactly the last `horizon` rows before the holdout are purged.
    assert held.valid_idx[0] - held.train_idx.size == horizon
    assert held.index == 0


def test_inner_holdout_errors() -> None:
    dates, end = hourly(300, 6)
    with pytest.raises(DatasetError, match=r"leaves 234 rows to fit on .* min_train_rows=250"):
        inner_holdout(dates, end, fraction=0.2, min_train_rows=250)
    with pytest.raises(DatasetError, match="too few for an inner holdout"):
        inner_holdout(dates[:2], end[:2], fraction=0.2, min_train_rows=1)
    with pytest.raises(ValueError, match="strictly between"):
        inner_holdout(dates, end, fraction=1.0, min_train_rows=1)
    with pytest.raises(ValueError, match="swapped"):
        inner_holdout(end, dates, fraction=0.2, min_train_rows=1)


def test_half_share_is_eight_chunks_keeping_the_last_four_folds() -> None:
    """With share 0.5 and 4 folds, folds train on about 4/8 .. 7/8 of the rows, validate on 8ths."""
    n, horizon = 8000, 6
    dates, end = hourly(n, horizon)
    folds = walk_forward_folds(dates, end, n_folds=4, min_train_rows=40, min_train_share=0.5)
    # The purge makes the first fold start `horizon` rows after n/2, so the chunks are a little short of n/8.
    assert [f.train_idx.size for f in folds] == [4000, 4999, 5998, 6996]
    assert [f.valid_idx.size for f in folds] == [999, 999, 998, 998]
    assert folds[0].valid_idx[0] == n // 2 + horizon
    # Share 0 keeps the first validation chunk as early as min_train_rows allows.
    early = walk_forward_folds(dates, end, n_folds=4, min_train_rows=40, min_train_share=0.0)
    assert early[0].train_idx.size == 40 and early[0].valid_idx[0] == 40 + horizon


def test_min_fold_train_rows_is_a_floor_on_small_train_splits() -> None:
    """Where the share is fewer rows than min_train_rows, the first fold starts later instead."""
    dates, end = hourly(300, 6)
    folds = walk_forward_folds(dates, end, n_folds=4, min_train_rows=200, min_train_share=0.5)
    assert folds[0].train_idx.size == 200 and folds[0].valid_idx[0] == 206
    assert_folds_are_purged(folds, dates, end, 4, share=0.5, min_rows=200)
    assert oof_index(folds).size == 300 - 206


@cache
def real_btc_1h() -> pl.DataFrame:
    bars = resample(pl.read_parquet(SAMPLE / "BTC_USDT-5m.parquet"), Timeframe.H1)
    frame = add_features(bars, interval=Timeframe.H1.duration, max_gap_bars=3)
    frame = add_labels(frame, horizon=6, threshold=0.5, vol_window=48)
    return frame.drop_nulls([*FEATURE_NAMES, "label"])


def test_purge_on_real_btc_1h_with_horizon_6() -> None:
    frame = real_btc_1h()
    s = chronological_split(
        frame["label_end"], frame["date"], calibration_fraction=0.15, test_fraction=0.15, min_train_rows=200
    )
    dates, end = frame["date"], frame["label_end"]
    assert end.gather(s.train).max() < dates.gather(s.calibration).min()  # type: ignore[operator]
    assert end.gather(s.calibration).max() < dates.gather(s.test).min()  # type: ignore[operator]
    assert (end - dates).min() >= timedelta(hours=6)  # type: ignore[operator]
    assert s.calibration_start == dates[int(s.calibration[0])]
    assert s.test_start == dates[int(s.test[0])]
    assert s.calibration_start.tzinfo is not None
    assert s.purged_train == 6 and s.purged_calibration == 6
    # The split covers the 2023-12-31 outage somewhere; the purge property must hold regardless.
    assert_splits_are_purged(s, dates.to_numpy(), end.to_numpy())
    train = frame[s.train]
    folds = walk_forward_folds(
        train["date"], train["label_end"], n_folds=4, min_train_rows=200, min_train_share=0.5
    )
    train_dates, train_end = train["date"].to_numpy(), train["label_end"].to_numpy()
    assert_folds_are_purged(folds, train_dates, train_end, 4, share=0.5, min_rows=200)
    # The last half of train, less one label horizon, gets out-of-fold predictions.
    assert oof_index(folds).size == train.height // 2 - 6
    held = inner_holdout(train["date"], train["label_end"], fraction=0.2, min_train_rows=200)
    assert_holdout_is_purged(held, train_dates, train_end, fraction=0.2)
    assert s.to_json()["train_rows"] == s.train.size


def test_polars_and_numpy_inputs_agree() -> None:
    frame = real_btc_1h()
    a = split(frame["date"], frame["label_end"])
    b = split(frame["date"].to_numpy(), frame["label_end"].to_numpy())
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert a.calibration_start == b.calibration_start


def test_boundaries_are_utc_datetimes() -> None:
    dates, end = hourly(1000, 3)
    s = split(dates, end)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert s.calibration_start == start + timedelta(hours=int(s.calibration[0]))
    assert s.test_start == start + timedelta(hours=int(s.test[0]))


def test_too_few_rows_for_the_splits() -> None:
    dates, end = hourly(3, 1)
    with pytest.raises(DatasetError, match=r"3 labelled rows are too few .* would be empty"):
        split(dates, end)


def test_too_few_training_rows_names_min_train_rows() -> None:
    dates, end = hourly(300, 6)
    with pytest.raises(DatasetError, match=r"training would have 204 rows .* min_train_rows=250"):
        split(dates, end, min_train_rows=250)


def test_horizon_longer_than_calibration_empties_it() -> None:
    dates, end = hourly(100, 20)
    with pytest.raises(DatasetError, match=r"calibration split .* is empty after purging"):
        split(dates, end)


def test_too_few_rows_for_the_folds() -> None:
    dates, end = hourly(4, 1)
    with pytest.raises(DatasetError, match="too few for 4 walk-forward folds"):
        walk_forward_folds(dates, end, n_folds=4, min_train_rows=1, min_train_share=0.5)
    dates, end = hourly(209, 6)  # 200 purged rows need row 206: three rows left for four chunks
    with pytest.raises(
        DatasetError, match=r"each train on at least 200 rows .*: 3 rows are left for 4 validation"
    ):
        walk_forward_folds(dates, end, n_folds=4, min_train_rows=200, min_train_share=0.5)
    dates, end = hourly(500, 6)
    with pytest.raises(
        DatasetError,
        match=r"each train on at least 450 rows .*min_train_share=0.9.*: 44 rows are left for 50",
    ):
        walk_forward_folds(dates, end, n_folds=50, min_train_rows=1, min_train_share=0.9)
    with pytest.raises(ValueError, match="min_train_share"):
        walk_forward_folds(dates, end, n_folds=4, min_train_rows=1, min_train_share=1.0)


def test_swapped_or_unsorted_or_unlabelled_inputs_are_refused() -> None:
    dates, end = hourly(500, 6)
    with pytest.raises(ValueError, match="swapped"):
        chronological_split(dates, end, calibration_fraction=0.15, test_fraction=0.15, min_train_rows=1)
    with pytest.raises(ValueError, match="swapped"):
        walk_forward_folds(end, dates, n_folds=3, min_train_rows=1, min_train_share=0.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        split(dates[::-1], end[::-1])
    holed = pl.Series("label_end", end).cast(pl.Datetime("ms", "UTC")).scatter(10, None)
    with pytest.raises(ValueError, match="nulls"):
        split(pl.Series(dates).cast(pl.Datetime("ms", "UTC")), holed)
    with pytest.raises(ValueError, match="leave rows"):
        split(dates, end, calibration_fraction=0.5, test_fraction=0.5)
