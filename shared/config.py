"""The farm config file: the universe and the per-timeframe parameters.

The file is TOML (``farm.toml`` in the repository documents every key with its default). Every key is
optional: what the file leaves out takes the default declared here, so the defaults live in exactly one
place. ``load_config`` validates the whole file up front and names the key that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainfarm.shared.champions.promotion_params import PromotionParams
from trainfarm.shared.data.intervals import BarInterval, IntervalName
from trainfarm.shared.dataset.feature_params import FeatureParams
from trainfarm.shared.errors import ConfigError, FarmError
from trainfarm.shared.symbols import SymbolId
from trainfarm.shared.timeframes import (
    Duration,
    DurationOrOff,
    PositiveDuration,
    Timeframe,
    TimeframeName,
    format_duration,
    timeframe_field,
)

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Strict(BaseModel):
    # Unknown keys are typos; refusing them beats silently training with a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Selectable gate profiles: "default" applies each timeframe's ``gates``; "strict" adds class share
#: targets and replaces the mean confidence and eligible share floors with the timeframe's ``gates.strict``
#: table.
GateProfile = Literal["default", "strict"]


class StrictGates(_Strict):
    """The strict profile's requirements for one timeframe (``[gates] profile = "strict"`` selects them).

    ``class_share`` is read as the TARGET mix of predicted classes (down, neutral, up), each class allowed
    ``class_share_tolerance`` either side of it. Read as three upper bounds instead, shares that sum to 1
    under bounds that also sum to 1 could only pass by matching them exactly, which no model does.
    The defaults here are the 5m row; each timeframe's own row is set in ``_default_timeframes``.

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


class GateThresholds(_Strict):
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


class GatesConfig(_Strict):
    """Which gate profile is in force (for every timeframe)."""

    profile: GateProfile = Field("default", description='"default" or "strict" (see StrictGates)')


class TriggerParams(_Strict):
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


class BeatParams(_Strict):
    """What beat runs besides the per-timeframe full retrains."""

    trigger_check: Duration = Field(
        timedelta(minutes=5), description="how often beat evaluates the trigger policies"
    )
    outcome_ingest: Duration = Field(
        timedelta(minutes=1), description="how often beat ingests the bots' outcome stream"
    )
    shadow_check: Duration = Field(
        timedelta(minutes=1),
        description="how often beat ingests the bots' paired challenger scores and decides challengers",
    )
    reconcile: Duration = Field(
        timedelta(minutes=1),
        description="how often beat re-announces champions whose CHAMPION pointer or Redis key disagrees "
        "with the registry (after Redis lost its data, or a promotion whose last steps failed)",
    )


#: The kinds of alert (:mod:`trainfarm.shared.monitoring.alerts` says what each is).
AlertKind = Literal["promotion", "rejection", "failure", "trigger", "stale_bot", "held", "challenger"]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "promotion",
    "rejection",
    "failure",
    "trigger",
    "stale_bot",
    "held",
    "challenger",
)


class WebhookConfig(_Strict):
    """The JSON webhook (POST); on when ``FARM_ALERT_WEBHOOK_URL`` is set."""

    events: tuple[AlertKind, ...] = Field(ALERT_KINDS, description="alert kinds the webhook gets")
    timeout: Duration = Field(timedelta(seconds=5), description="one POST may take this long")


class EmailConfig(_Strict):
    """E-mail over SMTP (sent through Apprise's e-mail plugin); on when ``to`` lists an address."""

    events: tuple[AlertKind, ...] = Field(
        ("promotion", "failure", "stale_bot"), description="alert kinds e-mail gets"
    )
    to: tuple[str, ...] = Field((), description="recipients; none = e-mail off")
    sender: str = Field("trainfarm@localhost", description="the From address")
    host: str = Field("127.0.0.1", description="SMTP server")
    port: int = Field(25, ge=1, le=65535, description="SMTP port")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before sending")
    user: str = Field(
        "", description="SMTP login, with FARM_SMTP_PASSWORD (login when both are set); empty = no login"
    )
    timeout: Duration = Field(timedelta(seconds=10), description="one SMTP conversation may take this long")


#: A URL's position in ``FARM_ALERT_URLS``, counted from 1.
UrlPosition = Annotated[int, Field(ge=1)]


