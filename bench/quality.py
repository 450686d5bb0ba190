"""`python -m bench quality` (`make bench-quality`): model quality on the real data, in docs/QUALITY.md.

Retrains BTC, ETH and SOL from ``../shared/data`` on all four timeframes with the default config, through
the farm's own stages (in this process, no broker), and reports per (symbol, timeframe), all on the run's
test split: the class prior, every base model, the chosen stacker, the final calibrated model, its ECE
next to the range a perfectly calibrated model would show on that many rows (simulated: labels drawn
from the model's own probabilities), the gates' lower bound of the improvement over the prior, the
directional improvement (up against down, on the rows that moved) and its lower bound, the gate
verdict, and a plain single LightGBM on the same snapshot (train split in, no calibration) as a
reference. Targets are checked and printed; nothing here is asserted by a test.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from bench.bars import SHARED_DATA
from bench.sections import kept_sections
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import load_snapshot
from trainfarm.shared.evaluation.metrics import expected_calibration_error, log_loss
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry, dispose_engine
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.shared.zoo.threads import available_cores
from trainfarm.workers import stages
from trainfarm.workers.payloads import RunJob
from trainfarm.workers.runs import claim_run

#: The real bars beside the repository (read only).
SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT")
TIMEFRAMES = ("5m", "1h", "12h", "24h")
REPORT = Path(__file__).resolve().parents[1] / "docs" / "QUALITY.md"
ECE_SIMULATIONS = 200
#: Why targets are missed, as far as known (written into docs/QUALITY.md as it stands).
KNOWN_CAUSES = """## Where a target is missed, and why no real candidate is promoted

- **ECE on 5m, 1h and 12h/24h.** Two numbers (temperature, shrinkage) are fitted on the calibration
  split; where its volatility regime differs from the test period's (BTC 5m and 1h, ETH 1h, SOL 1h), the
  top-label ECE stays above 0.03, and on 12h/24h (about 200-330 calibration rows) above the range a
  perfectly calibrated model shows on that many test rows (BTC 12h/24h). A promoted pack ships the
  calibrator the gates judged (issue 22: refitting it on calibration + test paired it with a p* chosen for
  another); per-regime calibration (scaling the temperature by the recent volatility) is what would reach
  the target where regimes shift.
