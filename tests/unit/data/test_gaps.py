"""Gaps in real and hand-built bar series, with the convention of ../shared/data/*.gaps.csv: a gap is
named by the first bar after it, and ``missing`` counts the 5m bars that should exist in between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from trainfarm.shared.data.gaps import Gap, find_gaps, segment_expr

FIVE = timedelta(minutes=5)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def dates(*minutes: int, unit: str = "ms") -> pl.Series:
    """Bar times at these minute offsets from T0, in the store's dtype by default."""
    return pl.Series("date", [T0 + timedelta(minutes=m) for m in minutes], dtype=pl.Datetime(unit, "UTC"))


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_gaps_are_found_and_counted(unit: str) -> None:
    series = dates(0, 5, 10, 20, 25, 60, unit=unit)
    assert find_gaps(series, FIVE) == [
        Gap(after=T0 + timedelta(minutes=10), before=T0 + timedelta(minutes=20), missing=1),
        Gap(after=T0 + timedelta(minutes=25), before=T0 + timedelta(minutes=60), missing=6),
    ]


def test_no_gaps_in_a_complete_series() -> None:
    assert find_gaps(dates(*range(0, 500, 5)), FIVE) == []
    assert find_gaps(dates(0), FIVE) == []
    assert find_gaps(dates(), FIVE) == []


def test_gap_json() -> None:
    gap = find_gaps(dates(0, 15), FIVE)[0]
    assert gap.to_json() == {
        "after": "2024-01-01T00:00:00+00:00",
        "before": "2024-01-01T00:15:00+00:00",
        "missing": 2,
    }


def test_segments_start_after_long_gaps_only() -> None:
    frame = pl.DataFrame({"date": dates(0, 5, 15, 20, 50, 55, 60)})
    # Allow gaps of up to 2 missing bars: the 1-bar gap stays in segment 0, the 5-bar gap starts segment 1.
    out = frame.with_columns(segment_expr(FIVE, max_gap_bars=2))
    assert out["segment"].to_list() == [0, 0, 0, 0, 1, 1, 1]


def test_segments_are_causal() -> None:
    short = pl.DataFrame({"date": dates(0, 5, 30, 35)})
    longer = pl.DataFrame({"date": dates(0, 5, 30, 35, 100, 105)})
    expr = segment_expr(FIVE, max_gap_bars=1)
    assert longer.with_columns(expr)["segment"].head(4).equals(short.with_columns(expr)["segment"])


def test_bundled_btc_sample_has_exactly_the_two_known_gaps(sample_dir: Path) -> None:
    series = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet", columns=["date"])["date"]
    assert find_gaps(series, FIVE) == [
        Gap(
            after=datetime(2023, 3, 24, 12, 35, tzinfo=UTC),
            before=datetime(2023, 3, 24, 14, tzinfo=UTC),
            missing=16,
        ),
        Gap(
            after=datetime(2023, 12, 30, 23, 50, tzinfo=UTC),
            before=datetime(2024, 1, 1, tzinfo=UTC),
            missing=289,
        ),
    ]


@pytest.mark.shared_data
@pytest.mark.parametrize("symbol", ["BTC_USDT", "ETH_USDT", "SOL_USDT"])
def test_real_files_match_their_gap_lists(shared_data_dir: Path, symbol: str) -> None:
    series = pl.read_parquet(shared_data_dir / f"{symbol}-5m.parquet", columns=["date"])["date"]
    expected = pl.read_csv(shared_data_dir / f"{symbol}-5m.gaps.csv", infer_schema=False)
    gaps = find_gaps(series, FIVE)
    assert [g.before.strftime("%Y-%m-%dT%H:%M:%S.000+0000") for g in gaps] == expected["date"].to_list()
    assert [str(g.missing) for g in gaps] == expected["missing"].to_list()
    assert [str(int((g.before - g.after) / timedelta(minutes=1))) for g in gaps] == expected[
        "gap_minutes"
    ].to_list()
