"""The farm config file: the universe and the per-timeframe parameters.

The file is TOML (``farm.toml`` in the repository documents every key with its default). Every key is
optional: what the file leaves out takes the default declared here, so the defaults live in exactly one
place. ``load_config`` validates the whole file up front and names the key that is wrong.

The tables that belong to one part of the farm are declared beside it and put together here:
:mod:`trainfarm.shared.evaluation.gate_params` (the gates' thresholds),
:mod:`trainfarm.shared.monitoring.trigger_params` (the trigger policies),
:mod:`trainfarm.shared.monitoring.alert_params` (alerts),
:mod:`trainfarm.shared.champions.promotion_params` (promotion) and
:mod:`trainfarm.shared.dataset.feature_params` (features).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from trainfarm.shared.champions.promotion_params import PromotionParams
from trainfarm.shared.config_table import ConfigTable, Fraction
from trainfarm.shared.data.intervals import BarInterval, IntervalName
from trainfarm.shared.dataset.feature_params import FeatureParams
from trainfarm.shared.errors import ConfigError, FarmError
from trainfarm.shared.evaluation.gate_params import GatesConfig, GateThresholds, timeframe_gates
from trainfarm.shared.monitoring.alert_params import AlertsConfig
from trainfarm.shared.monitoring.trigger_params import TriggerParams
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


class BeatParams(ConfigTable):
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


class TimeframeParams(ConfigTable):
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


def _default_timeframes() -> dict[Timeframe, TimeframeParams]:
    return {
        Timeframe.M5: TimeframeParams(
            label_horizon=12,
            training_window="60d",
            cadence="6h",
            freshness_limit="1d",
            meta_cadence="1h",
            vol_window=96,
            gates=timeframe_gates(Timeframe.M5),
            promotion=PromotionParams(shadow_min_bars=288, shadow_max_age="3d"),
        ),
        Timeframe.H1: TimeframeParams(
            label_horizon=6,
            training_window="365d",
            cadence="1d",
            freshness_limit="3d",
            meta_cadence="6h",
            gates=timeframe_gates(Timeframe.H1),
        ),
        Timeframe.H12: TimeframeParams(
            label_horizon=2,
            training_window="1095d",
            cadence="7d",
            freshness_limit="14d",
            vol_window=30,
            gates=timeframe_gates(Timeframe.H12),
            promotion=PromotionParams(shadow_min_bars=60, shadow_max_age="90d"),
        ),
        Timeframe.D1: TimeframeParams(
            label_horizon=1,
            training_window="1460d",
            cadence="7d",
            freshness_limit="14d",
            vol_window=20,
            gates=timeframe_gates(Timeframe.D1),
            promotion=PromotionParams(shadow_min_bars=60, shadow_max_age="180d"),
        ),
    }


class SplitParams(ConfigTable):
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


class SourceConfig(ConfigTable):
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


class DataParams(ConfigTable):
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


class TrainingParams(ConfigTable):
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


class EvaluationParams(ConfigTable):
    """How a candidate is scored on the test split."""

    fee: float = Field(0.002, ge=0.0, lt=0.1, description="round-trip trading cost per signal (fraction)")
    min_signals: int = Field(20, ge=1, description="p* must leave at least this many calibration signals")
    ece_bins: int = Field(10, ge=2, description="bins of the expected calibration error")


class RetentionParams(ConfigTable):
    """How many artifact packs per (symbol, timeframe) `farm prune` keeps."""

    keep_versions: int = Field(
        5,
        ge=1,
        description="newest packs kept per symbol and timeframe; the champion and the previous champion "
        "(the rollback target) are always kept besides",
    )


class Universe(ConfigTable):
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


class FarmConfig(ConfigTable):
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
