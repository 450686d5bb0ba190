"""``[timeframes.<tf>.triggers]``: which retrain trigger policies are on, and their thresholds.

The policies themselves: :mod:`trainfarm.shared.monitoring.policies` (live win rate and Sharpe) and
:mod:`trainfarm.shared.monitoring.drift` (feature and calibration drift, train/serve skew).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from trainfarm.shared.config_table import ConfigTable, Fraction
from trainfarm.shared.timeframes import Duration


class TriggerParams(ConfigTable):
    """Which retrain trigger policies are on for a timeframe, and how often one may fire again."""

    no_champion: bool = Field(True, description="retrain a market that has no champion yet")
    stale: bool = Field(True, description="retrain when the champion is older than freshness_limit")
    live_win_rate: bool = Field(True, description="retrain when the champion's live win rate is too low")
    min_win_rate: Fraction = Field(0.45, description="live win rate below this triggers a retrain")
    live_sharpe: bool = Field(True, description="retrain when the champion's live Sharpe is too low")
    min_live_sharpe: float = Field(0.3, description="annualised live Sharpe below this triggers a retrain")
    min_outcomes: int = Field(
        20, ge=2, description="live outcomes (with a realised return) the live policies need to decide"
    )
    feature_drift: bool = Field(
        True, description="retrain when a live feature's PSI against the champion's training data is high"
    )
    max_feature_psi: float = Field(
        0.25, gt=0.0, description="the largest per-feature PSI above this triggers a retrain (major shift)"
    )
    calibration_drift: bool = Field(
        True, description="retrain when the champion's live probabilities no longer match realised classes"
    )
    max_calibration_gap: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="mean |predicted - realised frequency| by decile above this triggers a retrain",
    )
    min_live_bars: int = Field(
        200,
        ge=10,
        description="live bars (after the champion's data; with a passed horizon for calibration) the "
        "drift policies need to decide",
    )
    drift_window: int = Field(
        500,
        ge=10,
        description="the drift policies look at the latest this many bars after the champion's data",
    )
    train_serve_skew: bool = Field(
        True, description="check the features bots report against the farm's (a flag; never retrains)"
    )
    skew_rows: int = Field(
        50, ge=1, description="the champion's latest reported outcomes with features the skew check compares"
    )
    cooldown: Duration = Field(
        timedelta(hours=1),
        description="a market retrained for a policy is not retriggered by the same policy within this",
    )

    @model_validator(mode="after")
    def _window_holds_the_minimum(self) -> TriggerParams:
        if self.drift_window < self.min_live_bars:
            raise ValueError(
                f"drift_window ({self.drift_window}) must be at least min_live_bars ({self.min_live_bars})"
            )
        return self


__all__ = ["TriggerParams"]
