"""Validation of 5-minute OHLCV bars, before anything reaches the bar store.

A frame from :func:`trainfarm.shared.data.readers.read_bars` is checked against the import rules of
docs/ml.md#data and refused whole at the first problem in file order: the earliest row that breaks any
rule, and within a row the first in this order: missing values (null, NaN, infinity), non-positive price,
negative volume, high < low, high < max(open, close), low > min(open, close), duplicate timestamp (the
message names both rows), a timestamp going backwards, off the 5-minute grid. The error is a
:class:`~trainfarm.shared.errors.DataError` naming the file, the column and the 1-based data row (header
excluded) with the bar's timestamp, so a person can open the file and fix that line. The facts about the
whole file come last: the bar interval (the median spacing, which names the interval found), then too few
rows.

All rules are polars expressions evaluated in one pass, so a 400k-row file validates in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from trainfarm.shared.errors import DataError
from trainfarm.shared.timeframes import BASE_TIMEFRAME

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")

_GRID_MS = BASE_TIMEFRAME.minutes * 60_000


#: Words the problem of an offending row: (that row as a dict, the whole frame, its 0-based index).
_Explain = Callable[[dict[str, object], pl.DataFrame, int], str]


@dataclass(frozen=True)
class _Rule:
    """One check: ``bad`` is True on rows that break it; ``explain`` words the problem for such a row."""

    column: str
    bad: pl.Expr
    explain: _Explain


def _rules() -> list[_Rule]:
    date = pl.col("date")
    rules: list[_Rule] = [
        _Rule("date", date.is_null(), lambda r, f, i: "missing timestamp (null)"),
    ]
    for col in VALUE_COLUMNS:
        value = pl.col(col)
        rules.append(
            _Rule(col, value.is_null() | value.is_nan() | value.is_infinite(), _explain_missing(col))
        )
    rules += [_Rule(col, pl.col(col) <= 0, _explain_not_positive(col)) for col in PRICE_COLUMNS]
    high, low, open_, close = pl.col("high"), pl.col("low"), pl.col("open"), pl.col("close")
    rules += [
        _Rule(
            "volume",
            pl.col("volume") < 0,
            lambda r, f, i: f"volume must not be negative, found {r['volume']}",
        ),
        _Rule("high", high < low, lambda r, f, i: f"high {r['high']} is below low {r['low']}"),
        _Rule(
            "high",
            high < pl.max_horizontal(open_, close),
            lambda r, f, i: f"high {r['high']} is below max(open {r['open']}, close {r['close']})",
        ),
        _Rule(
            "low",
            low > pl.min_horizontal(open_, close),
            lambda r, f, i: f"low {r['low']} is above min(open {r['open']}, close {r['close']})",
        ),
        # A later row repeating an earlier timestamp, wherever the earlier one is (also in unsorted files).
        _Rule("date", date.is_not_null() & ~date.is_first_distinct(), _explain_duplicate),
        _Rule("date", date < date.shift(1), _explain_backwards),
        _Rule(
            "date",
            date.dt.epoch("ms") % _GRID_MS != 0,
            lambda r, f, i: (
                f"timestamp {_fmt(r['date'])} is not on the 5-minute grid (bars open at :00, :05, ... UTC)"
            ),
        ),
    ]
    return rules


def _fmt(value: object) -> str:
    if value is None:
        return "null"
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _explain_missing(column: str) -> _Explain:
    def explain(row: dict[str, object], bars: pl.DataFrame, index: int) -> str:
        return f"missing or non-finite {column} ({_fmt(row[column])})"

    return explain


def _explain_not_positive(column: str) -> _Explain:
    def explain(row: dict[str, object], bars: pl.DataFrame, index: int) -> str:
        return f"{column} must be positive, found {row[column]}"

    return explain


def _explain_duplicate(row: dict[str, object], bars: pl.DataFrame, index: int) -> str:
    earlier = bars.head(index).with_row_index("_i").filter(pl.col("date") == row["date"])["_i"][0]
    stamp = _fmt(row["date"])
    return f"duplicate timestamp {stamp}: rows {int(earlier) + 1} and {index + 1} have the same time"


def _explain_backwards(row: dict[str, object], bars: pl.DataFrame, index: int) -> str:
    previous = bars["date"][index - 1]
    return (
        f"timestamps are not in ascending order: {_fmt(row['date'])} comes after {_fmt(previous)} "
        f"(row {index}); sort the file by time"
    )


_RULES = _rules()


def _interval_name(minutes: float) -> str:
    """``minutes`` as a bar interval people write: 60 -> "1h", 1440 -> "1d", 15 -> "15m", 7.5 -> "7.5m"."""
    if minutes == int(minutes):
        whole = int(minutes)
        for unit, size in (("d", 1440), ("h", 60)):
            if whole % size == 0:
                return f"{whole // size}{unit}"
    return f"{minutes:g}m"


def check_interval(bars: pl.DataFrame, *, file: str) -> None:
    """Raise :class:`DataError` when ``bars`` (sorted, unique, on the 5m grid) are not 5-minute bars.

    The interval is the median spacing of consecutive timestamps (rule 10 in the module docstring); a file
    of fewer than two bars has none and passes.
    """
    if bars.height < 2:
        return
    spacing = bars["date"].diff().drop_nulls().dt.total_milliseconds().median()
    if not isinstance(spacing, int | float) or spacing <= _GRID_MS:
        return
    minutes = float(spacing) / 60_000
    raise DataError(
        f"file has {_interval_name(minutes)} bars (median spacing {minutes:g} min), the store holds "
        f"{BASE_TIMEFRAME.value} bars; resample or import a {BASE_TIMEFRAME.value} file",
        file=file,
        column="date",
    )


def validate_bars(bars: pl.DataFrame, *, file: str, min_rows: int) -> None:
    """Raise :class:`DataError` for the first rule (see the module docstring) that ``bars`` breaks.

    ``bars`` has the columns of :func:`trainfarm.shared.data.readers.read_bars` in the file's row order;
    ``file`` is the name used in the message; ``min_rows`` is the fewest rows a file may have.
    """
    if bars.height:
        # Row index of each rule's first offending row, all rules in one pass over the frame.
        index = pl.int_range(pl.len(), dtype=pl.Int64)
        firsts = bars.select(
            index.filter(rule.bad.fill_null(False)).first().alias(str(n)) for n, rule in enumerate(_RULES)
        ).row(0)
        found = [(row, n) for n, row in enumerate(firsts) if row is not None]
        if found:
            row_index, rule_number = min(found)
            rule = _RULES[rule_number]
            row = bars.row(row_index, named=True)
            problem = rule.explain(row, bars, row_index)
            if row["date"] is not None and rule.column != "date":
                problem = f"at {_fmt(row['date'])}: {problem}"
            raise DataError(problem, file=file, column=rule.column, row=row_index + 1)
    check_interval(bars, file=file)
    if bars.height < min_rows:
        raise DataError(
            f"too few rows: {bars.height} bars, at least {min_rows} five-minute bars are needed",
            file=file,
        )
