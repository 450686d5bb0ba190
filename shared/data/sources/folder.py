"""Fresh bars from a freqtrade data folder that ``freqtrade download-data`` keeps current.

freqtrade keeps one file per pair and interval in ``user_data/data/<exchange>/``: ``BTC_USDT-5m.feather``
by default, ``.parquet`` with ``--data-format-ohlcv parquet``. Each sync reads the whole file (a few MB) and
hands every row to the sync, which merges what is new and checks that the rest agrees with the store.

freqtrade rewrites the file in place, not atomically, so a sync may meet one half-written. A file whose
size or modification time changes while it is read, or that cannot be read at all (a truncated Arrow
file), is refused this time with :class:`SourceUnavailableError` and read again at the next sync.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.sources import Fetched
from trainfarm.shared.errors import DataError, DataNotFoundError, SourceUnavailableError
from trainfarm.shared.symbols import canonical_symbol

#: The file formats freqtrade writes that the store reads, in the order they are looked for.
SUFFIXES = (".feather", ".parquet")


class FolderSource:
    """A :class:`~trainfarm.shared.data.sources.BarSource` reading a freqtrade data folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def name(self) -> str:
        """``folder <path>``: the record's name for this source."""
        return f"folder {self.folder}"

    def file_of(self, symbol: str, interval: BarInterval) -> Path:
        """The freqtrade file of ``symbol`` at ``interval``; :class:`DataNotFoundError` names the paths
        looked for when there is none."""
        stem = f"{canonical_symbol(symbol)}-{interval}"
        candidates = [self.folder / f"{stem}{suffix}" for suffix in SUFFIXES]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise DataNotFoundError(
                f"the freqtrade folder {self.folder} has no {stem} file (looked for "
                f"{', '.join(p.name for p in candidates)}); run `freqtrade download-data` for that pair"
            )
        return found

    def fetch(self, symbol: str, interval: BarInterval, *, since: datetime | None, now: datetime) -> Fetched:
        """Every row of the symbol's file, in the file's order (``since`` and ``now`` are the sync's to
        apply: a row before ``since`` is still compared with the store)."""
        path = self.file_of(symbol, interval)
        before = _stamp(path)
        try:
            bars = read_bars(path)
        except DataError as exc:
            # An unreadable file is most often one freqtrade is writing: refused now, read next time.
            raise SourceUnavailableError(f"{exc}; it is read again at the next sync") from exc
        if _stamp(path) != before:
            raise SourceUnavailableError(
                f"{path}: the file changed while it was read (freqtrade is writing it); "
                "it is read again at the next sync"
            )
        return Fetched(bars=bars, origin=str(path))


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise SourceUnavailableError(f"{path}: cannot read the file ({exc.strerror})") from exc
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


__all__ = ["SUFFIXES", "FolderSource"]
