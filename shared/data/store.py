"""The bar store: validated 5-minute bars per symbol, on local disk.

Layout under the store root, one folder per canonical symbol id (see :mod:`trainfarm.shared.symbols`)::

    <root>/<SYMBOL_ID>/bars-5m.parquet   date, open, high, low, close, volume; sorted, unique, 5m grid
    <root>/<SYMBOL_ID>/bars.json         the record of the data file: symbol, display symbol, its
                                         sha256/rows/first/last, and every imported source (file name,
                                         sha256, rows, first, last, imported_at)

Imports are all-or-nothing. A file is read and validated whole before the store is touched; overlapping
bars must agree exactly with what is stored (or the caller asks to replace the symbol's bars); the data file
is written atomically first and ``bars.json`` last, so a reader sees the old state or the new one. On any
error the store's files are left byte for byte as they were. Imports into one store are serialised with
an advisory lock on the root folder (one machine; the store is not meant for network file systems).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from trainfarm.shared.atomicio import atomic_write_bytes, atomic_write_text, sha256_file
from trainfarm.shared.data.gaps import Gap, find_gaps
from trainfarm.shared.data.readers import BAR_COLUMNS, VALUE_COLUMNS, read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.errors import DataError, DataNotFoundError, SymbolError
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.symbols import canonical_symbol, display_symbol
from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe

DATA_FILE = "bars-5m.parquet"
RECORD_FILE = "bars.json"
#: Where stores written before the record's rename kept it; read when RECORD_FILE is absent, removed at
#: the next write.
LEGACY_RECORD_FILE = "meta.json"
#: Version of the record's layout; bump when its keys change meaning.
RECORD_FORMAT = 1


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(frozen=True)
class StoreSummary:
    """What the store holds for one symbol."""

    symbol: str
    first: datetime
    last: datetime
    rows: int
    gaps: list[Gap] = field(default_factory=list)

    @property
    def missing_bars(self) -> int:
        """Total 5m bars missing inside [first, last]."""
        return sum(gap.missing for gap in self.gaps)

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary; ``gaps`` is the number of gaps (see :meth:`gap_list` for the gaps)."""
        return {
            "symbol": self.symbol,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "rows": self.rows,
            "gaps": len(self.gaps),
        }

    def gap_list(self) -> list[dict[str, object]]:
        """The gaps, JSON-ready."""
        return [gap.to_json() for gap in self.gaps]


@dataclass(frozen=True)
class ImportReport:
    """Outcome of one import. ``first``, ``last``, ``rows_total`` and ``gaps`` describe the stored series
    after the import; ``rows_in_file`` and ``rows_added`` describe the file."""

    symbol: str
    file: str
    rows_in_file: int
    rows_added: int
    rows_total: int
    first: datetime
    last: datetime
    gaps: list[Gap] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """JSON-ready report, gaps included."""
        return {
            "symbol": self.symbol,
            "file": self.file,
            "rows_in_file": self.rows_in_file,
            "rows_added": self.rows_added,
            "rows_total": self.rows_total,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "gaps": [gap.to_json() for gap in self.gaps],
        }


@dataclass(frozen=True)
class CheckReport:
    """Result of :meth:`BarStore.check`: the data is valid and matches its record (bars.json)."""

    summary: StoreSummary
    gaps: list[Gap]
    missing_bars: int
    sources: int

    def to_json(self) -> dict[str, object]:
        """JSON-ready report: the summary plus the gap list, missing-bar total and source count."""
        return {
            **self.summary.to_json(),
            "gap_list": self.summary.gap_list(),
            "missing_bars": self.missing_bars,
            "sources": self.sources,
        }


