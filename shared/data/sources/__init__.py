"""Where new bars come from: an exchange's REST API (:mod:`.exchange`, through ccxt) or a watched
freqtrade data folder (:mod:`.folder`).

A source only fetches. It returns the bars it has for a symbol and interval in the store's canonical
columns (:data:`trainfarm.shared.data.readers.BAR_COLUMNS`), as the source gave them: nothing is sorted,
deduplicated or dropped, so that :mod:`trainfarm.shared.data.sync` can validate them like an imported file
and name the row a source got wrong. Dropping the bar that has not closed yet, refusing a bar from the future
and merging into the store are the sync's job, the same for every source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import polars as pl

from trainfarm.shared.data.intervals import BarInterval


@dataclass(frozen=True)
class Fetched:
    """Bars a source returned: ``bars`` in the canonical columns, in the source's order.

    ``origin`` names where they came from in error messages (an exchange's klines endpoint and symbol, or
    a file's path); row numbers in those messages count rows of ``bars`` from 1.
    """

    bars: pl.DataFrame
    origin: str


class BarSource(Protocol):
    """Something that can be asked for a symbol's bars since a time."""

    @property
    def name(self) -> str:
        """Short name for reports and the store's record ("binance", "folder /data/binance")."""
        ...

    def fetch(self, symbol: str, interval: BarInterval, *, since: datetime | None, now: datetime) -> Fetched:
        """Bars of ``symbol`` (a canonical id such as ``BTC_USDT``) at ``interval`` that open at or after
        ``since`` (None: all the source has), up to ``now``.

        Raises :class:`~trainfarm.shared.errors.SourceUnavailableError` when the source cannot answer
        (after its own retries), :class:`~trainfarm.shared.errors.SymbolError` for a symbol it does not
        list, :class:`~trainfarm.shared.errors.DataError` for an answer that is not bars.
        """
        ...
