"""The bar store: validated bars per symbol, at 5m, 1h or 1d, on local disk.

Layout under the store root, one folder per canonical symbol id (see :mod:`trainfarm.shared.symbols`)::

    <root>/<SYMBOL_ID>/bars-5m.parquet   date, open, high, low, close, volume; sorted, unique, on the grid
    <root>/<SYMBOL_ID>/bars-1h.parquet   the same at 1h, where hourly bars were imported or synced
    <root>/<SYMBOL_ID>/bars-1d.parquet   ... and at 1d
    <root>/<SYMBOL_ID>/bars.json         the record: per interval, its data file's sha256/rows/first/last and
                                         every source (:mod:`trainfarm.shared.data.records`)

A timeframe is built from the finest stored interval that divides it (:meth:`BarStore.load`); a coarser
one extends it back where it starts earlier. Writes are all-or-nothing. New bars are validated whole before
the store is touched; overlapping bars must agree exactly with what is stored, and a symbol's intervals must
agree with each other (:mod:`trainfarm.shared.data.merge`); the data file is written atomically first and
``bars.json`` last, so a reader sees the old state or the new one. On any error the store's files are left
byte for byte as they were. Writes into one store are serialised with an advisory lock on the root folder
(one machine; the store is not meant for network file systems).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from trainfarm.shared.atomicio import atomic_write_bytes, atomic_write_text, sha256_file
from trainfarm.shared.data.gaps import find_gaps
from trainfarm.shared.data.intervals import ALL_INTERVALS, BarInterval
from trainfarm.shared.data.merge import check_agreement, merge_bars
from trainfarm.shared.data.readers import BAR_COLUMNS, read_bars
from trainfarm.shared.data.records import (
    LEGACY_RECORD_FILE,
    RECORD_FILE,
    IntervalRecord,
    Source,
    data_file,
    read_record,
    record_json,
    record_path,
)
from trainfarm.shared.data.reports import CheckReport, ImportReport, StoreSummary, iso
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.validation import detect_interval, validate_bars
from trainfarm.shared.errors import DataError, DataNotFoundError, SymbolError
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe

#: The 5m data file (stores before intervals had only this one).
DATA_FILE = data_file(BarInterval.M5)

__all__ = [
    "DATA_FILE",
    "LEGACY_RECORD_FILE",
    "RECORD_FILE",
    "BarStore",
    "CheckReport",
    "ImportReport",
    "StoreSummary",
    "open_store",
]


class BarStore:
    """Per-symbol store of validated bars under ``root`` (see the module docstring).

    ``min_rows`` is the fewest 5-minute slots a first import of an interval must cover
    (``DataParams.min_rows``; 288 is a day: 288 5m bars, 24 hourly or one daily bar).
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
            if is_symbol and any((entry / data_file(i)).is_file() for i in ALL_INTERVALS):
                found.append(entry.name)
        return sorted(found)

    def intervals(self, symbol: str) -> tuple[BarInterval, ...]:
        """The intervals stored for ``symbol``, finest first (empty when none)."""
        folder = self.folder(symbol)
        return tuple(i for i in ALL_INTERVALS if (folder / data_file(i)).is_file())

    def has(self, symbol: str) -> bool:
        """Whether bars of any interval are stored for ``symbol``."""
        return bool(self.intervals(symbol))

    # -- writing ---------------------------------------------------------------------------------------

    def import_file(
        self,
        path: Path,
        symbol: str,
        *,
        interval: BarInterval | None = None,
        assume_utc: bool = False,
        replace: bool = False,
    ) -> ImportReport:
        """Validate the bar file at ``path`` and merge it into ``symbol``'s bars of its interval.

        Without ``interval`` the file's median spacing names it (a spacing that is not 5m, 1h or 1d is
        refused, naming it). Bars already stored must agree exactly with the file where both have a
        timestamp, and the symbol's other intervals must agree with the result; otherwise a
        :class:`DataError` names the first disagreeing bar. ``replace=True`` replaces that interval's bars
        (and source list) with this file instead. On any error the store is unchanged.
        """
        path = Path(path)
        name = str(path)
        bars = read_bars(path, assume_utc=assume_utc)
        if interval is None:
            # Fewer than two bars have no spacing: validated as 5m, they are refused as too few rows.
            interval = detect_interval(bars, file=name) if bars.height >= 2 else BarInterval.M5
        validate_bars(bars, file=name, min_rows=self.min_rows, interval=interval)
        source: Source = {
            "file": path.name,
            "sha256": sha256_file(path),
            "rows": bars.height,
            "first": iso(bars["date"][0]),
            "last": iso(bars["date"][-1]),
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return self._merge_in(symbol, interval, bars, origin=name, source=source, wholesale=replace)

    def append(
        self,
        symbol: str,
        interval: BarInterval,
        bars: pl.DataFrame,
        *,
        origin: str,
        source: str,
        replace: bool,
    ) -> ImportReport:
        """Validate closed ``bars`` from a sync and merge them into ``symbol``'s ``interval`` bars.

        ``origin`` names them in errors (the source's endpoint or file); ``source`` is the sync's entry in
        the record. A stored bar with other values is refused unless ``replace`` (then the new values
        are taken, counted in ``rows_revised``). The first bars of an interval must cover ``min_rows``
        five-minute slots, like an import; later ones may be a single bar. On any error the store is
        unchanged.
        """
        folder = self.folder(symbol)
        first_write = not (folder / data_file(interval)).is_file()
        validate_bars(bars, file=origin, min_rows=self.min_rows if first_write else 1, interval=interval)
        entry: Source = {
            "sync": source,
            "first": iso(bars["date"][0]),
            "last": iso(bars["date"][-1]),
            "rows": bars.height,
            "synced_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return self._merge_in(
            symbol, interval, bars, origin=origin, source=entry, revise=replace, new_name="the source"
        )

    def _merge_in(
        self,
        symbol: str,
        interval: BarInterval,
        bars: pl.DataFrame,
        *,
        origin: str,
        source: Source,
        wholesale: bool = False,
        revise: bool = False,
        new_name: str = "the file",
    ) -> ImportReport:
        folder = self.folder(symbol)
        symbol_id = folder.name
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            record = read_record(folder) if folder.is_dir() else {}
            data_path = folder / data_file(interval)
            if wholesale or not data_path.is_file():
                merged, added, revised = bars, bars.height, 0
                sources: list[Source] = [source]
            else:
                result = merge_bars(
                    self._read_stored(data_path),
                    bars,
                    origin=origin,
                    symbol_id=symbol_id,
                    replace=revise,
                    new_name=new_name,
                )
                merged, added, revised = result.bars, result.added, result.revised
                old = record.get(interval) or IntervalRecord("", 0, "", "")
                if added == 0 and revised == 0 and old.with_source(source) is old:
                    # The same file again: nothing to write, and the store's bytes stay as they are.
                    return self._report(symbol_id, interval, origin, bars.height, 0, 0, merged)
                sources = old.with_source(source).sources
            self._check_intervals(folder, interval, merged, origin)
            self._write(
                folder, interval, merged, record, sources, rewrite_data=wholesale or added + revised > 0
            )
        return self._report(symbol_id, interval, origin, bars.height, added, revised, merged)

    def _check_intervals(self, folder: Path, interval: BarInterval, bars: pl.DataFrame, origin: str) -> None:
        """The symbol's other stored intervals must agree with ``interval``'s new ``bars``."""
        for other in ALL_INTERVALS:
            path = folder / data_file(other)
            if other is interval or not path.is_file():
                continue
            stored = self._read_stored(path)
            fine, coarse = (bars, interval), (stored, other)
            if other.minutes < interval.minutes:
                fine, coarse = coarse, fine
            if coarse[1].minutes % fine[1].minutes == 0:
                check_agreement(*fine, *coarse, origin=origin, symbol_id=folder.name)

    def _report(
        self,
        symbol_id: str,
        interval: BarInterval,
        name: str,
        rows: int,
        added: int,
        revised: int,
        merged: pl.DataFrame,
    ) -> ImportReport:
        dates = merged["date"]
        return ImportReport(
            symbol=symbol_id,
            file=name,
            rows_in_file=rows,
            rows_added=added,
            rows_total=merged.height,
            first=dates[0],
            last=dates[-1],
            gaps=find_gaps(dates, interval.duration),
            interval=interval,
            rows_revised=revised,
        )

    @staticmethod
    def _write(
        folder: Path,
        interval: BarInterval,
        bars: pl.DataFrame,
        record: dict[BarInterval, IntervalRecord],
        sources: list[Source],
        *,
        rewrite_data: bool,
    ) -> None:
        data_path, path = folder / data_file(interval), folder / RECORD_FILE
        payload = b""
        if rewrite_data:
            # Serialised in memory once, so the sha256 recorded in bars.json is of exactly these bytes.
            buffer = io.BytesIO()
            bars.select(BAR_COLUMNS).write_parquet(buffer, compression="zstd")
            payload = buffer.getvalue()
        entry = IntervalRecord(
            sha256=hashlib.sha256(payload).hexdigest() if rewrite_data else sha256_file(data_path),
            rows=bars.height,
            first=iso(bars["date"][0]),
            last=iso(bars["date"][-1]),
            sources=sources,
        )
        text = record_json(folder.name, {**record, interval: entry})
        folder_existed = folder.is_dir()
        old_data = data_path.read_bytes() if rewrite_data and data_path.is_file() else None
        try:
            if rewrite_data:
                atomic_write_bytes(data_path, payload)
            atomic_write_text(path, text)
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

    def _not_found(self, symbol: str) -> DataNotFoundError:
        return DataNotFoundError(
            f"no bars stored for {canonical_symbol(symbol)} in {self.root}; "
            "import a file first with `farm data import`, or sync them with `farm data sync`"
        )

    def _data_path(self, symbol: str, interval: BarInterval) -> Path:
        path = self.folder(symbol) / data_file(interval)
        if not path.is_file():
            stored = self.intervals(symbol)
            if not stored:
                raise self._not_found(symbol)
            raise DataNotFoundError(
                f"no {interval} bars stored for {canonical_symbol(symbol)} (it has "
                f"{', '.join(i.value for i in stored)} bars)"
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

    def serving(self, symbol: str, timeframe: Timeframe) -> tuple[BarInterval, ...]:
        """The stored intervals that ``timeframe`` is built from, finest first: the first serves it, the
        others extend it back. Raises :class:`DataNotFoundError` saying why when none divides it."""
        stored = self.intervals(symbol)
        if not stored:
            raise self._not_found(symbol)
        usable = tuple(i for i in stored if i.serves(timeframe))
        if not usable:
            have = ", ".join(i.value for i in stored)
            need = " or ".join(i.value for i in ALL_INTERVALS if i.serves(timeframe))
            raise DataNotFoundError(
                f"{canonical_symbol(symbol)} has {have} bars only: {timeframe} bars cannot be built from "
                f"them (a {timeframe} bar needs {need} bars, an interval that divides it); "
                "import or sync those"
            )
        return usable

    def load(
        self,
        symbol: str,
        timeframe: Timeframe = Timeframe.M5,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pl.DataFrame:
        """Bars of ``symbol`` at ``timeframe`` built from stored bars that open at or after ``start`` and
        close by ``end`` (zone-aware datetimes).

        5m bars come back with date, open, high, low, close, volume; other timeframes are resampled
        (see :mod:`trainfarm.shared.data.resample`) from the finest stored interval that divides them,
        extended back by a coarser one where that starts earlier, and add ``bars``, the 5-minute slots
        inside each bar; buckets cut by ``start``/``end`` or by the data's ends are dropped. Raises
        :class:`DataNotFoundError` for a symbol the store does not hold or cannot build ``timeframe`` for.
        """
        intervals = self.serving(symbol, timeframe)
        parts: list[pl.DataFrame] = []
        for interval in intervals:
            bars = self._read_stored(self._data_path(symbol, interval))
            if start is not None:
                bars = bars.filter(pl.col("date") >= _utc(start, "start"))
            if end is not None:
                bars = bars.filter(pl.col("date") + interval.duration <= _utc(end, "end"))
            if timeframe is BASE_TIMEFRAME:
                return bars
            built = resample(bars, timeframe, interval)
            if parts and parts[0].height:
                built = built.filter(pl.col("date") < parts[0]["date"][0])  # only what the finer lacks
            parts.insert(0, built)
        return pl.concat(parts) if len(parts) > 1 else parts[0]

    def summary(self, symbol: str, interval: BarInterval | None = None) -> StoreSummary:
        """First and last bar, row count and gaps of ``symbol``'s stored bars at ``interval`` (default: the
        finest stored)."""
        interval = interval or self._finest(symbol)
        path = self._data_path(symbol, interval)
        try:
            dates = pl.read_parquet(path, columns=["date"])["date"]
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DataError(
                f"cannot read stored bars ({exc}); run `farm data check`", file=str(path)
            ) from exc
        return _summary(canonical_symbol(symbol), dates, interval)

    def summaries(self, symbol: str) -> list[StoreSummary]:
        """:meth:`summary` of every stored interval, finest first."""
        return [self.summary(symbol, interval) for interval in self.intervals(symbol)]

    def newest_close(self, symbol: str) -> datetime:
        """When the newest bar of any stored interval closed: how current the symbol's data is.

        Read from the record (``bars.json``, written with each data file), not the data: status pages and
        every submitted retrain ask this. Raises :class:`DataNotFoundError` when nothing is stored.
        """
        folder = self.folder(symbol)
        stored = self.intervals(symbol)
        if not stored:
            raise self._not_found(symbol)
        record = read_record(folder)
        closes = [
            datetime.fromisoformat(record[interval].last) + interval.duration
            if interval in record
            else self.summary(symbol, interval).end
            for interval in stored
        ]
        return max(closes)

    def _finest(self, symbol: str) -> BarInterval:
        stored = self.intervals(symbol)
        if not stored:
            raise self._not_found(symbol)
        return stored[0]

    def check(self, symbol: str) -> CheckReport:
        """Re-validate ``symbol``'s stored bars at every interval, verify the record (bars.json) against
        them, and that the intervals agree.

        Raises :class:`DataError` naming the file when a data file is unreadable or breaks a validation
        rule, when the record is missing, unreadable or does not describe a data file, or when two
        intervals disagree.
        """
        folder = self.folder(symbol)
        stored = self.intervals(symbol)
        if not stored:
            raise self._not_found(symbol)
        record = read_record(folder)
        path = record_path(folder)
        summaries = []
        for interval in stored:
            data_path = folder / data_file(interval)
            bars = self._read_stored(data_path)
            # min_rows=1: imports enforce the row minimum; here only an empty file is a sign of damage.
            validate_bars(bars, file=str(data_path), min_rows=1, interval=interval)
            summary = _summary(folder.name, bars["date"], interval)
            entry = record.get(interval)
            if entry is None:
                raise DataError(
                    f"{path.name} does not list the {interval} bars in {data_path.name}; re-import the "
                    "sources with --replace",
                    file=str(path),
                )
            expected = {
                "data sha256": (entry.sha256, sha256_file(data_path)),
                "rows": (entry.rows, summary.rows),
                "first bar": (entry.first, iso(summary.first)),
                "last bar": (entry.last, iso(summary.last)),
            }
            for what, (recorded, actual) in expected.items():
                if recorded != actual:
                    raise DataError(
                        f"{path.name} does not match {data_path.name}: {what} is {recorded!r} in {path.name} "
                        f"but {actual!r} in the data; re-import the sources with --replace",
                        file=str(path),
                    )
            self._check_intervals(folder, interval, bars, str(data_path))
            summaries.append(summary)
        finest = summaries[0]
        return CheckReport(
            summary=finest,
            gaps=finest.gaps,
            missing_bars=finest.missing_bars,
            sources=sum(len(e.sources) for e in record.values()),
            summaries=summaries,
        )


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be a zone-aware datetime (bars are in UTC), got {moment!r}")
    return moment.astimezone(UTC)


def _summary(symbol_id: str, dates: pl.Series, interval: BarInterval) -> StoreSummary:
    return StoreSummary(
        symbol=symbol_id,
        first=dates[0],
        last=dates[-1],
        rows=dates.len(),
        gaps=find_gaps(dates, interval.duration),
        interval=interval,
    )


def open_store(settings: FarmSettings | None = None) -> BarStore:
    """The bar store of the given (default: current) settings."""
    settings = settings or get_settings()
    return BarStore(settings.store_dir, min_rows=settings.load_config().data.min_rows)