- **Most of the gain over the prior is not direction.** The three-class log-loss beats the recent prior on
  most markets (the `bound` column), but the label's neutral band is drawn from the trailing volatility,
  which the features see: a model can know when the price will sit still without knowing which way it
  moves. On the rows that did move, p_up / (p_up + p_down) beats the prior's up/down ratio significantly
  (`direction bound` above 0) only on ETH 12h and SOL 12h; BTC 1h, the largest three-class gain, is worse
  than the prior at direction. The gates judge direction on its own since issue 22 (docs/ml.md#gates).
- **One real candidate of twelve passes: SOL 12h.** Its three-class gain over the prior is +2.85% (bound
  above 0) and its directional gain +4.2% (bound +1.2%), and its fee-aware book earns on the test period
  at 30 or more signals. Until p* was carried to the test split's calibrator as a count of signals
  (docs/ml.md, stacking and p*) it failed `signals`: the number chosen on the cross-fitted calibration
  probabilities left fewer than 30 test signals. ETH 12h, the other directional candidate, fails `sharpe`
  (the book, each signal 1/h of the capital for h bars, loses money at p* on the test period). Every other
  candidate fails direction as well as the book: on these markets and these 28 features the models know
  volatility, and only at 12h a little direction. One pass in twelve is what valid statistics let through
  here; whether SOL 12h's edge holds after its test split is the replay's question (docs/REPLAY.md). The
  gates were not tuned to any market; their error rates are measured on null and planted cases
  (docs/ml.md#gates).
"""


@dataclass(frozen=True)
class Row:
    """One (symbol, timeframe): test log-losses and the checks around them."""

    symbol: str
    timeframe: str
    test_rows: int
    prior: float
    base: dict[str, float]
    best_base: str  #: chosen out of fold
    best_base_logloss: float
    stacker: str
    stacker_cv: dict[str, float | None]
    final: float
    ece: float
    ece_perfect_95: float
    bound: float | None  #: logloss_vs_prior_bound: the improvement over the prior, lower bound
    direction: float | None  #: direction_vs_prior: up/down log-loss improvement over the prior's ratio
    direction_bound: float | None  #: direction_vs_prior_bound
    gates: str
    failed_checks: list[str]
    reference_lgbm: float
    seconds: float

    @property
    def market(self) -> str:
        return f"{self.symbol} {self.timeframe}"


def _reference(frame: pl.DataFrame, names: list[str], threads: int) -> float:
    """Test log-loss of one plain LightGBM fitted on the snapshot's train split (unweighted, uncalibrated)."""
    import lightgbm as lgb

    train, test = frame.filter(pl.col("split") == "train"), frame.filter(pl.col("split") == "test")
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
        "num_threads": threads,
        "verbosity": -1,
        "seed": 7,
    }
    data = lgb.Dataset(train.select(names).to_numpy(), train["label"].to_numpy())
    booster = lgb.train(params, data, num_boost_round=150)
    probs = booster.predict(test.select(names).to_numpy())
    return log_loss(np.asarray(probs, dtype=np.float64), test["label"].to_numpy().astype(np.int64))


def _ece_range(probs: np.ndarray, rng: np.random.Generator) -> float:
    """95th percentile of the ECE of a perfectly calibrated model with these probabilities on these rows."""
    cumulative = probs.cumsum(axis=1)
    sims = []
    for _ in range(ECE_SIMULATIONS):
        u = rng.random((probs.shape[0], 1))
        y = (u > cumulative).sum(axis=1).clip(0, 2)
        sims.append(expected_calibration_error(probs, y, 10))
    return float(np.quantile(sims, 0.95))


def _one(symbol: str, timeframe: str, threads: int, rng: np.random.Generator) -> Row:
    started = time.perf_counter()
    claimed = claim_run(symbol, timeframe, "bench-quality")
    stage = stages.prepare(RunJob(run_id=claimed.run_id, symbol=symbol, timeframe=timeframe))
    assert stage is not None and stages.launched(stage)
    results = [
        stages.train_base(stage.model_copy(update={"model": m}), threads=threads, device="cpu")
        for m in MODEL_NAMES
    ]
    version_id = stages.train_meta(stage, results, task_id="bench-quality", threads=threads)
    assert version_id is not None
    registry = Registry.open()
    version = registry.versions.get(version_id)
    metrics = version.metrics
    snapshot = load_snapshot(stage.snapshot.resolve(get_settings().artifacts_dir))
    frame = snapshot.frame()
    test = frame.filter(pl.col("split") == "test")
    names = list(snapshot.feature_names)
    probs = Predictor.load(Path(version.path)).predict_features(test.select(names).to_numpy())
    report = version.gate_report or {}
    raw_checks = report.get("checks", [])
    checks = (
        {str(c["name"]): c for c in raw_checks if isinstance(c, dict)} if isinstance(raw_checks, list) else {}
    )

    def value(name: str) -> float | None:
        found = checks.get(name, {}).get("value")
        return float(found) if isinstance(found, int | float) else None

    return Row(
        symbol=symbol,
        timeframe=timeframe,
        test_rows=int(test.height),
        prior=_num(metrics, "prior", "logloss"),
        base={m: _num(metrics, "base", m, "test_logloss") for m in MODEL_NAMES},
        best_base=str(_get(metrics, "best_base", "model")),
        best_base_logloss=_num(metrics, "best_base", "logloss"),
        stacker=str(_get(metrics, "stacker", "chosen")),
        stacker_cv=dict(_get(metrics, "stacker", "cv_logloss")),  # type: ignore[call-overload]
        final=_num(metrics, "meta", "logloss"),
        ece=_num(metrics, "meta", "ece"),
        ece_perfect_95=_ece_range(probs, rng),
        bound=value("logloss_vs_prior_bound"),
        direction=value("direction_vs_prior"),
        direction_bound=value("direction_vs_prior_bound"),
        gates="passed" if report.get("passed") else "failed",
        failed_checks=[n for n, c in checks.items() if not c.get("passed")],
        reference_lgbm=_reference(frame, names, threads),
        seconds=round(time.perf_counter() - started, 1),
    )


def _get(metrics: Mapping[str, object], *path: str) -> object:
    node: object = metrics
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _num(metrics: Mapping[str, object], *path: str) -> float:
    value = _get(metrics, *path)
    return float(value) if isinstance(value, int | float) else float("nan")


def _targets(rows: list[Row]) -> list[str]:
    worse = [r.market for r in rows if r.final > 1.005 * r.prior]
    missed = f" (missed: {', '.join(worse)})" if worse else ""
    ece_ok = sum(r.ece <= (0.03 if r.timeframe in ("5m", "1h") else r.ece_perfect_95) for r in rows)
    hourly = [r for r in rows if r.timeframe == "1h"]
    vs_ref = sum(r.final <= r.reference_lgbm for r in hourly)
    vs_best = sum(r.final < r.best_base_logloss for r in hourly)
    return [
        f"- final model never more than 0.5% worse than the prior: {len(rows) - len(worse)} of {len(rows)}"
        + missed,
        "- ECE <= 0.03 on 5m/1h and within a perfectly calibrated model's 95% range on 12h/24h: "
        f"{ece_ok} of {len(rows)}",
        f"- 1h, at least as good as the plain LightGBM reference: {vs_ref} of {len(hourly)} (target 2)",
        f"- 1h, better than the best single base model: {vs_best} of {len(hourly)} (target 2)",
    ]


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"


def _failed(row: Row) -> str:
    return f": {', '.join(row.failed_checks)}" if row.failed_checks else ""


#: The verdicts of the gates before issue 22 (make bench-quality at 2372b84), kept for the comparison.
BASELINE = REPORT.parent / "quality-baseline.json"


def before_after(verdicts: Mapping[str, tuple[list[str], float | None]], baseline: Path = BASELINE) -> str:
    """The section comparing each market's verdict with the baseline's (empty without a baseline).

    ``verdicts``: market -> (failed checks, logloss_vs_prior_bound) of this run.
    """
    if not baseline.is_file():
        return ""
    old = json.loads(baseline.read_text())
    lines = [
        "## Before and after issue 22\n",
        f"Before: `make bench-quality` at {old['code']}, the gates before issue 22 (a percentile block "
        "bootstrap bound, a cap on each predicted class's share, a mean confidence floor, no directional "
        "check); after: this run.\n",
        "| market | before: bound | before: failed | after: bound | after: failed |",
        "|---|---:|---|---:|---|",
    ]
    for market, (failed, bound) in verdicts.items():
        was = old["markets"].get(market, {})
        lines.append(
            f"| {market} | {_bound(was.get('bound'))} | {', '.join(was.get('failed', [])) or 'passed'} | "
            f"{_bound(bound)} | {', '.join(failed) or 'passed'} |"
        )
    return "\n".join(lines) + "\n"


def _write(rows: list[Row], targets: list[str]) -> None:
    header = (
        "| market | test rows | prior | best base (out of fold) | stacker | final | plain LightGBM | ECE | "
        "ECE 95% if perfect | bound | direction | direction bound | gates |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r.market} | {r.test_rows} | {r.prior:.4f} | {r.best_base} {r.best_base_logloss:.4f} | "
        f"{r.stacker} | {r.final:.4f} | {r.reference_lgbm:.4f} | {r.ece:.4f} | {r.ece_perfect_95:.4f} | "
        f"{_bound(r.bound)} | {_bound(r.direction)} | {_bound(r.direction_bound)} | {r.gates}{_failed(r)} |\n"
        for r in rows
    )
    bases = "".join(
        f"| {r.market} | " + " | ".join(f"{v:.4f}" for v in r.base.values()) + " |\n" for r in rows
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    # `make bench-gates` and `bench context` write their own sections of the file: kept as they are.
    kept = kept_sections(REPORT)
    REPORT.write_text(
        "# Model quality on the real data (`make bench-quality`)\n\n"
        f"Written by `python -m bench quality` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: BTC, ETH and SOL "
        "from `../shared/data`, the default config, every (symbol, timeframe) retrained through the farm's "
        "own stages. Every number is a log-loss on the run's test split (lower is better) unless named "
        "otherwise; the prior is the calibration split's class shares (the gates' baseline); the best base "
        "model is chosen out of fold "
        "(never on test); the plain LightGBM is one model fitted on the same snapshot's train split "
        "(150 rounds, no weights, no calibration), the plain reference a quant would fit first. `bound` is "
        "the gates' 95% lower bound of the relative log-loss improvement over the prior; `direction` the "
        "relative improvement of p_up / (p_up + p_down) over the prior's up/down ratio on the rows "
        "labelled up or down, and `direction bound` its lower bound (docs/ml.md#gates).\n\n"
        + header
        + body
        + "\n## Targets\n\n"
        + "\n".join(targets)
        + "\n\n"
        + KNOWN_CAUSES
        + "\n"
        + before_after({r.market: (r.failed_checks, r.bound) for r in rows})
        + "\n## Every base model (test log-loss)\n\n| market | "
        + " | ".join(MODEL_NAMES)
        + " |\n|---|"
        + "---|" * len(MODEL_NAMES)
        + "\n"
        + bases
        + ("\n" + kept if kept else "")
    )


def main() -> None:
    if not SHARED_DATA.is_dir():
        raise SystemExit(f"bench quality needs the real data in {SHARED_DATA}")
    threads = max(1, available_cores())
    rng = np.random.default_rng(7)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for symbol in SYMBOLS:
            os.environ["FARM_HOME"] = str(Path(tmp) / symbol)
            os.environ.pop("FARM_CONFIG_FILE", None)
            get_settings.cache_clear()
            try:
                open_store().import_file(SHARED_DATA / f"{symbol}-5m.parquet", symbol)
                for timeframe in TIMEFRAMES:
                    row = _one(symbol, timeframe, threads, rng)
                    console.print(
                        f"{row.market}: final {row.final:.4f} prior {row.prior:.4f} "
                        f"stacker {row.stacker} ({row.seconds} s)"
                    )
                    rows.append(row)
            finally:
                embedded_redis().stop()
                dispose_engine(get_settings().database)
    targets = _targets(rows)
    print_table(
        "model quality (test log-loss)",
        ["market", "prior", "best base", "stacker", "final", "plain LGBM", "ECE", "gates"],
        [
            [r.market, r.prior, r.best_base_logloss, r.stacker, r.final, r.reference_lgbm, r.ece, r.gates]
            for r in rows
        ],
    )
    for line in targets:
        console.print(line)
    _write(rows, targets)
    (REPORT.parent / "quality.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    console.print(f"written: {REPORT}")
