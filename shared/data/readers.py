"""Reading OHLCV bar files into one canonical frame.

The accepted files (by suffix), column names and time zone rules: docs/ml.md#data. Time zones are never
guessed: zone-less datetimes or strings are refused unless the caller passes ``assume_utc=True``.

The result always has exactly the columns ``date`` (``Datetime("ms", "UTC")``), ``open``, ``high``,
``low``, ``close``, ``volume`` (``Float64``), in the file's own row order: nothing is sorted or dropped
here, because validation must see the file as it is to name the row a person has to fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from trainfarm.shared.errors import DataError

#: Output columns, in order.
BAR_COLUMNS = ("date", "open", "high", "low", "close", "volume")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
#: Accepted names of the time column, by priority.
TIME_COLUMNS = ("date", "datetime", "timestamp", "open_time", "time")
BAR_DTYPE = pl.Datetime("ms", "UTC")

#: Epoch integers below this are seconds: 1e11 ms is only 1973-03-03, while 1e11 s is the year 5138.
_SECONDS_LIMIT = 100_000_000_000
_ISO = (
    r"(?i)^(?P<day>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<clock>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$"
)
_EPOCH = r"^[+-]?\d+$"


def read_bars(path: Path, *, assume_utc: bool = False) -> pl.DataFrame:
    """Read a bar file into the canonical columns (see the module docstring).

    Raises :class:`DataError` naming the file (and column and row where there is one) when the file is
    missing or unreadable, has an unknown suffix, lacks a required column, holds a non-numeric price or
    volume, or has timestamps without (or with mixed) time zones.
    """
    name = str(path)
    raw = _read_raw(path)
    columns = _map_columns(raw, name)
    return raw.select(
        _parse_time(raw[columns["date"]], name, columns["date"], assume_utc=assume_utc).alias("date"),
        *(_parse_number(raw[columns[col]], name, columns[col]).alias(col) for col in VALUE_COLUMNS),
    )


def _read_raw(path: Path) -> pl.DataFrame:
    name = str(path)
    suffixes = [s.lower() for s in path.suffixes]
    reader: Callable[[Path], pl.DataFrame]
    if suffixes[-2:] == [".csv", ".gz"] or suffixes[-1:] == [".csv"]:
        # Everything as text: the time column and prices are parsed below, where a bad value can be
        # reported with its row instead of as an inference failure somewhere in the file.
        reader = _read_csv
    elif suffixes[-1:] in ([".parquet"], [".pq"]):
        reader = pl.read_parquet
    elif suffixes[-1:] in ([".feather"], [".arrow"], [".ipc"]):
        reader = _read_feather
    else:
        raise DataError(
            f"unknown file type {path.suffix or '(no suffix)'!r}; "
            "use .csv, .csv.gz, .parquet, .pq, .feather, .arrow or .ipc",
            file=name,
        )
    if not path.is_file():
        raise DataError("not a file" if path.exists() else "file not found", file=name)
    try:
        return reader(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataError(f"cannot read the file ({type(exc).__name__}: {exc})", file=name) from exc


def _read_csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _read_feather(path: Path) -> pl.DataFrame:
    # Feather v2 is the Arrow IPC file format (what pandas' to_feather, and so freqtrade, writes). Read from
    # bytes rather than a memory map: a damaged file then fails cleanly, and the frame does not depend on
    # a file that may be replaced after reading.
    data = path.read_bytes()
    try:
        return pl.read_ipc(data)
    except pl.exceptions.PolarsError:
        # ".arrow" files are sometimes the IPC *stream* format; if that fails too, report the first error.
        try:
            return pl.read_ipc_stream(data)
        except pl.exceptions.PolarsError:
            pass
        raise


def _map_columns(raw: pl.DataFrame, name: str) -> dict[str, str]:
    """Map each canonical column name to the file's own spelling."""
    by_lower: dict[str, str] = {}
    for col in raw.columns:
        key = col.strip().lower()
        if key in by_lower and (key in VALUE_COLUMNS or key in TIME_COLUMNS):
            raise DataError(
                f"columns {by_lower[key]!r} and {col!r} differ only in case; keep one", file=name, column=col
            )
        by_lower[key] = col
    mapping = {col: by_lower[col] for col in VALUE_COLUMNS if col in by_lower}
    time_col = next((by_lower[c] for c in TIME_COLUMNS if c in by_lower), None)
    if time_col is not None:
        mapping["date"] = time_col
    missing = [col for col in BAR_COLUMNS if col not in mapping]
    if missing:
        wanted = [f"time ({' / '.join(TIME_COLUMNS)})" if col == "date" else col for col in missing]
        found = ", ".join(repr(c) for c in raw.columns) or "none"
        hint = ""
        if raw.columns and all(c.strip().lstrip("-").replace(".", "", 1).isdigit() for c in raw.columns[:2]):
            hint = "; the first line looks like data, so the file probably has no header row"
        raise DataError(f"missing column(s) {', '.join(wanted)}; found columns: {found}{hint}", file=name)
    return mapping


def _first_row(mask: pl.Series) -> int | None:
    """1-based row number of the first True in ``mask`` (nulls count as False)."""
    hits = mask.fill_null(False).arg_true()
    return int(hits[0]) + 1 if hits.len() else None


