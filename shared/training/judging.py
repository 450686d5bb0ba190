"""Judging a candidate: stack, calibrate, choose p*, gate and score it, before anything is written.

The first half of the meta stage (:func:`trainfarm.shared.training.meta_stage.finish_version` writes the
pack from what this returns). The meta-learner learns only from out-of-fold rows; the calibrator and the
decision threshold p* only from the calibration split; the test split is touched once, for the metrics and
the gates (against the calibration split's class prior, and the champion on the same rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from trainfarm.shared.config import TrainingParams
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.inputs import features_at
from trainfarm.shared.dataset.snapshot import DatasetSnapshot
from trainfarm.shared.evaluation.book import bar_returns
from trainfarm.shared.evaluation.gates import (
    ChampionModel,
    ChampionSource,
    ChampionStanding,
    Lineage,
    ScoredPredictions,
    gate_candidate,
    p_star_floors,
)
from trainfarm.shared.evaluation.metrics import class_prior, evaluate
from trainfarm.shared.evaluation.trading import ThresholdRule, matched_threshold, periods_per_year
from trainfarm.shared.settings import get_settings
from trainfarm.shared.stacking.selection import BoosterParams, StackerChoice, choose_stacker
from trainfarm.shared.stacking.temperature import cross_fitted, fit_temperature_shrink
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.calibration import TemperatureShrinkCalibration
from trainfarm_client.featurespec import FeatureSpec

SPLITS = ("train", "calibration", "test")


@dataclass(frozen=True)
class StackedMeta:
    """The chosen stacker, its calibrator, and what they make of the calibration and test splits."""

    choice: StackerChoice
    calibrator: TemperatureShrinkCalibration
    cal_probs: FloatArray  #: cross-fitted: each row calibrated by a fit that did not see it
    test_probs: FloatArray
    raw: dict[str, FloatArray]  #: the stacker's uncalibrated calibration and test probabilities


def stack_and_calibrate(
    preds: Mapping[str, Mapping[str, FloatArray]],
    y: Mapping[str, npt.NDArray[np.int64]],
    order: list[str],
    horizon: int,
    training: TrainingParams,
    threads: int,
) -> StackedMeta:
    """Choose the stacker on the out-of-fold rows, then calibrate it on the calibration split."""
    # The stacker learns only on rows that every base model predicted out of fold (rows before the first
    # validation chunk have none), chosen among candidates (the prior too) by purged out-of-fold log-loss.
    oof = {m: preds[m]["oof"] for m in order}
    rows = ~np.isnan(np.hstack([oof[m] for m in order])).any(axis=1)
    choice = choose_stacker(
        {m: oof[m][rows] for m in order},
        y["train"][rows],
        order,
        purge=horizon,
        booster=BoosterParams(
            rounds=training.meta_rounds,
            learning_rate=training.learning_rate,
            early_stopping_rounds=training.early_stopping_rounds,
            holdout_fraction=training.meta_holdout_fraction,
            seed=training.seed,
        ),
        threads=threads,
    )

    def stacked(split: str) -> FloatArray:
        return choice.stacker.predict({m: preds[m][split] for m in order}, len(y[split]))

    # Calibration on its own split: temperature, then shrinkage toward that split's class shares. p* is
    # chosen on cross-fitted calibrated probabilities (each row calibrated by a fit that did not see it).
    raw = {split: stacked(split) for split in ("calibration", "test")}
    calibrator = fit_temperature_shrink(raw["calibration"], y["calibration"])
    return StackedMeta(
        choice,
        calibrator,
        cross_fitted(raw["calibration"], y["calibration"], horizon),
        calibrator.transform(raw["test"]),
        raw,
    )


@dataclass(frozen=True)
class Judgement:
    """A candidate judged: its meta stage, p*, gate report and metrics, and the rows they came from."""

    meta: StackedMeta
    p_star: float
    #: :meth:`trainfarm.shared.evaluation.gates.GateReport.to_json`: promote only when ``["passed"]`` is true.
    gate_report: dict[str, object]
    metrics: dict[str, object]
    part: Mapping[str, pl.DataFrame]  #: the snapshot's rows per split
    labels: Mapping[str, IntArray]  #: class ids per split
    #: What the gates scored: the candidate's test predictions, and the test rows' features (a champion
    #: is scored on them). A replay keeps both to gate the candidate against a later-known champion.
    candidate: ScoredPredictions
    x_test: FloatArray

    @property
    def passed(self) -> bool:
        """Whether every gate passed."""
        return bool(self.gate_report["passed"])


def judge(
    snapshot: DatasetSnapshot,
    preds: Mapping[str, Mapping[str, FloatArray]],
    timeframe: Timeframe,
    *,
    threads: int,
    champion: ChampionSource | None,
    base_metrics: Mapping[str, object],
    standing: ChampionStanding | None = None,
    lineage: Lineage | None = None,
) -> Judgement:
    """Stack, calibrate, choose p*, gate and score a candidate from its base models' predictions.

    ``preds[model]`` holds ``oof`` (the stacker's training rows: out of fold, or out of sample),
    ``calibration`` and ``test`` probabilities of the snapshot's splits; ``champion`` is scored on the
    same test rows (see :func:`trainfarm.shared.evaluation.gates.gate_candidate`), and ``standing`` says
    whether it may be replaced without a comparison, ``lineage`` whether a pass needs confirming;
    ``base_metrics`` join the metrics.
    """
    config = get_settings().load_config()
    params = config.params(timeframe)
    training, scoring = config.training, config.evaluation
    frame = snapshot.frame()
    part = {name: frame.filter(pl.col("split") == name) for name in SPLITS}
    y = {name: part[name]["label"].cast(pl.Int64).to_numpy() for name in part}
    fwd = {name: part[name]["fwd_return"].to_numpy() for name in part}
    order = list(preds)
    meta = stack_and_calibrate(preds, y, order, params.label_horizon, training, threads)
    choice, calibrator, cal_probs = meta.choice, meta.calibrator, meta.cal_probs
    per_year = periods_per_year(timeframe.minutes)
    profile = config.gates.profile
    # p* must leave room for the gates' signal floors, with a margin (see
    # trainfarm.shared.evaluation.gates.p_star_floors).
    floor_signals, floor_share = p_star_floors(params.gates, profile, scoring.min_signals)
    rule = ThresholdRule(
        fee=scoring.fee,
        min_signals=floor_signals,
        min_eligible_share=floor_share,
        periods_per_year=per_year,
        horizon=params.label_horizon,
    )
    # Chosen out of sample (cross-fitted), applied as the same count of signals to the calibrator that
    # calibrates the test split (trainfarm.shared.evaluation.trading.matched_threshold).
    p_star = matched_threshold(
        cal_probs,
        rule.choose(cal_probs, fwd["calibration"], _bar_returns(part["calibration"])),
        calibrator.transform(meta.raw["calibration"]),
    )
    test_probs = meta.test_probs
    test_bars = _bar_returns(part["test"])
    candidate = ScoredPredictions(
        probs=test_probs,
        y=y["test"],
        fwd_return=fwd["test"],
        # The baseline takes the most recent class shares the model may use (see
        # trainfarm.shared.evaluation.gates).
        prior=class_prior(y["calibration"]),
        p_star=p_star,
        fee=scoring.fee,
        periods_per_year=per_year,
        label_horizon=params.label_horizon,
        bar_return=test_bars,
        dates=part["test"]["date"].dt.replace_time_zone(None).to_numpy(),
    )
    # The champion is scored on exactly these feature rows, so both are judged on the same window.
    names = list(snapshot.feature_names)
    x_test = part["test"].select(names).to_numpy().astype(np.float64)

    def champion_features(model: ChampionModel) -> FloatArray:
        # A champion trained on other feature sets (the config changed since) is scored on its own
        # features of the same test bars, built from the store.
        # (A champion without a spec, a test's stand-in, is scored on the candidate's rows.)
        spec = getattr(model, "spec", None)
        if not isinstance(spec, FeatureSpec) or list(spec.names()) == names:
            return x_test
        rows = features_at(open_store(), spec, part["test"]["date"])
        return rows.select(list(spec.names())).to_numpy().astype(np.float64)

    gate_report = gate_candidate(
        candidate,
        champion,
        x_test,
        thresholds=params.gates,
        timeframe=timeframe,
        profile=profile,
        seed=training.seed,
        standing=standing,
        lineage=lineage,
        champion_features=champion_features,
    ).to_json()
    metrics = evaluate(
        meta_probs_test=test_probs,
        y_test=y["test"],
        fwd_return_test=fwd["test"],
        y_prior=y["calibration"],
        base_probs_test={m: preds[m]["test"] for m in order},
        p_star=p_star,
        fee=scoring.fee,
        periods_per_year=per_year,
        ece_bins=scoring.ece_bins,
        best_base=choice.best_base,
        bar_return_test=test_bars,
        horizon=params.label_horizon,
    )
    metrics["stacker"] = choice.to_json()
    metrics["calibrator"] = calibrator.to_json()
    metrics["base"] = dict(base_metrics)
    return Judgement(meta, p_star, gate_report, metrics, part, y, candidate, x_test)


def _bar_returns(rows: pl.DataFrame) -> FloatArray:
    return bar_returns(rows["close"].to_numpy(), rows["segment"].to_numpy())