class AppriseAlertsConfig(_Strict):
    """Chat and push services through Apprise (Telegram, Slack, Discord, Matrix, ntfy, ...): each URL of
    ``FARM_ALERT_URLS`` is a channel of its own, on when the setting lists it."""

    events: tuple[AlertKind, ...] = Field(
        ("promotion", "rejection", "failure", "stale_bot", "held"),
        description="alert kinds every Apprise URL gets (unless events_by_url names it)",
    )
    events_by_url: dict[UrlPosition, tuple[AlertKind, ...]] = Field(
        default_factory=dict,
        description="per URL, by its position in FARM_ALERT_URLS (from 1): the kinds it gets instead of "
        "events",
    )
    timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        description="connect and read timeout of one notification, for URLs that set no cto= or rto=",
    )

    def kinds(self, position: int) -> tuple[AlertKind, ...]:
        """The kinds the URL at ``position`` (from 1) gets."""
        return self.events_by_url.get(position, self.events)


class AlertsConfig(_Strict):
    """``[alerts]``: how often beat delivers, when a bot is stale, how deliveries are retried (the alerts
    themselves: :mod:`trainfarm.shared.monitoring.alerts`)."""

    check: Duration = Field(
        timedelta(seconds=10), description="how often beat reads new events and delivers due alerts"
    )
    stale_bot_after: Duration = Field(
        timedelta(minutes=1), description="a bot silent this long is alerted as stale, once"
    )
    max_attempts: int = Field(6, ge=1, le=20, description="deliveries of one alert before it is dropped")
    retry_base: Duration = Field(
        timedelta(seconds=5), description="wait before the first retry; doubled at each further one"
    )
    retry_max: Duration = Field(timedelta(minutes=10), description="longest wait between two attempts")
    webhook: WebhookConfig = WebhookConfig()
    email: EmailConfig = EmailConfig()
    apprise: AppriseAlertsConfig = AppriseAlertsConfig()

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): base x 2^(attempt-1), capped."""
        base = self.retry_base.total_seconds()
        return float(min(self.retry_max.total_seconds(), base * 2 ** max(0, attempt - 1)))


class TimeframeParams(_Strict):
    """Everything that differs between timeframes. Durations are written like "90d", "12h"."""

    label_horizon: int = Field(ge=1, description="bars ahead the label's forward return looks")
    label_threshold: float = Field(
        0.5, gt=0.0, description="class boundary in units of sigma * sqrt(horizon)"
    )
    vol_window: int = Field(48, ge=5, description="bars in the rolling volatility that scales the label")
    training_window: PositiveDuration = Field(description="history used for one retrain")
    cadence: PositiveDuration = Field(description="how often beat starts a full retrain")
    freshness_limit: PositiveDuration = Field(description="a champion older than this triggers a retrain")
    max_gap_bars: int = Field(
        3,
        ge=1,
        description="a gap of more missing bars than this starts a new segment (no feature "
        "window or label reaches across it)",
    )
    meta_cadence: DurationOrOff = Field(
        None,
        description="how often beat starts a meta-only retrain (champion's base models kept; stacker and "
        'calibration refit on the bars after its data), or "off"',
    )
    meta_min_rows: int = Field(
        400,
        ge=40,
        description="fewest labelled bars after the champion's data a meta-only retrain needs (half fit "
        "the stacker, a quarter the calibration, a quarter are the gates' test)",
    )
    gates: GateThresholds = GateThresholds()
    triggers: TriggerParams = TriggerParams()
    features: FeatureParams = FeatureParams()
    promotion: PromotionParams = PromotionParams()


#: The strict profile's table (class share target down/neutral/up, mean confidence floor, eligible share
#: floor), one row per timeframe.
_STRICT_TABLE: dict[Timeframe, StrictGates] = {
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


def _gates(timeframe: Timeframe) -> GateThresholds:
    return GateThresholds(strict=_STRICT_TABLE[timeframe])


def _default_timeframes() -> dict[Timeframe, TimeframeParams]:
    return {
        Timeframe.M5: TimeframeParams(
            label_horizon=12,
            training_window="60d",
            cadence="6h",
            freshness_limit="1d",
            meta_cadence="1h",
            vol_window=96,
            gates=_gates(Timeframe.M5),
            promotion=PromotionParams(shadow_min_bars=288, shadow_max_age="3d"),
        ),
        Timeframe.H1: TimeframeParams(
            label_horizon=6,
            training_window="365d",
            cadence="1d",
            freshness_limit="3d",
            meta_cadence="6h",
            gates=_gates(Timeframe.H1),
        ),
        Timeframe.H12: TimeframeParams(
            label_horizon=2,
            training_window="1095d",
            cadence="7d",
            freshness_limit="14d",
            vol_window=30,
            gates=_gates(Timeframe.H12),
            promotion=PromotionParams(shadow_min_bars=60, shadow_max_age="90d"),
        ),
        Timeframe.D1: TimeframeParams(
            label_horizon=1,
            training_window="1460d",
            cadence="7d",
            freshness_limit="14d",
            vol_window=20,
            gates=_gates(Timeframe.D1),
            promotion=PromotionParams(shadow_min_bars=60, shadow_max_age="180d"),
        ),
    }


class SplitParams(_Strict):
    """Chronological split fractions and walk-forward folds (shared by every timeframe)."""

    calibration_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.15
    oof_folds: int = Field(4, ge=2, le=20, description="purged walk-forward folds inside train")
    min_train_rows: int = Field(200, ge=10, description="refuse a snapshot with fewer training rows")
    min_fold_train_rows: int = Field(
        40, ge=10, description="fewest rows a walk-forward fold or the inner holdout's fit trains on"
    )
    oof_min_train_share: float = Field(
        0.5,
        ge=0.0,
        le=0.9,
        description="every walk-forward fold trains on at least this share of the train split (the "
        "out-of-fold rows are the rest, about 1 - share of it)",
    )

    @model_validator(mode="after")
    def _room_for_train(self) -> SplitParams:
        if self.calibration_fraction + self.test_fraction >= 0.8:
            raise ValueError("calibration_fraction + test_fraction must leave at least 20% for training")
        return self


class SourceConfig(_Strict):
    """Where ``farm data sync`` and beat's ``ingest-bars`` entry fetch a symbol's new bars from.

    ``exchange``: the exchange's REST API through ccxt (the ``trainfarm[exchange]`` extra); ``folder``: a
    freqtrade data folder (``user_data/data/<exchange>``, whose ``PAIR-<interval>.feather`` files
    ``freqtrade download-data`` keeps current).
    """

    kind: Literal["exchange", "folder"] = Field(description="exchange (ccxt) or folder (freqtrade's files)")
    exchange: str = Field("binance", description="ccxt exchange id (kind = exchange)")
    api_url: str | None = Field(
        None,
        description="replaces the exchange's REST base URL: a proxy or a test exchange (kind = exchange)",
    )
    folder: Path | None = Field(None, description="the freqtrade data folder (kind = folder)")
    interval: IntervalName = Field(
        BarInterval.M5, description="the bar interval fetched and stored: 5m, 1h or 1d"
    )

    @model_validator(mode="after")
    def _folder_for_folders(self) -> SourceConfig:
        if self.kind == "folder" and self.folder is None:
            raise ValueError(
                "a folder source needs folder = the freqtrade data folder (user_data/data/<exchange>)"
            )
        return self


class DataParams(_Strict):
    """Import rules for the bar store, and where new bars come from."""

    min_rows: int = Field(
        288, ge=1, description="refuse a first import covering fewer 5m slots (288 = one day: 24 1h bars)"
    )
    sync: DurationOrOff = Field(
        timedelta(minutes=5),
        description="how often beat's ingest-bars entry syncs every symbol that has a source (off: never)",
    )
    stale_after: int = Field(
        3,
        ge=1,
        description="a synced symbol whose newest bar closed more than this many of its intervals (plus one "
        "sync) ago is stale_data: its retrains are held back until its bars are current again",
    )
    source: SourceConfig | None = Field(
        None, description="every symbol's source, unless sources names its own"
    )
    sources: dict[SymbolId, SourceConfig] = Field(
        default_factory=dict, description='per-symbol sources, e.g. {SOL_USDT = {kind = "folder", ...}}'
    )

    def source_of(self, symbol: str) -> SourceConfig | None:
        """The source of canonical ``symbol``: its own, else the default one, else None (not synced)."""
        return self.sources.get(symbol, self.source)


ParamValue = float | int | str | bool


class TrainingParams(_Strict):
    """Model sizes and run limits, shared by every timeframe."""

    base_rounds: int = Field(
        150, ge=1, description="most boosting rounds of a boosted base model; the MLP's epochs"
    )
    learning_rate: float = Field(0.08, gt=0.0, le=1.0, description="learning rate of the boosted base models")
    early_stopping_rounds: int = Field(
        30, ge=1, description="early-stopping patience of the boosted base models and the meta-learner"
    )
    inner_holdout_fraction: Fraction = Field(
        0.2, description="time-ordered tail of the train split the boosted base models early-stop on"
    )
    meta_rounds: int = Field(300, ge=1, description="upper bound on the meta-learner's boosting rounds")
    meta_holdout_fraction: Fraction = Field(
        0.2, description="time-ordered tail of the out-of-fold rows used for meta early stopping"
    )
    task_time_limit: Duration = Field(
        timedelta(minutes=30), description="hard time limit of one training task"
    )
    visibility_timeout: Duration | None = Field(
        None,
        description="how long Redis waits for a worker's acknowledgement before handing a task to another "
        "worker (a worker whose main process died loses its tasks for this long); unset = "
        "max(1h, 2 x task_time_limit); must exceed task_time_limit",
    )
    seed: int = Field(7, description="random seed of every model (runs are reproducible)")
    prune_features: bool = Field(
        False,
        description="drop the features whose permutation importance on a purged slice of the train split "
        "is not above zero, before the base models train (docs/ml.md#feature-sets)",
    )
    model_params: dict[str, dict[str, ParamValue]] = Field(
        default_factory=dict,
        description="per-model library parameter overrides, e.g. {lgbm_gbdt = {num_leaves = 15}}",
    )

    @field_validator("model_params")
    @classmethod
    def _known_models(cls, value: dict[str, dict[str, ParamValue]]) -> dict[str, dict[str, ParamValue]]:
        # A misspelt model name would leave its overrides silently unapplied; refuse it when the file is
        # read, before a run is claimed (training checks again for configs built in code).
        from trainfarm.shared.zoo import MODEL_NAMES

        unknown = sorted(set(value) - set(MODEL_NAMES))
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid: {', '.join(MODEL_NAMES)}")
        return value

    @field_validator("task_time_limit")
    @classmethod
    def _time_limit(cls, value: timedelta) -> timedelta:
        # Below 10 s the soft limit (which lets a task record "timed out") has no room before the hard one.
        if value.total_seconds() < 10:
            raise ValueError("task_time_limit must be at least 10s")
        return value

    @field_validator("visibility_timeout")
    @classmethod
    def _visibility(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() < 10:
            raise ValueError("visibility_timeout must be at least 10s")
        return value

    @model_validator(mode="after")
    def _visibility_above_time_limit(self) -> TrainingParams:
        # A task still running when its visibility timeout expires is handed to a second worker: both
        # would train the same model at once. The timeout must outlast the longest a task may run.
        if self.visibility_timeout is not None and self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                f"training.visibility_timeout ({format_duration(self.visibility_timeout)}) must exceed "
                f"training.task_time_limit ({format_duration(self.task_time_limit)}), or a running task is "
                "delivered twice"
            )
        return self

    @property
    def task_time_limit_s(self) -> int:
        return int(self.task_time_limit.total_seconds())

    @property
    def visibility_timeout_s(self) -> int:
        """The broker's visibility timeout in seconds (the configured one, else the default rule)."""
        if self.visibility_timeout is None:
            return max(3600, 2 * self.task_time_limit_s)
        return int(self.visibility_timeout.total_seconds())


