"""Packs built without Celery for the gate property tests: snapshot -> 8 base models -> meta stage.

The same steps as a run (as in ``tests/unit/test_predictor.py``), on generated bars, so the gates are
exercised end to end at a timeframe's real size without a broker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from tests.packs import train_base_models
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset import DatasetSnapshot, build_snapshot
from trainfarm.shared.gates import ChampionSource, GateReport
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.meta_stage import BuiltVersion, build_version


@dataclass(frozen=True)
class Built:
    """One written pack, its snapshot, and its gate report."""

    version: BuiltVersion
    snapshot: DatasetSnapshot
    report: GateReport


@dataclass
class GateFarm:
    """Builds packs for one (symbol, timeframe) under ``home`` with ``config``."""

    settings: FarmSettings
    config: FarmConfig
    home: Path
    symbol: str
    timeframe: Timeframe

    def build(self, bars: pl.DataFrame, champion: ChampionSource | None = None) -> Built:
        snapshot = build_snapshot(
            bars,
            symbol=self.symbol,
            timeframe=self.timeframe,
            config=self.config,
            root=self.settings.datasets_dir,
        )
        work_dir = self.home / "runs" / uuid.uuid4().hex
        stage, results = train_base_models(
            snapshot, work_dir, self.config, symbol=self.symbol, timeframe=self.timeframe
        )
        built = build_version(
            stage, snapshot, results, work_dir, threads=1, run_created_at=datetime.now(UTC), champion=champion
        )
        assert built.gate_report is not None
        return Built(built, snapshot, GateReport.from_json(built.gate_report))


def bound(built: Built) -> float:
    """The bootstrap lower bound of the improvement over the prior."""
    value = built.report.check("logloss_vs_prior_bootstrap").value
    assert value is not None
    return value


def final_vs_prior(built: Built) -> tuple[float, float]:
    """The final model's and the prior's test log-loss."""
    metrics = built.version.metrics
    meta, prior = metrics["meta"], metrics["prior"]
    assert isinstance(meta, dict) and isinstance(prior, dict)
    return float(meta["logloss"]), float(prior["logloss"])


def table(builds: dict[int, Built]) -> str:
    """One line per seed: verdict, improvement, bound, Sharpe, failed checks (printed with ``-s``)."""
    lines = []
    for seed, b in builds.items():
        values = {c.name: c.value for c in b.report.checks}
        lines.append(
            f"seed {seed}: {'PASS' if b.report.passed else 'fail'} improvement {values['logloss_vs_prior']} "
            f"lower bound {values['logloss_vs_prior_bootstrap']} sharpe {values['sharpe']} "
            f"failed {[c.name for c in b.report.failed()]}"
        )
    return "\n".join(lines)
