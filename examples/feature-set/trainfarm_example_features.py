"""An example feature set, installed beside the farm and the bots: how a user adds features.

``trend_efficiency`` (version 1) adds three columns a quant reads to tell a trend from noise:

=================  ===========================================================================
ret_48             log(close_t / close_{t-48}): the move over a longer window than core's
efficiency_24      Kaufman's efficiency ratio over 24 bars: |close_t - close_{t-24}| divided by
                   the sum of the 24 absolute bar-to-bar moves; 1 is a straight line, 0 noise
                   (0 for a flat window, where nothing moved at all)
up_share_24        the share of the last 24 bars that closed above the bar before
=================  ===========================================================================

Every window runs ``.over("segment")`` and yields null until it is full, so a row depends only on the
bars up to it in its gap segment (the farm's causality property test runs this set too). Use it in
farm.toml with ``[timeframes.1h.features] sets = ["core", "trend_efficiency"]``; a bot needs this
distribution installed (at this version) to load a pack trained with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from trainfarm_client.featuresets import ExpressionSet

_WINDOW = 24
_LONG = 48


def _expressions(interval: timedelta) -> Sequence[pl.Expr]:
    del interval  # the windows count bars, at every bar size
    close = pl.col("close")
    move = (close - close.shift(1)).over("segment")
    path = move.abs().rolling_sum(_WINDOW, min_samples=_WINDOW).over("segment")
    net = (close - close.shift(_WINDOW)).abs().over("segment")
    up = (move > 0).cast(pl.Float64).rolling_mean(_WINDOW, min_samples=_WINDOW).over("segment")
    return [
        (close.log() - close.log().shift(_LONG)).over("segment").alias("ret_48"),
        pl.when(path > 0).then(net / path).when(path.is_not_null()).then(0.0).alias("efficiency_24"),
        up.alias("up_share_24"),
    ]


TREND_EFFICIENCY = ExpressionSet(
    name="trend_efficiency",
    version="1",
    names=("ret_48", "efficiency_24", "up_share_24"),
    expressions=_expressions,
    warmup=_LONG,
    history_bars=_LONG + 1,
    description="Kaufman's efficiency ratio, the share of up bars and the 48-bar return",
)
