"""Rule 10 of bar validation: a file of 1h or 1d bars is refused, naming its interval, not stored as 5m.

Such bars open on the 5-minute grid too, so the per-row rules accept them; before this rule a year of 1h
bars was stored as 5m bars with a gap after each one.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import MIN_ROWS, START, MakeBars
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.errors import DataError
from trainfarm.shared.timeframes import Timeframe


def _spaced(make_bars: MakeBars, n: int, minutes: int) -> pl.DataFrame:
    """``n`` valid bars ``minutes`` apart (on the 5m grid whenever ``minutes`` is a multiple of 5)."""
    return make_bars(n).with_columns(
        pl.Series("date", [START + timedelta(minutes=minutes * i) for i in range(n)]).cast(
            pl.Datetime("ms", "UTC")
        )
    )


@pytest.mark.parametrize(
    ("minutes", "name", "fix"),
    [
        (60, "1h", "import it as 1h bars (--interval 1h)"),
        (1440, "1d", "import it as 1d bars (--interval 1d)"),
        (720, "12h", "the store keeps 5m, 1h or 1d bars: resample the file to one of them"),
        (15, "15m", "the store keeps 5m, 1h or 1d bars"),
        (10, "10m", "the store keeps 5m, 1h or 1d bars"),
    ],
)
def test_bars_of_another_interval_are_refused_as_5m_naming_it(
    make_bars: MakeBars, minutes: int, name: str, fix: str
) -> None:
    with pytest.raises(DataError) as caught:
        validate_bars(_spaced(make_bars, 12, minutes), file="bars.csv", min_rows=1)
    assert (caught.value.file, caught.value.column, caught.value.row) == ("bars.csv", "date", None)
    assert f"file has {name} bars (median spacing {minutes} min), not 5m bars; {fix}" in str(caught.value)


def test_gaps_do_not_make_5m_bars_look_like_another_interval(make_bars: MakeBars) -> None:
    """A 5m file with outages (here: 40% of its bars missing, in one block) keeps its 5m median."""
    bars = make_bars(100)
    gapped = pl.concat([bars.head(40), bars.tail(30)])
    validate_bars(gapped, file="gapped.parquet", min_rows=MIN_ROWS)


def test_interval_is_reported_before_too_few_rows(make_bars: MakeBars) -> None:
    """Thirty daily bars are fewer than a day of 5m bars, but the interval is what the person must fix."""
    with pytest.raises(DataError, match="file has 1d bars"):
        validate_bars(_spaced(make_bars, 30, 1440), file="daily.csv", min_rows=288)


def test_a_single_bar_has_no_interval(make_bars: MakeBars) -> None:
    validate_bars(make_bars(1), file="one.parquet", min_rows=1)


def test_real_1h_bars_imported_as_5m_are_refused(sample_dir: Path) -> None:
    """The bundled year of real BTC bars resampled to 1h, as a person would export them from an exchange."""
    bars = read_bars(sample_dir / "BTC_USDT-5m.parquet")
    validate_bars(bars, file="BTC_USDT-5m.parquet", min_rows=288)  # the 5m original passes
    hourly = resample(bars, Timeframe.H1).select(bars.columns)
    with pytest.raises(DataError) as caught:
        validate_bars(hourly, file="BTC_USDT-1h.parquet", min_rows=288)
    assert caught.value.column == "date" and caught.value.file == "BTC_USDT-1h.parquet"
    assert "file has 1h bars (median spacing 60 min)" in caught.value.problem
