"""The week of real bars the exchange-source and sync tests serve from their loopback Binance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

#: The week's first bar.
FIRST = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def btc_week(shared_data_dir: Path) -> pl.DataFrame:
    """One week of real BTC_USDT 5m bars from ../shared/data (2016 rows: four pages of 500 and more)."""
    return (
        pl.scan_parquet(shared_data_dir / "BTC_USDT-5m.parquet")
        .filter(pl.col("date").is_between(FIRST, FIRST + timedelta(days=7), closed="left"))
        .collect()
    )
