"""Candidates built without Celery for the gate property tests: snapshot -> 8 base models -> meta stage.

The same steps as a run (as the session's ``pack`` in ``tests/conftest.py``), on generated bars, so the gates
are exercised end to end at a timeframe's real size without a broker. :meth:`CandidateBench.judge` stops where
the gate report and metrics are known (:func:`trainfarm.shared.training.judging.judge`, the meta stage's own
first half); :meth:`CandidateBench.build` goes on as a run does, deploying (refit when the gates pass) and
writing the pack, for the tests that load it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from tests.support.packs import train_base_models
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, build_snapshot
from trainfarm.shared.evaluation.gates import ChampionSource, GateReport
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.base import BaseModelResult
from trainfarm.shared.training.judging import judge
from trainfarm.shared.training.meta_stage import BuiltVersion, base_predictions, build_version
from trainfarm.workers.payloads import StageJob


@dataclass(frozen=True)
class Judged:
    """One candidate's snapshot, gate report and metrics."""

    snapshot: DatasetSnapshot
    report: GateReport
    metrics: dict[str, object]


@dataclass(frozen=True)
class Built(Judged):
    """A judged candidate and its written pack."""

    version: BuiltVersion


@dataclass
class CandidateBench:
    """Builds and judges candidates of one (symbol, timeframe) under ``home`` with ``config``, no Celery."""

    settings: FarmSettings
    config: FarmConfig
    home: Path
    symbol: str
    timeframe: Timeframe

    def judge(self, bars: pl.DataFrame, champion: ChampionSource | None = None) -> Judged:
        """The candidate's gate report and metrics; no pack is written."""
        snapshot, work_dir, _, results = self._train(bars)
        judged = judge(
            snapshot,
            {m: base_predictions(work_dir, r) for m, r in results.items()},
            self.timeframe,
            threads=1,
            champion=champion,
            base_metrics={m: r.metrics for m, r in results.items()},
        )
        return Judged(snapshot, GateReport.from_json(judged.gate_report), judged.metrics)

    def build(self, bars: pl.DataFrame, champion: ChampionSource | None = None) -> Built:
        """The candidate judged, deployed and written as a pack, as a run's meta stage does."""
        snapshot, work_dir, stage, results = self._train(bars)
        built = build_version(
            stage, snapshot, results, work_dir, threads=1, run_created_at=datetime.now(UTC), champion=champion
        )
        assert built.gate_report is not None
        return Built(snapshot, GateReport.from_json(built.gate_report), built.metrics, built)

    def snapshot(self, bars: pl.DataFrame) -> DatasetSnapshot:
        """The snapshot a run would build from ``bars``."""
        return build_snapshot(
            bars,
            symbol=self.symbol,
            timeframe=self.timeframe,
            config=self.config,
            root=self.settings.datasets_dir,
        )

    def _train(
        self, bars: pl.DataFrame
    ) -> tuple[DatasetSnapshot, Path, StageJob, dict[str, BaseModelResult]]:
        snapshot = self.snapshot(bars)
        work_dir = self.home / "runs" / uuid.uuid4().hex
        stage, results = train_base_models(
            snapshot, work_dir, self.config, symbol=self.symbol, timeframe=self.timeframe
        )
        return snapshot, work_dir, stage, results


def bound(built: Judged) -> float:
    """The lower bound of the improvement over the prior (logloss_vs_prior_bound)."""
    value = built.report.check("logloss_vs_prior_bound").value
    assert value is not None
    return value


def final_vs_prior(built: Judged) -> tuple[float, float]:
    """The final model's and the prior's test log-loss."""
    metrics = built.metrics
    meta, prior = metrics["meta"], metrics["prior"]
    assert isinstance(meta, dict) and isinstance(prior, dict)
    return float(meta["logloss"]), float(prior["logloss"])


def table(builds: Mapping[int, Judged]) -> str:
    """One line per seed: verdict, improvement, bound, Sharpe, failed checks (printed with ``-s``)."""
    lines = []
    for seed, b in builds.items():
        values = {c.name: c.value for c in b.report.checks}
        lines.append(
            f"seed {seed}: {'PASS' if b.report.passed else 'fail'} improvement {values['logloss_vs_prior']} "
            f"lower bound {values['logloss_vs_prior_bound']} sharpe {values['sharpe']} "
            f"failed {[c.name for c in b.report.failed()]}"
        )
    return "\n".join(lines)