class BarStore:
    """Per-symbol store of validated 5m bars under ``root`` (see the module docstring).

    ``min_rows`` is the fewest bars an imported file may have (``DataParams.min_rows``).
    """

    def __init__(self, root: Path, *, min_rows: int = 288) -> None:
        self.root = Path(root)
        self.min_rows = min_rows

    # -- paths -----------------------------------------------------------------------------------------

    def folder(self, symbol: str) -> Path:
        """The folder of ``symbol`` (canonicalised); raises :class:`SymbolError` if it would leave root."""
        symbol_id = canonical_symbol(symbol)
        root = self.root.resolve()
        folder = (root / symbol_id).resolve()
        # canonical_symbol already refuses separators and dots; this also catches a symlinked folder.
        if folder.parent != root:
            raise SymbolError(f"symbol {symbol!r} resolves to {folder}, outside the store {root}")
        return folder

    def symbols(self) -> list[str]:
        """Sorted canonical ids of the symbols that have stored bars."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            try:
                is_symbol = canonical_symbol(entry.name) == entry.name
            except SymbolError:
                continue
            if is_symbol and (entry / DATA_FILE).is_file():
                found.append(entry.name)
        return sorted(found)

    def has(self, symbol: str) -> bool:
        """Whether bars are stored for ``symbol``."""
        return (self.folder(symbol) / DATA_FILE).is_file()

    # -- import ----------------------------------------------------------------------------------------

    def import_file(
        self, path: Path, symbol: str, *, assume_utc: bool = False, replace: bool = False
    ) -> ImportReport:
        """Validate the bar file at ``path`` and merge it into ``symbol``'s bars.

        Bars already stored must agree exactly with the file where both have a timestamp; otherwise a
        :class:`DataError` names the first disagreeing row and column. ``replace=True`` replaces the
        symbol's bars (and source list) with this file instead. On any error the store is unchanged.
        """
        path = Path(path)
        folder = self.folder(symbol)
        symbol_id = folder.name
        name = str(path)
        bars = read_bars(path, assume_utc=assume_utc)
        validate_bars(bars, file=name, min_rows=self.min_rows)
        source = {
            "file": path.name,
            "sha256": sha256_file(path),
            "rows": bars.height,
            "first": _iso(bars["date"][0]),
            "last": _iso(bars["date"][-1]),
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            data_path = folder / DATA_FILE
            if replace or not data_path.is_file():
                merged, added, sources = bars, bars.height, [source]
            else:
                recorded = self._read_record(folder)["sources"]
                merged, added = _merge(self._read_stored(data_path), bars, name, symbol_id)
                known = any(old.get("sha256") == source["sha256"] for old in recorded)
                if added == 0 and known:
                    # The same file again: nothing to write, and the store's bytes stay as they are.
                    return self._report(symbol_id, name, bars.height, 0, merged)
                sources = recorded if known else [*recorded, source]
            self._write(folder, merged, sources, rewrite_data=replace or added > 0)
        return self._report(symbol_id, name, bars.height, added, merged)

    def _report(self, symbol_id: str, name: str, rows: int, added: int, merged: pl.DataFrame) -> ImportReport:
        dates = merged["date"]
        return ImportReport(
            symbol=symbol_id,
            file=name,
            rows_in_file=rows,
            rows_added=added,
            rows_total=merged.height,
            first=dates[0],
            last=dates[-1],
            gaps=_gaps(dates),
        )

    @staticmethod
    def _write(
        folder: Path, bars: pl.DataFrame, sources: list[dict[str, Any]], *, rewrite_data: bool
    ) -> None:
        data_path, record_path = folder / DATA_FILE, folder / RECORD_FILE
        payload = b""
        if rewrite_data:
            # Serialised in memory once, so the sha256 recorded in bars.json is of exactly these bytes.
            buffer = io.BytesIO()
            bars.select(BAR_COLUMNS).write_parquet(buffer, compression="zstd")
            payload = buffer.getvalue()
        record = {
            "format": RECORD_FORMAT,
            "symbol": folder.name,
            "display": display_symbol(folder.name),
            "data": {
                "file": DATA_FILE,
                "sha256": hashlib.sha256(payload).hexdigest() if rewrite_data else sha256_file(data_path),
                "rows": bars.height,
                "first": _iso(bars["date"][0]),
                "last": _iso(bars["date"][-1]),
            },
            "sources": sources,
        }
        folder_existed = folder.is_dir()
        old_data = data_path.read_bytes() if rewrite_data and data_path.is_file() else None
        try:
            if rewrite_data:
                atomic_write_bytes(data_path, payload)
            atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
        except BaseException:
            # The record is the last step; if it fails, put the data file back so the pair stays consistent.
            if rewrite_data:
                if old_data is not None:
                    atomic_write_bytes(data_path, old_data)
                else:
                    data_path.unlink(missing_ok=True)
            if not folder_existed and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            raise
        # bars.json is in place and complete: a legacy record beside it is stale.
        (folder / LEGACY_RECORD_FILE).unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # flock on the root folder itself: no lock file is created, so a refused import leaves no trace.
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- reading ---------------------------------------------------------------------------------------

    def _data_path(self, symbol: str) -> Path:
        path = self.folder(symbol) / DATA_FILE
        if not path.is_file():
            raise DataNotFoundError(
                f"no bars stored for {canonical_symbol(symbol)} in {self.root}; "
                "import a file first with `farm data import`"
            )
        return path

    @staticmethod
    def _read_stored(path: Path) -> pl.DataFrame:
        try:
            return read_bars(path)
        except DataError as exc:
            raise DataError(
                f"stored bars are damaged ({exc.problem}); re-import the sources with --replace",
                file=str(path),
                column=exc.column,
                row=exc.row,
            ) from exc

    @staticmethod
    def _record_path(folder: Path) -> Path:
        """The symbol's record file: bars.json, or the legacy meta.json of a store written before it."""
        path = folder / RECORD_FILE
        legacy = folder / LEGACY_RECORD_FILE
        return legacy if not path.is_file() and legacy.is_file() else path

    @classmethod
    def _read_record(cls, folder: Path) -> dict[str, Any]:
        path = cls._record_path(folder)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read the store's record of its bars ({exc}); re-import with --replace",
                file=str(path),
            ) from exc
        if not isinstance(record, dict) or not isinstance(record.get("sources"), list):
            raise DataError(f"not a bar-store {path.name}; re-import with --replace", file=str(path))
        return record

    def load(
        self,
        symbol: str,
        timeframe: Timeframe = Timeframe.M5,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """Bars of ``symbol`` at ``timeframe`` whose 5m bars lie in [start, end) (zone-aware datetimes).

        5m bars come back with date, open, high, low, close, volume; other timeframes are resampled
        (see :mod:`trainfarm.shared.data.resample`) and add ``bars``, the number of 5m bars inside each bar;
        buckets cut by ``start``/``end`` or by the data's ends are dropped. Raises :class:`DataNotFoundError`
        for a symbol the store does not hold.
        """
        bars = self._read_stored(self._data_path(symbol))
        if start is not None:
            bars = bars.filter(pl.col("date") >= _utc(start, "start"))
        if end is not None:
            bars = bars.filter(pl.col("date") < _utc(end, "end"))
        if timeframe is BASE_TIMEFRAME:
            return bars
        return resample(bars, timeframe)

    def summary(self, symbol: str) -> StoreSummary:
        """First and last bar, row count and gaps of ``symbol``'s stored bars."""
        path = self._data_path(symbol)
        try:
            dates = pl.read_parquet(path, columns=["date"])["date"]
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataError(
                f"cannot read stored bars ({exc}); run `farm data check`", file=str(path)
            ) from exc
        return _summary(canonical_symbol(symbol), dates)

    def check(self, symbol: str) -> CheckReport:
        """Re-validate ``symbol``'s stored bars and verify their record (bars.json) against them.

        Raises :class:`DataError` naming the file when the data file is unreadable or breaks a validation
        rule, or when the record is missing, unreadable or does not describe the data file.
        """
        data_path = self._data_path(symbol)
        bars = self._read_stored(data_path)
        # min_rows=1: imports enforce the row minimum; here only an empty file is a sign of damage.
        validate_bars(bars, file=str(data_path), min_rows=1)
        record_path = self._record_path(data_path.parent)
        record = self._read_record(data_path.parent)
        summary = _summary(data_path.parent.name, bars["date"])
        recorded_data = record.get("data")
        data: dict[str, Any] = recorded_data if isinstance(recorded_data, dict) else {}
        expected = {
            "symbol": (record.get("symbol"), summary.symbol),
            "data sha256": (data.get("sha256"), sha256_file(data_path)),
            "rows": (data.get("rows"), summary.rows),
            "first bar": (data.get("first"), _iso(summary.first)),
            "last bar": (data.get("last"), _iso(summary.last)),
        }
        for what, (recorded, actual) in expected.items():
            if recorded != actual:
                raise DataError(
                    f"{record_path.name} does not match {DATA_FILE}: {what} is {recorded!r} in "
                    f"{record_path.name} but {actual!r} in the data; re-import the sources with --replace",
                    file=str(record_path),
                )
        return CheckReport(
            summary=summary,
            gaps=summary.gaps,
            missing_bars=summary.missing_bars,
            sources=len(record["sources"]),
        )


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be a zone-aware datetime (bars are in UTC), got {moment!r}")
    return moment.astimezone(UTC)


def _gaps(dates: pl.Series) -> list[Gap]:
    return find_gaps(dates, BASE_TIMEFRAME.duration)


def _summary(symbol_id: str, dates: pl.Series) -> StoreSummary:
    return StoreSummary(symbol=symbol_id, first=dates[0], last=dates[-1], rows=dates.len(), gaps=_gaps(dates))


def _merge(stored: pl.DataFrame, bars: pl.DataFrame, name: str, symbol_id: str) -> tuple[pl.DataFrame, int]:
    """Stored bars plus the file's new ones; raise if a shared timestamp has different values.

    ``bars`` is validated, so its order is time order and its row numbers are the file's.
    """
    numbered = bars.with_row_index("_row", offset=1)
    both = numbered.join(stored, on="date", how="inner", suffix="_stored", maintain_order="left")
    differs = [pl.col(col) != pl.col(f"{col}_stored") for col in VALUE_COLUMNS]
    conflicts = both.filter(pl.any_horizontal(differs)).head(1)
    if conflicts.height:
        row = conflicts.row(0, named=True)
        column = next(col for col in VALUE_COLUMNS if row[col] != row[f"{col}_stored"])
        raise DataError(
            f"at {_iso(row['date'])}: {column} is {row[column]} in the file but {row[f'{column}_stored']} "
            f"in the stored bars of {symbol_id}; the sources disagree, so nothing was imported "
            "(use --replace to replace the stored bars with this file)",
            file=name,
            column=column,
            row=int(row["_row"]),
        )
    new = numbered.join(stored, on="date", how="anti").drop("_row")
    merged = pl.concat([stored, new]).sort("date")
    return merged, new.height


def open_store(settings: FarmSettings | None = None) -> BarStore:
    """The bar store of the given (default: current) settings."""
    settings = settings or get_settings()
    return BarStore(settings.store_dir, min_rows=settings.load_config().data.min_rows)
