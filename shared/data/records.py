"""The record of a symbol's stored bars (``bars.json``): per interval, its data file and where it came from.

Format 2, written by every import and sync::

    {"format": 2, "symbol": "BTC_USDT", "display": "BTC/USDT",
     "intervals": {"5m": {"file": "bars-5m.parquet", "sha256": ..., "rows": ..., "first": ..., "last": ...,
                          "sources": [{"file": ..., "sha256": ..., "rows": ..., "first": ..., "last": ...,
                                       "imported_at": ...},
                                      {"sync": "binance", "rows": ..., "first": ..., "last": ...,
                                       "synced_at": ...}]}}}

A file import adds one source entry per distinct file; a sync keeps one entry per source, updated in place
(a source synced every five minutes would otherwise grow the record by a line each time). Format 1 (5m
only: ``data`` and ``sources`` at the top) and the legacy ``meta.json`` name are read as 5m and rewritten
as format 2 at the next write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainfarm.shared.data.intervals import ALL_INTERVALS, BarInterval
from trainfarm.shared.errors import DataError
from trainfarm.shared.symbols import display_symbol

RECORD_FILE = "bars.json"
#: Where stores written before the record's rename kept it; read when RECORD_FILE is absent, removed at
#: the next write.
LEGACY_RECORD_FILE = "meta.json"
#: Version of the record's layout; bump when its keys change meaning.
RECORD_FORMAT = 2

Source = dict[str, Any]


def data_file(interval: BarInterval) -> str:
    """The name of the data file of ``interval``'s bars in a symbol's folder."""
    return f"bars-{interval}.parquet"


@dataclass(frozen=True)
class IntervalRecord:
    """What the record says about one interval's data file."""

    sha256: str
    rows: int
    first: str
    last: str
    sources: list[Source] = field(default_factory=list)

    def to_json(self, interval: BarInterval) -> dict[str, object]:
        return {
            "file": data_file(interval),
            "sha256": self.sha256,
            "rows": self.rows,
            "first": self.first,
            "last": self.last,
            "sources": self.sources,
        }

    def with_source(self, source: Source) -> IntervalRecord:
        """This record with ``source`` added, or updated in place where it is a sync already listed."""
        if "sync" in source:
            kept = [old for old in self.sources if old.get("sync") != source["sync"]]
            return replace(self, sources=[*kept, source])
        if any(old.get("sha256") == source.get("sha256") for old in self.sources if "file" in old):
            return self
        return replace(self, sources=[*self.sources, source])


def record_path(folder: Path) -> Path:
    """The symbol's record file: bars.json, or the legacy meta.json of a store written before it."""
    path = folder / RECORD_FILE
    legacy = folder / LEGACY_RECORD_FILE
    return legacy if not path.is_file() and legacy.is_file() else path


def read_record(folder: Path) -> dict[BarInterval, IntervalRecord]:
    """The record of ``folder``'s bars by interval; {} when there is none. Raises :class:`DataError` naming
    the record when it is unreadable or not a bar-store record."""
    path = record_path(folder)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read the store's record of its bars ({exc}); re-import with --replace", file=str(path)
        ) from exc
    try:
        return _parse(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"not a bar-store {path.name} ({exc}); re-import with --replace", file=str(path)
        ) from exc


def _parse(raw: Any) -> dict[BarInterval, IntervalRecord]:
    if not isinstance(raw, dict):
        raise TypeError("not a JSON object")
    if raw.get("format", 1) == 1:
        entries = {BarInterval.M5.value: {**raw["data"], "sources": raw["sources"]}}
    else:
        entries = raw["intervals"]
    parsed = {}
    for name, entry in entries.items():
        if not isinstance(entry["sources"], list):
            raise TypeError(f"sources of {name} is not a list")
        parsed[BarInterval(name)] = IntervalRecord(
            sha256=str(entry["sha256"]),
            rows=int(entry["rows"]),
            first=str(entry["first"]),
            last=str(entry["last"]),
            sources=list(entry["sources"]),
        )
    return parsed


def record_json(symbol_id: str, intervals: dict[BarInterval, IntervalRecord]) -> str:
    """The text of ``bars.json`` for ``symbol_id`` with ``intervals`` (finest first)."""
    record = {
        "format": RECORD_FORMAT,
        "symbol": symbol_id,
        "display": display_symbol(symbol_id),
        "intervals": {i.value: intervals[i].to_json(i) for i in ALL_INTERVALS if i in intervals},
    }
    return json.dumps(record, indent=2) + "\n"