class EvaluationParams(_Strict):
    """How a candidate is scored on the test split."""

    fee: float = Field(0.002, ge=0.0, lt=0.1, description="round-trip trading cost per signal (fraction)")
    min_signals: int = Field(20, ge=1, description="p* must leave at least this many calibration signals")
    ece_bins: int = Field(10, ge=2, description="bins of the expected calibration error")


class RetentionParams(_Strict):
    """How many artifact packs per (symbol, timeframe) `farm prune` keeps."""

    keep_versions: int = Field(
        5,
        ge=1,
        description="newest packs kept per symbol and timeframe; the champion and the previous champion "
        "(the rollback target) are always kept besides",
    )


class Universe(_Strict):
    """Which symbols and timeframes the farm retrains."""

    symbols: tuple[SymbolId, ...] = ("BTC_USDT", "ETH_USDT")
    timeframes: tuple[TimeframeName, ...] = tuple(Timeframe)

    @field_validator("symbols", "timeframes", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        # The file's entries are read as text (a bare number in the list is its digits).
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
        return value


def _deep_merge(base: dict[str, object], override: dict[str, object]) -> dict[str, object]:
    """``base`` with ``override`` laid over it, table by table: ``[timeframes.1h.gates.strict]`` may set one
    key and keep the 1h defaults of the others (a shallow merge would reset them to the 5m row)."""
    out = dict(base)
    for key, value in override.items():
        below = out.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            out[key] = _deep_merge(below, value)
        else:
            out[key] = value
    return out


class FarmConfig(_Strict):
    """The whole config file."""

    universe: Universe = Universe()
    data: DataParams = DataParams()
    splits: SplitParams = SplitParams()
    training: TrainingParams = TrainingParams()
    evaluation: EvaluationParams = EvaluationParams()
    retention: RetentionParams = RetentionParams()
    gates: GatesConfig = GatesConfig()
    beat: BeatParams = BeatParams()
    alerts: AlertsConfig = AlertsConfig()
    timeframes: dict[Timeframe, TimeframeParams] = Field(default_factory=_default_timeframes)

    @field_validator("timeframes", mode="before")
    @classmethod
    def _merge_defaults(cls, value: object) -> object:
        # A file may override one key of one timeframe; the rest of that timeframe keeps its defaults.
        if not isinstance(value, dict):
            return value
        merged: dict[Timeframe, object] = {tf: p.model_dump() for tf, p in _default_timeframes().items()}
        for key, params in value.items():
            tf = timeframe_field(str(key))  # an unknown one: a ValueError naming the table
            if isinstance(params, dict):
                base = merged[tf]
                assert isinstance(base, dict)
                merged[tf] = _deep_merge(base, params)
            else:
                merged[tf] = params
        return merged

    @model_validator(mode="after")
    def _purge_fits_the_splits(self) -> FarmConfig:
        # The purge between two splits drops the rows whose label reaches into the next one: label_horizon
        # bars. When that is as long as the smallest split (calibration or test, a fraction of the
        # training window), that split is purged away and every run would fail on an empty split.
        smallest = min(self.splits.calibration_fraction, self.splits.test_fraction)
        for tf, params in self.timeframes.items():
            purge = params.label_horizon * tf.duration
            split = params.training_window * smallest
            window = format_duration(params.training_window)
            if purge >= split:
                raise ValueError(
                    f"timeframes.{tf.value}.label_horizon: the purge ({params.label_horizon} bars = {purge}) "
                    f"is not shorter than the smallest split ({smallest:g} of the {window} "
                    f"training window = {split}); shorten label_horizon or lengthen training_window"
                )
        return self

    @model_validator(mode="after")
    def _context_is_longer(self) -> FarmConfig:
        # A context bar size must close less often than the rows (a 1h row reads the last closed 12h bar).
        for tf, params in self.timeframes.items():
            for size in params.features.timeframes:
                if size.duration <= tf.duration:
                    raise ValueError(
                        f"timeframes.{tf.value}.features.timeframes: {size.value} is not longer than "
                        f"{tf.value}; context bar sizes must be higher ones"
                    )
        return self

    @model_validator(mode="after")
    def _shadow_can_decide(self) -> FarmConfig:
        # A challenger needs its bars and their labels' horizon before its age limit, or it never decides.
        for tf, params in self.timeframes.items():
            promo = params.promotion
            needed = (promo.shadow_min_bars + params.label_horizon) * tf.duration
            if promo.shadow_max_age < needed:
                age = format_duration(promo.shadow_max_age)
                raise ValueError(
                    f"timeframes.{tf.value}.promotion.shadow_max_age: {age} "
                    f"is shorter than shadow_min_bars + label_horizon bars ({format_duration(needed)}): "
                    "no challenger could ever be decided"
                )
        return self

    def params(self, timeframe: Timeframe) -> TimeframeParams:
        """Parameters of one timeframe."""
        return self.timeframes[timeframe]

    def config_hash(self) -> str:
        """sha256 of the normalised config: two runs with equal hashes used equal parameters."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def load_config(path: Path | None) -> FarmConfig:
    """Read and validate the config file at ``path``; ``None`` or a missing default file gives defaults."""
    if path is None:
        return FarmConfig()
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (set FARM_CONFIG_FILE or create it)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        return FarmConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) + ': ' if err['loc'] else ''}"
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"config file {path}: {problems}") from None
    except FarmError as exc:  # a bad symbol or timeframe raised by a validator above
        raise ConfigError(f"config file {path}: {exc}") from None
