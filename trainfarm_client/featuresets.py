"""Feature sets: named, versioned functions from one series of bars to feature columns, found by name.

The farm trains on, and every bot computes, the sets a pack names, looked up the same way on both sides:
the built-in ``core`` set (:mod:`trainfarm_client.features`, the 28 features of a market's own bars), and
the sets other installed distributions register under the entry-point group ``trainfarm.features``
(:data:`ENTRY_POINT_GROUP`). ``context`` is built in too: it is not computed on the market's own bars but
on its context series (higher bar sizes, other markets; :mod:`trainfarm_client.featurespec`).

A pack records each set's name and version. A bot that lacks a set, or has another version of it, refuses
the pack with that reason while the champion it serves keeps serving (:class:`FeatureSetError`, raised
again as a :class:`~trainfarm_client.errors.PackError`).

Writing a set: a module-level :class:`ExpressionSet`, registered in the distribution's pyproject.toml::

    [project.entry-points."trainfarm.features"]
    session_range = "my_features:SESSION_RANGE"

Its ``expressions(interval)`` returns polars expressions evaluated (one ``with_columns``) on the bars with
``date`` (UTC), ``open``, ``high``, ``low``, ``close`` and ``volume`` as Float64 and the gap ``segment``
(:func:`~trainfarm_client.features.segment_expr`). The contract is core's: the value of bar ``t`` depends
only on bars ``<= t`` of its segment (every window ``.over("segment")``, never a ``shift(-k)``, a global
statistic or a fitted state), and a window yields null until it is full. The farm's causality property
test runs every installed set. Bump ``version`` whenever any value can change.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import entry_points

import polars as pl

from trainfarm_client.errors import ClientError
from trainfarm_client.features import (
    FEATURE_NAMES,
    FEATURE_SPEC_VERSION,
    MIN_HISTORY_BARS,
    REQUIRED_COLUMNS,
    WARMUP_BARS,
    add_features,
)

#: The entry-point group the farm and the bot client read feature sets from.
ENTRY_POINT_GROUP = "trainfarm.features"

#: The built-in set computed on a market's own bars.
CORE = "core"
#: The built-in set computed on a market's context series (see :mod:`trainfarm_client.featurespec`).
CONTEXT = "context"
CONTEXT_VERSION = "1"
#: Which core features a context series contributes. No time of day or week (the row's own are the same
#: instant), and the short returns, volatility, range position, trend and volume state a quant reads off a
#: higher timeframe or the leading market.
CONTEXT_FEATURES: tuple[str, ...] = (
    "ret_1",
    "ret_3",
    "ret_6",
    "ret_12",
    "vol_12",
    "vol_ratio_12_48",
    "close_pos_24",
    "ema_dist_12",
    "ema_dist_48",
    "rsi_14",
    "atr_14_rel",
    "volume_z_48",
)


class FeatureSetError(ClientError, LookupError):
    """A feature set named by a pack or a config is not installed, failed to load, or has another version.

    Handled by: the bot, which refuses the pack (as a ``PackError`` naming the set) and keeps serving the
    version it has; the farm, which refuses the config (``ConfigError``) before any run starts.
    """


class FeatureSet(ABC):
    """A named, versioned function from one series of bars to the feature columns ``names``.

    ``warmup`` is the most leading null rows of any of its columns in a segment; ``history_bars`` how many
    bars a bot must feed for training-exact values (more than ``warmup`` where an EWM remembers its start).
    """

    name: str
    version: str
    names: tuple[str, ...]
    warmup: int
    history_bars: int

    @abstractmethod
    def add(self, bars: pl.DataFrame, *, interval: timedelta, max_gap_bars: int) -> pl.DataFrame:
        """``bars`` (validated, with ``segment``) with the set's columns added, rows neither dropped nor
        reordered."""


@dataclass(frozen=True)
class ExpressionSet(FeatureSet):
    """A user's feature set: ``expressions(interval)`` gives one polars expression per name (aliased so).

    Evaluated on the bars with Float64 prices and volume, a UTC ``date`` and ``segment``; the results are
    cast to Float64. See the module docstring for the causality contract.
    """

    name: str
    version: str
    names: tuple[str, ...]
    expressions: Callable[[timedelta], Sequence[pl.Expr]]
    warmup: int = 0
    history_bars: int = 0
    description: str = field(default="", compare=False)

    def add(self, bars: pl.DataFrame, *, interval: timedelta, max_gap_bars: int) -> pl.DataFrame:
        del max_gap_bars  # windows go .over("segment"), which already encodes it
        inputs = bars.select(
            _utc("date", bars.schema["date"]),
            *(pl.col(c).cast(pl.Float64) for c in REQUIRED_COLUMNS[1:]),
            pl.col("segment"),
        )
        computed = inputs.with_columns(self.expressions(interval))
        missing = [n for n in self.names if n not in computed.columns]
        if missing:
            raise FeatureSetError(f"feature set {self.name!r} did not compute {', '.join(missing)}")
        return bars.with_columns(computed.select(pl.col(n).cast(pl.Float64) for n in self.names))


class _Core(FeatureSet):
    """:func:`~trainfarm_client.features.add_features` as a set."""

    name = CORE
    version = FEATURE_SPEC_VERSION
    names = FEATURE_NAMES
    warmup = WARMUP_BARS
    history_bars = MIN_HISTORY_BARS

    def add(self, bars: pl.DataFrame, *, interval: timedelta, max_gap_bars: int) -> pl.DataFrame:
        return add_features(bars, interval=interval, max_gap_bars=max_gap_bars)


CORE_SET: FeatureSet = _Core()


def _utc(name: str, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime) and dtype.time_zone not in (None, "UTC"):
        return pl.col(name).dt.convert_time_zone("UTC")
    return pl.col(name)


@functools.cache
def _entry_points() -> tuple[dict[str, FeatureSet], dict[str, str]]:
    """The sets found, and why each broken entry point was left out; read once per process."""
    found: dict[str, FeatureSet] = {CORE: CORE_SET}
    broken: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must not break the bot's other packs
            broken[point.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(loaded, FeatureSet) or loaded.name != point.name:
            broken[point.name] = f"{point.value} is not a FeatureSet named {point.name!r}"
        elif point.name in (CORE, CONTEXT):
            broken[point.name] = f"{point.value} may not replace the built-in set"
        else:
            found[point.name] = loaded
    return found, broken


def installed_sets() -> Mapping[str, FeatureSet]:
    """The sets this environment can compute, by name: ``core`` and every entry point of the group.

    Read once per process. An entry point that fails to load, or does not give a :class:`FeatureSet`, is
    left out and its reason kept (:func:`find_set` reports it when a pack names that set).
    """
    return _entry_points()[0]


def refresh_installed_sets() -> None:
    """Forget what :func:`installed_sets` read (after installing a plugin in a running process)."""
    _entry_points.cache_clear()


def find_set(name: str, version: str) -> FeatureSet:
    """The installed set ``name`` at ``version``; :class:`FeatureSetError` says why not."""
    found = installed_sets().get(name)
    if found is None:
        raise _missing(name)
    if found.version != version:
        raise FeatureSetError(
            f"feature set {name!r} version {version!r} is needed, this environment has {found.version!r}"
        )
    return found


def current_version(name: str) -> str:
    """The installed version of ``name`` (``context`` included); :class:`FeatureSetError` if none."""
    if name == CONTEXT:
        return CONTEXT_VERSION
    found = installed_sets().get(name)
    if found is None:
        raise _missing(name)
    return found.version


def _missing(name: str) -> FeatureSetError:
    """Why ``name`` is not among the installed sets: its plugin failed to load, or there is none."""
    sets, broken = _entry_points()
    if name in broken:
        return FeatureSetError(f"feature set {name!r} failed to load: {broken[name]}")
    names = ", ".join(sorted({*sets, CONTEXT}))
    return FeatureSetError(f"feature set {name!r} is not installed here (installed: {names})")
