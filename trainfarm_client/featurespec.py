"""What a pack's models see: its feature sets, its context series, and how the rows are built from bars.

A :class:`FeatureSpec` is recorded in every manifest (``features``) and rebuilt from it by the bot, so the
farm and a bot compute a pack's rows with one function, :meth:`FeatureSpec.compute`:

* the market's own bars at the pack's bar size go through each of its own sets (``core``, user sets);
* with the ``context`` set, each **higher bar size** of the market (``timeframes``) contributes the
  :data:`~trainfarm_client.featuresets.CONTEXT_FEATURES` of its last bar closed by the row's close (a 1h
  row at 11:00, closing 12:00, sees the 12h bar that closed at 12:00, never the one still forming), named
  ``<bar size>.<feature>`` (``12h.ret_1``);
* each **other market** (``markets``) contributes the same features of its bar closing at the same time,
  named ``<market>.<feature>`` (``BTC_USDT.ret_1``).

A missing context bar is missing: a market's bar absent at that time gives nulls; a higher bar size's last
closed bar is used only while fewer than its ``max_gap_bars`` + 1 of its intervals have passed since it
closed (the gap tolerance its own features already use), so nothing is carried forward past an outage.
Rows with a null feature are neither trained on nor scored. Every column depends only on bars closed by
the row's close: the causality property test covers them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from trainfarm_client.errors import BarsError
from trainfarm_client.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, MIN_HISTORY_BARS, add_features
from trainfarm_client.featuresets import (
    CONTEXT,
    CONTEXT_FEATURES,
    CONTEXT_VERSION,
    CORE,
    FeatureSet,
    FeatureSetError,
    find_set,
)

#: A series is named by (symbol, bar size), e.g. ``("BTC_USDT", "1h")``: the keys of the mapping
#: :meth:`FeatureSpec.compute` and ``LiveModel.score`` take.
SeriesKey = tuple[str, str]

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def bar_duration(size: str) -> timedelta:
    """``"5m"``, ``"12h"``, ``"1d"`` as a timedelta; ``ValueError`` for anything else."""
    match = _DURATION.match(size)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"bar size {size!r} is not a whole number of minutes, hours or days (like 1h)")
    return int(match.group(1)) * _UNIT[match.group(2)]


@dataclass(frozen=True)
class Requirement:
    """One series a pack needs: the newest ``bars`` bars of ``symbol`` at ``timeframe``."""

    symbol: str
    timeframe: str
    bars: int

    @property
    def key(self) -> SeriesKey:
        return (self.symbol, self.timeframe)

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe} ({self.bars} bars)"


@dataclass(frozen=True)
class SetRef:
    """A feature set by name and version, as a manifest records it."""

    name: str
    version: str


@dataclass(frozen=True)
class FeatureSpec:
    """The rows of one market at one bar size: see the module docstring."""

    symbol: str
    timeframe: str
    max_gap_bars: int
    sets: tuple[SetRef, ...] = (SetRef(CORE, FEATURE_SPEC_VERSION),)
    timeframes: tuple[str, ...] = ()
    markets: tuple[str, ...] = ()
    #: max_gap_bars of each context bar size (its own features' gap tolerance).
    context_gap_bars: Mapping[str, int] = field(default_factory=dict)
    #: Columns computed but not fed to the models (pruned by the farm, ``[training] prune_features``).
    dropped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.timeframes or self.markets) and not self.has_context:
            raise ValueError("context timeframes or markets need the 'context' set")
        own = bar_duration(self.timeframe)
        for size in self.timeframes:
            if bar_duration(size) <= own:
                raise ValueError(f"context bar size {size} is not longer than the rows' {self.timeframe}")
            if size not in self.context_gap_bars:
                raise ValueError(f"no max_gap_bars for context bar size {size}")
        if self.symbol in self.markets:
            raise ValueError(f"{self.symbol} is the market itself, not a context market")

    @property
    def key(self) -> SeriesKey:
        """The market's own series."""
        return (self.symbol, self.timeframe)

    @property
    def has_context(self) -> bool:
        return any(s.name == CONTEXT for s in self.sets)

    @property
    def interval(self) -> timedelta:
        return bar_duration(self.timeframe)

    def own_sets(self) -> list[FeatureSet]:
        """The installed sets computed on the market's own bars; FeatureSetError when one is missing (or
        the pack's ``context`` is another version than this code's)."""
        for ref in self.sets:
            if ref.name == CONTEXT and ref.version != CONTEXT_VERSION:
                raise FeatureSetError(
                    f"feature set 'context' version {ref.version!r} is needed, this environment has "
                    f"{CONTEXT_VERSION!r}"
                )
        return [find_set(s.name, s.version) for s in self.sets if s.name != CONTEXT]

    def computed_names(self) -> tuple[str, ...]:
        """Every column the sets compute: own sets, then higher bar sizes, then markets."""
        out = [n for s in self.own_sets() for n in s.names]
        for prefix in (*self.timeframes, *self.markets):
            out += [f"{prefix}.{n}" for n in CONTEXT_FEATURES]
        if len(set(out)) != len(out):
            raise ValueError(f"feature sets {[s.name for s in self.sets]} give the same column twice")
        return tuple(out)

    def names(self) -> tuple[str, ...]:
        """The models' feature columns, in their order: :meth:`computed_names` less ``dropped``."""
        computed = self.computed_names()
        unknown = sorted(set(self.dropped) - set(computed))
        if unknown:
            raise ValueError(f"dropped features {unknown} are not computed by the feature sets")
        return tuple(n for n in computed if n not in self.dropped)

    def requirements(self) -> tuple[Requirement, ...]:
        """Every series :meth:`compute` reads, own first, with the bars a bot should feed of each."""
        own = max([MIN_HISTORY_BARS, *(s.history_bars for s in self.own_sets())])
        out = [Requirement(self.symbol, self.timeframe, own)]
        out += [Requirement(self.symbol, size, MIN_HISTORY_BARS) for size in self.timeframes]
        out += [Requirement(market, self.timeframe, MIN_HISTORY_BARS) for market in self.markets]
        return tuple(out)

    @property
    def core_only(self) -> bool:
        """The core set alone, every column kept (a bot's fast newest-row path applies)."""
        return self.sets == (SetRef(CORE, FEATURE_SPEC_VERSION),) and not self.dropped

    def compute(self, inputs: Mapping[SeriesKey, pl.DataFrame]) -> pl.DataFrame:
        """The own bars' rows with a ``segment`` and every feature column (nulls where warming up or a
        context bar is missing); other columns of the own bars are kept. ``BarsError`` names a series that
        is missing or unusable."""
        own = _series(inputs, (self.symbol, self.timeframe))
        sets = self.own_sets()
        computed, names = self.computed_names(), self.names()
        core = next((s for s in sets if s.name == CORE), None)
        frame = add_features(own, interval=self.interval, max_gap_bars=self.max_gap_bars)
        if core is None:  # the core features are the segments' by-product here, not the pack's columns
            frame = frame.drop(*(n for n in FEATURE_NAMES if n not in own.columns))
        for extra in sets:
            if extra.name != CORE:
                frame = extra.add(frame, interval=self.interval, max_gap_bars=self.max_gap_bars)
        close = _naive_utc(frame, "date") + self.interval
        frame = frame.with_columns(close.alias(_CLOSE))
        for size in self.timeframes:
            context = _context(inputs, (self.symbol, size), self.context_gap_bars[size], size)
            frame = _join_closed(frame, context, bar_duration(size), self.context_gap_bars[size])
        for market in self.markets:
            context = _context(inputs, (market, self.timeframe), self.max_gap_bars, market)
            # The bar closing at the same time, or nothing: tolerance 0 is an exact, order-keeping join.
            frame = frame.join_asof(
                context.drop(_CONTEXT_CLOSE), on=_CLOSE, strategy="backward", tolerance=timedelta(0)
            )
        keep = [c for c in own.columns if c not in computed and c != "segment"]
        return frame.select(*keep, "segment", *names)

    # -- the manifest's ``features`` entry -------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "max_gap_bars": self.max_gap_bars,
            "sets": [{"name": s.name, "version": s.version} for s in self.sets],
            "timeframes": list(self.timeframes),
            "markets": list(self.markets),
            "context_gap_bars": dict(self.context_gap_bars),
            "dropped": list(self.dropped),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FeatureSpec:
        """Read :meth:`to_json`'s output; ``ValueError`` (or ``KeyError``/``TypeError``) when malformed."""
        return cls(
            symbol=str(raw["symbol"]),
            timeframe=str(raw["timeframe"]),
            max_gap_bars=int(raw["max_gap_bars"]),
            sets=tuple(SetRef(str(s["name"]), str(s["version"])) for s in raw["sets"]),
            timeframes=tuple(str(t) for t in raw.get("timeframes", ())),
            markets=tuple(str(m) for m in raw.get("markets", ())),
            context_gap_bars={str(k): int(v) for k, v in raw.get("context_gap_bars", {}).items()},
            dropped=tuple(str(n) for n in raw.get("dropped", ())),
        )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FeatureSpec:
        """The spec of a pack: its ``features`` entry, or (packs before feature sets) core alone."""
        if "features" in manifest:
            return cls.from_json(manifest["features"])
        params = manifest["feature_params"]
        minutes = int(params["interval_minutes"])
        size = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
        version = str(manifest.get("feature_spec_version"))
        return cls(
            symbol=str(manifest["symbol"]),
            timeframe=str(manifest.get("timeframe", size)),
            max_gap_bars=int(params["max_gap_bars"]),
            sets=(SetRef(CORE, version),),
        )


