"""A market's feature spec from the config, and the stored bars of every series it reads.

The spec (:class:`trainfarm_client.featurespec.FeatureSpec`) is what a pack records and a bot rebuilds;
the farm makes it from ``[timeframes.<tf>.features]`` (:mod:`trainfarm.shared.dataset.feature_params`)
and reads its series from the bar store here, so training, the live checks and the replay feed
:meth:`FeatureSpec.compute` the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from trainfarm.shared.errors import DataError, DataNotFoundError
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.featuresets import current_version
from trainfarm_client.featurespec import FeatureSpec, SeriesKey, SetRef, bar_duration

if TYPE_CHECKING:
    from trainfarm.shared.config import FarmConfig
    from trainfarm.shared.data.store import BarStore


def feature_spec(config: FarmConfig, symbol: str, timeframe: Timeframe) -> FeatureSpec:
    """What ``symbol``'s models at ``timeframe`` see under ``config`` (the market left out of its own
    context markets)."""
    params = config.params(timeframe)
    features = params.features
    return FeatureSpec(
        symbol=symbol,
        timeframe=timeframe.value,
        max_gap_bars=params.max_gap_bars,
        sets=tuple(SetRef(name, current_version(name)) for name in features.sets),
        timeframes=tuple(tf.value for tf in features.timeframes),
        markets=tuple(m for m in features.markets if m != symbol),
        context_gap_bars={tf.value: config.params(tf).max_gap_bars for tf in features.timeframes},
    )


def load_inputs(
    store: BarStore,
    spec: FeatureSpec,
    *,
    rows_from: datetime | None = None,
    end: datetime | None = None,
) -> dict[SeriesKey, pl.DataFrame]:
    """The stored bars of every series ``spec`` reads, closed by ``end``; with ``rows_from``, each from
    its requirement's history before it (so the rows from there on are warm). A series the store lacks
    is a :class:`DataNotFoundError` naming it."""
    out: dict[SeriesKey, pl.DataFrame] = {}
    for need in spec.requirements():
        start = None if rows_from is None else rows_from - (need.bars + 1) * bar_duration(need.timeframe)
        try:
            out[need.key] = store.load(need.symbol, Timeframe(need.timeframe), start=start, end=end)
        except DataNotFoundError as exc:
            if need.key == spec.key:
                raise
            raise DataNotFoundError(
                f"{spec.symbol} {spec.timeframe} reads {need.symbol} {need.timeframe} for its features, "
                f"which the store cannot give: {exc}"
            ) from exc
    return out


def features_at(store: BarStore, spec: FeatureSpec, dates: pl.Series) -> pl.DataFrame:
    """``spec``'s feature rows of the bars opening at ``dates`` (sorted), built from the store as a bot
    would have built them: each row from the series' history before it. A date without a complete row
    is a :class:`DataError` (how a champion of other features is scored on a candidate's test rows)."""
    first, last = dates.min(), dates.max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        raise DataError("no dates to build feature rows for")
    inputs = load_inputs(store, spec, rows_from=first, end=last + spec.interval)
    names = list(spec.names())
    rows = spec.compute(inputs).select("date", *names)
    found = dates.to_frame("date").join(rows, on="date", how="left", maintain_order="left")
    incomplete = found.filter(pl.any_horizontal(pl.col(names).is_null()))
    if incomplete.height:
        raise DataError(
            f"{incomplete.height} of {found.height} rows lack {spec.symbol} {spec.timeframe} features "
            f"(first at {incomplete['date'][0]})"
        )
    return found
