"""``[timeframes.<tf>.features]``: which feature sets a timeframe's models see (docs/configuration.md).

::

    [timeframes.1h.features]
    sets = ["core", "context"]     # core: the market's own 28 features; context: the series below
    timeframes = ["12h", "24h"]    # higher bar sizes of the same market (last bar closed by the row's close)
    markets = ["BTC_USDT"]         # other markets at the same bar size (the bar closing at the same time)

A set is built in (``core``, ``context``) or installed under the ``trainfarm.features`` entry-point group
(:mod:`trainfarm_client.featuresets`); an unknown name is refused when the config is read, naming the
installed ones. A market never lists itself: its own features are ``core``'s, so the market is left out of
its own context (a BTC model under ``markets = ["BTC_USDT"]`` has no BTC context).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainfarm.shared.symbols import SymbolId
from trainfarm.shared.timeframes import TimeframeName
from trainfarm_client.featuresets import CONTEXT, FeatureSetError, current_version


class FeatureParams(BaseModel):
    """The feature sets of one timeframe and the context series the ``context`` set reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sets: tuple[str, ...] = Field(("core",), min_length=1, description="feature sets, in column order")
    timeframes: tuple[TimeframeName, ...] = Field(
        (), description="higher bar sizes of the same market the context set reads"
    )
    markets: tuple[SymbolId, ...] = Field((), description="other markets the context set reads")

    @field_validator("sets")
    @classmethod
    def _installed(cls, sets: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(sets)) != len(sets):
            raise ValueError(f"sets lists a set twice: {list(sets)}")
        for name in sets:
            try:
                current_version(name)
            except FeatureSetError as exc:
                raise ValueError(str(exc)) from None
        return sets

    @model_validator(mode="after")
    def _context_has_series(self) -> FeatureParams:
        has_context = CONTEXT in self.sets
        if has_context and not (self.timeframes or self.markets):
            raise ValueError("the 'context' set needs timeframes or markets to read")
        if (self.timeframes or self.markets) and not has_context:
            raise ValueError("timeframes and markets are read by the 'context' set: add it to sets")
        if CONTEXT in self.sets and len(self.sets) == 1:
            raise ValueError("a market's own bars need a set of their own besides 'context' (e.g. core)")
        return self
