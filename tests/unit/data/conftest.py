"""Fixtures for the data-layer tests: hand-built bar frames, file writers, store snapshots, refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import MIN_ROWS, START, MakeBars, Refused, Snapshot, build_bars, tree
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.errors import DataError


@pytest.fixture
def make_bars() -> MakeBars:
    """Factory of valid hand-built bar frames (see :func:`build_bars`)."""
    return build_bars


@pytest.fixture
def snapshot() -> Snapshot:
    """Every file and folder under a root, with file bytes (None for folders); {} when absent."""
    return tree


@pytest.fixture
def seeded_store(tmp_path: Path) -> BarStore:
    """A store holding 12 valid bars of BTC_USDT from 2023-12-31 23:00, so refusals have state to keep."""
    store = BarStore(tmp_path / "store", min_rows=MIN_ROWS)
    seed = tmp_path / "seed.parquet"
    build_bars(12, START - timedelta(hours=1)).write_parquet(seed)
    store.import_file(seed, "BTC/USDT")
    return store


@pytest.fixture
def refused(tmp_path: Path, seeded_store: BarStore, snapshot: Snapshot) -> Refused:
    """Assert ``frame`` breaks a rule: validate_bars and BarStore.import_file both refuse it with a
    message naming the file, ``column`` and ``row`` and containing ``says``, and the store is unchanged
    (for a symbol it holds and for a new one)."""

    def check(frame: pl.DataFrame, *, column: str | None, row: int | None, says: str) -> DataError:
        name = "bad-bars.parquet"
        with pytest.raises(DataError) as direct:
            validate_bars(frame, file=name, min_rows=MIN_ROWS)
        _assert_names(direct.value, name, column, row, says)

        path = tmp_path / name
        frame.write_parquet(path)
        before = snapshot(seeded_store.root)
        for symbol in ("BTC/USDT", "ETH/USDT"):
            with pytest.raises(DataError) as imported:
                seeded_store.import_file(path, symbol)
            _assert_names(imported.value, str(path), column, row, says)
            assert snapshot(seeded_store.root) == before, "a refused import changed the store"
        assert seeded_store.symbols() == ["BTC_USDT"]
        return direct.value

    return check


def _assert_names(error: DataError, file: str, column: str | None, row: int | None, says: str) -> None:
    message = str(error)
    assert error.file == file
    assert message.startswith(file)
    assert error.column == column
    assert error.row == row
    if column is not None:
        assert f"column '{column}'" in message
    if row is not None:
        assert f"row {row}:" in message
    assert says in message, message
