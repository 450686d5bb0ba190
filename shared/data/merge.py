"""Merging new bars into stored ones, and checking that a symbol's intervals tell the same history.

The farm never silently rewrites history its models trained on: a new bar whose timestamp is stored with
other values is an exchange revision (or a wrong file), refused with the bar named unless the caller asks
to replace it. Where a symbol is stored at two intervals (5m and 1h, say), the finer bars aggregated to the
coarser interval must give the coarser bars where both cover a whole bar, or the import is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.readers import VALUE_COLUMNS
from trainfarm.shared.data.resample import resample
from trainfarm.shared.errors import DataError

#: Relative tolerance between an exchange's own coarse bar and the sum of its fine bars' volumes: the
#: exchange sums exact decimals, we sum doubles. Prices (first, max, min, last of the same numbers) match
#: exactly.
VOLUME_RTOL = 1e-6


@dataclass(frozen=True)
class Merged:
    """Stored bars with new ones merged in: ``added`` new timestamps, ``revised`` replaced bars."""

    bars: pl.DataFrame
    added: int
    revised: int


def merge_bars(
    stored: pl.DataFrame,
    new: pl.DataFrame,
    *,
    origin: str,
    symbol_id: str,
    replace: bool = False,
    new_name: str = "the file",
) -> Merged:
    """``stored`` plus ``new`` (validated: sorted, unique), in time order.

    A shared timestamp with different values raises :class:`DataError` naming ``origin``, the row of
    ``new`` (1-based, called ``new_name``) and the column, unless ``replace``: then ``new``'s values win
    and are counted as revised.
    """
    numbered = new.with_row_index("_row", offset=1)
    both = numbered.join(stored, on="date", how="inner", suffix="_stored", maintain_order="left")
    differs = pl.any_horizontal([pl.col(col) != pl.col(f"{col}_stored") for col in VALUE_COLUMNS])
    conflicts = both.filter(differs)
    if conflicts.height and not replace:
        row = conflicts.row(0, named=True)
        column = next(col for col in VALUE_COLUMNS if row[col] != row[f"{col}_stored"])
        raise DataError(
            f"at {row['date'].isoformat()}: {column} is {row[column]} in {new_name} but "
            f"{row[f'{column}_stored']} in the stored bars of {symbol_id} ({conflicts.height} bar(s) "
            "differ); "
            "the farm does not rewrite history its models trained on, so nothing was written "
            "(use --replace to take the new values)",
            file=origin,
            column=column,
            row=int(row["_row"]),
        )
    fresh = numbered.join(stored, on="date", how="anti").drop("_row")
    kept = stored
    if conflicts.height:
        revised = numbered.join(conflicts.select("date"), on="date", how="semi").drop("_row")
        kept = stored.join(revised.select("date"), on="date", how="anti")
        fresh = pl.concat([fresh, revised])
    merged = pl.concat([kept, fresh.select(stored.columns)]).sort("date")
    return Merged(merged, added=fresh.height - conflicts.height, revised=conflicts.height)


def check_agreement(
    fine: pl.DataFrame,
    fine_interval: BarInterval,
    coarse: pl.DataFrame,
    coarse_interval: BarInterval,
    *,
    origin: str,
    symbol_id: str,
) -> None:
    """Raise :class:`DataError` at the first whole coarse bar that ``fine`` aggregates to other values.

    Only coarse bars that the fine bars cover completely are compared (an outage in the fine data leaves
    its coarse bar unchecked, not refused). ``origin`` is the file or source being imported, named in the
    message.
    """
    aggregated = resample(fine, coarse_interval.timeframe, fine_interval).filter(
        pl.col("bars") == coarse_interval.base_bars
    )
    both = aggregated.join(coarse, on="date", how="inner", suffix="_coarse").sort("date")
    if both.is_empty():
        return
    prices = [pl.col(c) != pl.col(f"{c}_coarse") for c in VALUE_COLUMNS if c != "volume"]
    volume = (pl.col("volume") - pl.col("volume_coarse")).abs() > VOLUME_RTOL * pl.max_horizontal(
        pl.col("volume").abs(), pl.col("volume_coarse").abs(), pl.lit(1e-12)
    )
    bad = both.filter(pl.any_horizontal([*prices, volume])).head(1)
    if bad.is_empty():
        return
    row = bad.row(0, named=True)
    column = next(
        c
        for c in VALUE_COLUMNS
        if (c == "volume" and abs(row[c] - row[f"{c}_coarse"]) > VOLUME_RTOL * max(abs(row[c]), 1e-12))
        or (c != "volume" and row[c] != row[f"{c}_coarse"])
    )
    raise DataError(
        f"at {row['date'].isoformat()}: the {coarse_interval} bar of {symbol_id} has {column} "
        f"{row[f'{column}_coarse']}, but its {fine_interval} bars give {row[column]}; the "
        f"{fine_interval} and {coarse_interval} histories disagree there, so nothing was imported",
        file=origin,
        column=column,
    )