def _parse_number(values: pl.Series, name: str, column: str) -> pl.Series:
    if values.dtype == pl.Float64:
        return values
    if values.dtype == pl.String:
        values = values.str.strip_chars()
    elif not (values.dtype.is_numeric() or values.dtype == pl.Null):
        raise DataError(f"expected numbers, found the type {values.dtype}", file=name, column=column)
    numbers = values.cast(pl.Float64, strict=False)
    bad = _first_row(numbers.is_null() & values.is_not_null())
    if bad is not None:
        raise DataError(f"not a number: {values[bad - 1]!r}", file=name, column=column, row=bad)
    return numbers


def _parse_time(values: pl.Series, name: str, column: str, *, assume_utc: bool) -> pl.Series:
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return _naive(values, name, column, assume_utc=assume_utc)
        return values.dt.convert_time_zone("UTC").cast(BAR_DTYPE)
    if dtype == pl.Date:
        return _naive(values.cast(pl.Datetime("ms")), name, column, assume_utc=assume_utc)
    if dtype.is_integer():
        return _from_epoch(values.cast(pl.Int64), name, column)
    if dtype.is_float():
        whole = values.cast(pl.Int64, strict=False)
        bad = _first_row(values.is_not_null() & (whole.is_null() | (whole.cast(pl.Float64) != values)))
        if bad is not None:
            raise DataError(
                f"epoch timestamp {values[bad - 1]!r} is not a whole number",
                file=name,
                column=column,
                row=bad,
            )
        return _from_epoch(whole, name, column)
    if dtype == pl.String:
        return _parse_time_strings(values.str.strip_chars(), name, column, assume_utc=assume_utc)
    if dtype == pl.Null:
        return values.cast(BAR_DTYPE)  # all empty: validation reports the first null row
    raise DataError(f"cannot read timestamps of type {dtype}", file=name, column=column)


def _naive(values: pl.Series, name: str, column: str, *, assume_utc: bool) -> pl.Series:
    if not assume_utc:
        row = _first_row(values.is_not_null()) or 1
        example = values[row - 1] if values.len() else None
        raise DataError(
            f"timestamps have no time zone (first: {example}); "
            "convert the file to UTC or pass --assume-utc if it already is UTC",
            file=name,
            column=column,
            row=row,
        )
    return values.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def _from_epoch(values: pl.Series, name: str, column: str) -> pl.Series:
    seconds = values.abs() < _SECONDS_LIMIT
    first = _first_row(values.is_not_null())
    if first is not None:
        # One unit per file: a column mixing seconds and milliseconds is corrupt, not ambiguous per row.
        bad = _first_row(seconds != seconds[first - 1])
        if bad is not None:
            unit = ("seconds", "milliseconds") if seconds[first - 1] else ("milliseconds", "seconds")
            raise DataError(
                f"mixed epoch units: row {first} looks like epoch {unit[0]} ({values[first - 1]}), "
                f"this row like epoch {unit[1]} ({values[bad - 1]})",
                file=name,
                column=column,
                row=bad,
            )
        if seconds[first - 1]:
            values = values * 1000
    return values.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")


def _parse_time_strings(values: pl.Series, name: str, column: str, *, assume_utc: bool) -> pl.Series:
    present = values.is_not_null()
    if present.any() and values.filter(present).str.contains(_EPOCH).all():
        return _from_epoch(values.cast(pl.Int64), name, column)
    parts = values.str.extract_groups(_ISO).struct.unnest()
    naive_text = parts["day"] + " " + parts["clock"].fill_null("00:00")
    naive = pl.select(
        pl.coalesce(
            naive_text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ms", strict=False),
            naive_text.str.to_datetime("%Y-%m-%d %H:%M", time_unit="ms", strict=False),
        )
    ).to_series()
    bad = _first_row(present & naive.is_null())
    if bad is not None:
        raise DataError(
            f"unreadable timestamp {values[bad - 1]!r}; write ISO 8601 with an offset "
            "(2024-01-01 00:00:00+00:00) or epoch milliseconds",
            file=name,
            column=column,
            row=bad,
        )
    offset = _offset_minutes(parts["zone"])
    first = _first_row(present)
    if first is None:
        return naive.dt.replace_time_zone("UTC")  # all empty: validation reports the nulls
    # Compare each row's zone with the first row's: "no zone" and every distinct offset are each one kind.
    kind = offset.fill_null(-(10**6))
    bad = _first_row(present & (kind != kind[first - 1]))
    if bad is not None:
        raise DataError(
            f"mixed time zones: row {first} is {_describe(parts['zone'][first - 1])} "
            f"but this row is {_describe(parts['zone'][bad - 1])}; one file must use one zone",
            file=name,
            column=column,
            row=bad,
        )
    if offset[first - 1] is None:
        return _naive(naive, name, column, assume_utc=assume_utc)
    shift = (offset.cast(pl.Int64) * 60_000).cast(pl.Duration("ms"))
    return (naive - shift).dt.replace_time_zone("UTC")


def _offset_minutes(zone: pl.Series) -> pl.Series:
    """Offset east of UTC in minutes per row; null where the string had no zone."""
    text = zone.str.to_uppercase()
    digits = text.str.replace_all(":", "")
    sign = pl.select(pl.when(digits.str.starts_with("-")).then(-1).otherwise(1)).to_series()
    hours = digits.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = digits.str.slice(3, 2).cast(pl.Int64, strict=False).fill_null(0)
    numeric = sign * (hours * 60 + minutes)
    utc = text.is_in(["Z", "UTC", "GMT"])
    return pl.select(pl.when(utc).then(0).otherwise(numeric).alias("offset")).to_series()


def _describe(zone: str | None) -> str:
    return f"at UTC offset {zone}" if zone else "without a time zone"
