"""``[gates]`` and ``[timeframes.<tf>.gates]``: the thresholds the validation gates compare a candidate
against (:mod:`trainfarm.shared.evaluation.gates` applies them; docs/ml.md#gates says why each is there).

::

    [gates]
    profile = "default"                  # or "strict": adds class share targets and confidence floors

    [timeframes.1h.gates]
    min_logloss_improvement = 0.01       # relative test log-loss improvement over the class prior
    confidence = 0.95                    # of the one-sided bounds against the prior and the champion

Each timeframe's defaults are :func:`timeframe_gates` (the strict profile's row differs by timeframe).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from trainfarm.shared.config_table import ConfigTable, Fraction
from trainfarm.shared.timeframes import Timeframe

#: Selectable gate profiles: "default" applies each timeframe's ``gates``; "strict" adds class share
#: targets and replaces the mean confidence and eligible share floors with the timeframe's ``gates.strict``
#: table.
GateProfile = Literal["default", "strict"]


class StrictGates(ConfigTable):
    """The strict profile's requirements for one timeframe (``[gates] profile = "strict"`` selects them).

    ``class_share`` is read as the TARGET mix of predicted classes (down, neutral, up), each class allowed
    ``class_share_tolerance`` either side of it. Read as three upper bounds instead, shares that sum to 1
    under bounds that also sum to 1 could only pass by matching them exactly, which no model does.
    The defaults here are the 5m row; each timeframe's own row is in :data:`STRICT_TABLE`.

    Where the targets contradict calibrated output: a calibrated model's top class follows its
    probabilities, and on markets where the neutral class holds 30-40% of the bars with weak directional
    skill, honest probabilities rarely put up or down on top, so its predicted mix is mostly the majority
    class; a target like 45/10/45 can then be met only by an overconfident model (or by pushing the
    argmax around), and ``min_mean_confidence`` of 0.50-0.65 asks for confidence that calibration on
    these labels does not give (the default profile has no such floor). The strict profile is kept for
    operators who trade only a sharp, balanced directional book and accept that it rejects most
    calibrated candidates; the default profile gates on proper scores instead.
    """

    class_share: tuple[float, float, float] = Field(
        (0.40, 0.20, 0.40), description="target predicted share of down, neutral, up (sums to 1)"
    )
    class_share_tolerance: Fraction = Field(
        0.10, description="how far a predicted class share may lie from its target, either side"
    )
    min_mean_confidence: Fraction = Field(0.65, description="floor on the mean top-class probability")
    min_eligible_share: Fraction = Field(0.30, description="floor on the share of bars with p >= p*")

    @field_validator("class_share")
    @classmethod
    def _shares(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not 0.0 <= v <= 1.0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"class_share must be three shares in [0, 1] that sum to 1, got {list(value)}")
        return value


class GateThresholds(ConfigTable):
    """Thresholds the validation gates (:mod:`trainfarm.shared.evaluation.gates`) compare a candidate
    against."""

    min_logloss_improvement: float = Field(
        0.01, ge=0.0, description="relative test log-loss improvement over the class-prior baseline"
    )
    min_direction_improvement: float = Field(
        0.005,
        ge=0.0,
        description="relative log-loss improvement of p_up / (p_up + p_down) over the prior's up/down ratio, "
        "on the test rows whose label is up or down (0.5% is about 54% directional accuracy at full "
        "confidence)",
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1.0,
        description="confidence of the one-sided bounds: the improvements over the prior must be above 0 at "
        "it, and a candidate fails the champion comparison when worse beyond it",
    )
    min_bound_blocks: int = Field(
        20,
        ge=2,
        description="fewest contiguous blocks (each at least one label window) a t bound is computed over; "
        "a series too short for them cannot be bounded honestly, and its check fails",
    )
    bootstrap_samples: int = Field(
        1000,
        ge=100,
        le=100_000,
        description="resamples of the block bootstrap of the book Sharpe's lower bound (sharpe_bootstrap)",
    )
    min_output_std: float = Field(
        0.02, ge=0.0, description="floor on the larger std of p_up - p_down and of the top probability"
    )
    min_eligible_share: Fraction = Field(0.05, description="floor on the share of bars with p >= p*")
    min_sharpe: float = Field(
        0.0, description="floor on the annualised Sharpe of the overlapping book's per-bar P&L"
    )
    sharpe_bootstrap: bool = Field(
        False,
        description="compare the book Sharpe's one-sided block-bootstrap lower bound (instead of its point "
        "estimate) with min_sharpe",
    )
    min_signals: int = Field(30, ge=1, description="floor on the test signals the simulation trades")
    max_regression_pct: float = Field(
        0.0,
        ge=0.0,
        description="the lower bound of how much worse (%) the candidate's log-loss/Brier is than the "
        "champion's (paired t bound over blocks) may be at most this: 0 = not significantly worse",
    )
    min_champion_rows: int = Field(
        50,
        ge=1,
        description="fewest test rows after the champion's data for a champion comparison (and at least "
        "min_bound_blocks label windows); with fewer the champion is not compared and stays, unless it is "
        "past its freshness limit or a live trigger asked for the retrain",
    )
    min_sharpe_fraction: float = Field(
        0.8, ge=0.0, description="Sharpe must reach this fraction of the champion's on the same window"
    )
    strict: StrictGates = StrictGates()


class GatesConfig(ConfigTable):
    """Which gate profile is in force (for every timeframe)."""

    profile: GateProfile = Field("default", description='"default" or "strict" (see StrictGates)')


#: The strict profile's table (class share target down/neutral/up, mean confidence floor, eligible share
#: floor), one row per timeframe.
STRICT_TABLE: dict[Timeframe, StrictGates] = {
    Timeframe.M5: StrictGates(
        class_share=(0.40, 0.20, 0.40), min_mean_confidence=0.65, min_eligible_share=0.30
    ),
    Timeframe.H1: StrictGates(
        class_share=(0.45, 0.10, 0.45), min_mean_confidence=0.60, min_eligible_share=0.30
    ),
    Timeframe.H12: StrictGates(
        class_share=(0.40, 0.20, 0.40), min_mean_confidence=0.55, min_eligible_share=0.25
    ),
    Timeframe.D1: StrictGates(
        class_share=(0.45, 0.10, 0.45), min_mean_confidence=0.50, min_eligible_share=0.25
    ),
}


def timeframe_gates(timeframe: Timeframe) -> GateThresholds:
    """The default thresholds of ``timeframe``, with its row of the strict profile's table."""
    return GateThresholds(strict=STRICT_TABLE[timeframe])


__all__ = ["STRICT_TABLE", "GateProfile", "GateThresholds", "GatesConfig", "StrictGates", "timeframe_gates"]