_CLOSE = "__close_key"
_CONTEXT_CLOSE = "__context_close"


def _series(inputs: Mapping[SeriesKey, pl.DataFrame], key: SeriesKey) -> pl.DataFrame:
    try:
        return inputs[key]
    except KeyError:
        have = ", ".join(f"{s} {t}" for s, t in inputs) or "none"
        raise BarsError(f"no bars of {key[0]} {key[1]}, which this pack needs (given: {have})") from None


def _naive_utc(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A join key from a date column: naive UTC microseconds whatever its zone and unit (naive is UTC)."""
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise BarsError(f"must be a datetime, not {dtype}", column=column)
    expr = pl.col(column)
    if dtype.time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.dt.cast_time_unit("us")


def _context(inputs: Mapping[SeriesKey, pl.DataFrame], key: SeriesKey, gap: int, prefix: str) -> pl.DataFrame:
    """The context features of one series, keyed by its bars' close time."""
    bars = _series(inputs, key)
    interval = bar_duration(key[1])
    try:
        frame = add_features(bars, interval=interval, max_gap_bars=gap)
    except BarsError as exc:
        raise BarsError(f"{key[0]} {key[1]}: {exc.problem}", column=exc.column) from exc
    close = _naive_utc(frame, "date") + interval
    return frame.select(
        close.alias(_CLOSE),
        close.alias(_CONTEXT_CLOSE),
        *(pl.col(n).alias(f"{prefix}.{n}") for n in CONTEXT_FEATURES),
    )


def _join_closed(frame: pl.DataFrame, context: pl.DataFrame, interval: timedelta, gap: int) -> pl.DataFrame:
    """Each row gets the context bar closed last by the row's close, unless too many of its intervals
    have passed since (an outage of the context series: missing, not carried forward)."""
    joined = frame.join_asof(context, on=_CLOSE, strategy="backward")
    fresh = (pl.col(_CLOSE) - pl.col(_CONTEXT_CLOSE)) < interval * (gap + 1)
    names = [c for c in context.columns if c not in (_CLOSE, _CONTEXT_CLOSE)]
    return joined.with_columns(pl.when(fresh).then(pl.col(n)).alias(n) for n in names).drop(_CONTEXT_CLOSE)
