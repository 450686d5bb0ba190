"""``[timeframes.<tf>.promotion]``: how a version that passed the gates replaces the champion.

::

    [timeframes.1h.promotion]
    mode = "shadow"          # "direct": the gates decide; "shadow": a passing candidate becomes the
                             # challenger, scored live beside the champion, and the live bars decide
    shadow_min_bars = 168    # labelled live bars scored by both before the one decision
    shadow_max_age = "21d"   # a challenger with too few bars by then is retired (no live evidence)
    shadow_confidence = 0.95 # one-sided level of "significantly worse" (paired block bootstrap)

The statistics: docs/ml.md#shadow-challengers and :mod:`trainfarm.shared.evaluation.shadow_test`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trainfarm.shared.timeframes import PositiveDuration

PromotionMode = Literal["direct", "shadow"]


class PromotionParams(BaseModel):
    """How one timeframe's passing candidates become champions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: PromotionMode = Field(
        "direct",
        description='"direct" (the gates promote) or "shadow" (a passing candidate is first scored live '
        "beside the champion as its challenger)",
    )
    shadow_min_bars: int = Field(
        168, ge=20, description="labelled live bars scored by champion and challenger before the decision"
    )
    shadow_max_age: PositiveDuration = Field(
        timedelta(days=21), description="a challenger without a decision by this age is retired"
    )
    shadow_confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description='one-sided confidence of "significantly worse" on the live bars'
    )
    shadow_bootstrap_samples: int = Field(
        2000, ge=200, le=100_000, description="block-bootstrap resamples of the live comparison"
    )


__all__ = ["PromotionMode", "PromotionParams"]
