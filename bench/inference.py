"""`python -m bench inference`: how long a bot takes to decide on one bar, stage by stage.

A real pack is built in a temporary farm home from the bundled BTC sample at 1h with the default
config's training parameters (so the base models have the sizes a real run gives them: early-stopped
rounds out of ``base_rounds``), through the farm's own steps in this process (snapshot -> 8 base models
-> meta stage; no broker, no registry). Then, after a warm-up, each measured :data:`REPEATS` times:

* **one decision**, as a bot makes it: :meth:`Predictor.score_newest` on the newest bar of
  :data:`~trainfarm_client.features.MIN_HISTORY_BARS` bars of history (features included), then
  :meth:`Predictor.decide`. Every repetition scores a different bar (a window sliding over the sample),
  so nothing is measured on one cached input;
* its stages: the newest bar's features (:func:`~trainfarm_client.newest.newest_feature_row`, what a
  decision computes) and, for comparison, add_features over the whole history (:meth:`Predictor.feature_rows`,
  what it computed before and still does for bars the fast path leaves to it); the models alone on one
  feature row (:meth:`Predictor.predict_features`); the 8 base models in turn on one thread (a decision's
  way) and on every core (the libraries' default, which a decision used before); each base model, the
  stacker and the calibration;
* **a batch** of :data:`BATCH_ROWS` feature rows through :meth:`Predictor.predict_features`: total and
  per row.

Latencies are p50, p99 and max in milliseconds; the decision's p99 is compared with the target
(:data:`TARGET_P99_MS`; docs/PERFORMANCE.md#4-bot-inference-python--m-bench-inference). Ratios within
one run are what to compare; absolute figures depend on the machine.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from trainfarm.cli.demo.sample_data import SAMPLE_DIR
from trainfarm.cli.output import console, print_table
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.snapshot import build_snapshot
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.base import train_base_model
from trainfarm.shared.training.meta_stage import build_version
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.shared.zoo.threads import available_cores
from trainfarm_client.arrays import FloatArray
from trainfarm_client.features import FEATURE_NAMES, MIN_HISTORY_BARS
from trainfarm_client.models import BaseModel, predict_catboost, predict_lightgbm, predict_xgboost
from trainfarm_client.newest import newest_feature_row
from trainfarm_client.predictor import Predictor

SYMBOL, TF = "BTC_USDT", Timeframe.H1
#: Timed calls per measurement (after :data:`WARMUP` untimed ones).
REPEATS = 1000
WARMUP = 50
#: Rows of the batch measurement, and how often it is timed.
BATCH_ROWS = 1000
BATCH_REPEATS = 30
#: The target for one decision's p99, features included.
TARGET_P99_MS = 5.0


@dataclass(frozen=True)
class _Job:
    """The run identity the meta stage needs (``trainfarm.shared.training.meta_stage.RunIdentity``)."""

    run_id: str
    symbol: str
    timeframe: Timeframe

    def tf(self) -> Timeframe:
        return self.timeframe


@dataclass(frozen=True)
class BuiltPack:
    """A pack built for the benchmark and the bars (of its timeframe) a bot would hold."""

    path: Path
    manifest_sha256: str
    bars: pl.DataFrame


@contextmanager
def _farm_home(home: Path) -> Iterator[None]:
    """FARM_HOME pointing at ``home`` (default config: no FARM_CONFIG_FILE) while the block runs."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("FARM_")}
    for key in saved:
        del os.environ[key]
    os.environ["FARM_HOME"] = str(home)
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.pop("FARM_HOME", None)
        os.environ.update(saved)
        get_settings.cache_clear()


def build_pack(home: Path, timeframe: Timeframe = TF) -> BuiltPack:
    """Train a pack of :data:`SYMBOL` at ``timeframe`` from the bundled sample with the default config."""
    bars_5m = read_bars(SAMPLE_DIR / f"{SYMBOL}-5m.parquet")
    with _farm_home(home):
        settings = get_settings()
        config = settings.load_config()
        snapshot = build_snapshot(
            bars_5m, symbol=SYMBOL, timeframe=timeframe, config=config, root=settings.datasets_dir
        )
        run_id = uuid.uuid4().hex
        work_dir = home / "run"
        threads = available_cores()
        results = {
            m: train_base_model(
                snapshot,
                m,
                work_dir,
                run_id=run_id,
                training=config.training,
                splits=config.splits,
                threads=threads,
            )
            for m in MODEL_NAMES
        }
        job = _Job(run_id, SYMBOL, timeframe)
        built = build_version(
            job, snapshot, results, work_dir, threads=threads, run_created_at=datetime.now(UTC)
        )
    return BuiltPack(built.path, built.manifest_sha256, resample(bars_5m, timeframe))


def latency(work: Callable[[int], object], repeats: int = REPEATS, warmup: int = WARMUP) -> dict[str, float]:
    """p50, p99 and max milliseconds of ``work(i)`` for ``i`` in ``range(repeats)``, after ``warmup`` calls.

    A collection is forced before the timed calls and the collector stays enabled during them: a
    collection that falls inside a call is part of what a bot sees.
    """
    for i in range(warmup):
        work(i % repeats)
    gc.collect()
    ns = np.empty(repeats, dtype=np.int64)
    for i in range(repeats):
        started = time.perf_counter_ns()
        work(i)
        ns[i] = time.perf_counter_ns() - started
    ms = ns / 1e6
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def _bases(predictor: Predictor, rows: list[FloatArray], *, threads: int) -> Callable[[int], object]:
    """Call ``i``: every base model predicts ``rows[i]`` with ``threads`` threads (numpy's models: as is)."""
    libraries: dict[str, Callable[..., FloatArray]] = {
        "lightgbm": predict_lightgbm,
        "xgboost": predict_xgboost,
        "catboost": predict_catboost,
    }

    def run(i: int) -> object:
        return [
            libraries[m.kind](m.model, rows[i], threads=threads)
            if m.kind in libraries
            else m.predict_proba(rows[i])
            for m in predictor.base_models
        ]

    return run


def _first(run: Callable[[int], object]) -> Callable[[int], object]:
    """Every call runs ``run(0)``."""
    return lambda _: run(0)


def _one_row(model: BaseModel, rows: list[FloatArray]) -> Callable[[int], object]:
    """Call ``i``: ``model`` predicts ``rows[i]``."""
    return lambda i: model.predict_proba(rows[i])


def measure(pack: BuiltPack, repeats: int = REPEATS) -> dict[str, object]:
    """Every latency of the module docstring for ``pack``; a JSON-safe dict."""
    predictor = Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    predictor.self_check()
    interval = timedelta(minutes=int(predictor.manifest["feature_params"]["interval_minutes"]))
    bars = pack.bars
    if bars.height < MIN_HISTORY_BARS + repeats:
        raise SystemExit(f"bench inference: {bars.height} bars, need {MIN_HISTORY_BARS + repeats}")
    first_end = bars.height - repeats
    histories = [
        bars.slice(end - MIN_HISTORY_BARS, MIN_HISTORY_BARS) for end in range(first_end, bars.height)
    ]
    nows = [h["date"][-1] + interval + timedelta(seconds=30) for h in histories]
    # The feature row each history's newest bar is scored on (the same rows score_newest predicts).
    rows = [predictor.feature_rows(h).select(FEATURE_NAMES).tail(1).to_numpy() for h in histories]
    scored = [predictor.score_newest(h, now=n) for h, n in zip(histories, nows, strict=True)]
    unscored = sum(s.probabilities is None for s in scored)
    if unscored:  # a gap in the sample's newest bars: the benchmark would time the early exits
        raise SystemExit(f"bench inference: {unscored} of the {repeats} newest bars cannot be scored")
    # What a decision computes against add_features' rows and the whole-frame path (tests prove it; here
    # it is a check that the timed path is the right one).
    fast = np.concatenate([s.probabilities for s in scored if s.probabilities is not None]).reshape(-1, 3)
    full = predictor.predict_features(np.concatenate(rows))
    worst = float(np.abs(fast - full).max())

    def decision(i: int) -> object:
        scored = predictor.score_newest(histories[i], now=nows[i])
        assert scored.probabilities is not None
        return predictor.decide(scored.probabilities)

    max_gap = int(predictor.manifest["feature_params"]["max_gap_bars"])
    stages: dict[str, dict[str, float]] = {
        "decision": latency(decision, repeats),
        "features: newest row": latency(
            lambda i: newest_feature_row(histories[i], interval=interval, max_gap_bars=max_gap), repeats
        ),
        "features: add_features (fallback)": latency(lambda i: predictor.feature_rows(histories[i]), repeats),
        "models": latency(lambda i: predictor.predict_features(rows[i]), repeats),
        "base models, one thread": latency(_bases(predictor, rows, threads=1), repeats),
        "base models, every core": latency(_bases(predictor, rows, threads=available_cores()), repeats),
    }
    for model in predictor.base_models:
        stages[f"base {model.name}"] = latency(_one_row(model, rows), repeats)
    base = [predictor.base_probabilities(r) for r in rows]
    stacker, calibration = predictor.stacker, predictor.calibration
    stages["stacker"] = latency(lambda i: stacker.predict(base[i], 1), repeats)
    stacked = [stacker.predict(b, 1) for b in base]
    stages["calibration"] = latency(lambda i: calibration.transform(stacked[i]), repeats)

    batch = predictor.feature_rows(bars).select(FEATURE_NAMES).tail(BATCH_ROWS).to_numpy()
    batch_ms = latency(lambda _: predictor.predict_features(batch), BATCH_REPEATS, warmup=2)
    # Where SINGLE_THREAD_ROWS stands: the batch's base models on one thread and on every core.
    batch_bases = {
        label: latency(_first(_bases(predictor, [batch], threads=threads)), BATCH_REPEATS, warmup=2)
        for label, threads in (("one thread", 1), ("every core", available_cores()))
    }
    return {
        "pack": {
            "market": f"{SYMBOL} {predictor.manifest['timeframe']}",
            "version": predictor.version,
            "stacker": type(stacker).__name__,
            "base_models": {m.name: m.kind for m in predictor.base_models},
        },
        "history_bars": MIN_HISTORY_BARS,
        "repeats": repeats,
        "cores": available_cores(),
        "latency_ms": stages,
        "batch": {
            "rows": int(batch.shape[0]),
            "repeats": BATCH_REPEATS,
            **batch_ms,
            "per_row_us_p50": round(batch_ms["p50_ms"] * 1000 / batch.shape[0], 2),
            "base_models_ms": batch_bases,
        },
        "decision_vs_add_features_max_abs_difference": worst,
        "target_p99_ms": TARGET_P99_MS,
        "decision_p99_over_target": round(stages["decision"]["p99_ms"] / TARGET_P99_MS, 2),
    }


def report(figures: dict[str, object]) -> None:
    """Print the tables of :func:`measure`'s figures."""
    pack = figures["pack"]
    stages = figures["latency_ms"]
    batch = figures["batch"]
    assert isinstance(pack, dict) and isinstance(stages, dict) and isinstance(batch, dict)
    console.print(
        f"bench inference: {pack['market']} pack {pack['version']} ({pack['stacker']}), "
        f"{figures['history_bars']} bars of history, {figures['repeats']} repetitions, "
        f"{figures['cores']} cores"
    )
    target = float(TARGET_P99_MS)
    print_table(
        "latency per call (ms)",
        ["stage", "p50", "p99", "max", "p99 / target"],
        [
            [name, s["p50_ms"], s["p99_ms"], s["max_ms"], round(s["p99_ms"] / target, 2)]
            for name, s in stages.items()
        ],
    )
    bases = batch["base_models_ms"]
    assert isinstance(bases, dict)
    print_table(
        f"a batch of {batch['rows']} feature rows ({batch['repeats']} repetitions)",
        ["call", "p50 ms", "p99 ms", "max ms", "p50 us per row"],
        [
            ["predict_features", batch["p50_ms"], batch["p99_ms"], batch["max_ms"], batch["per_row_us_p50"]],
            *(
                [f"the 8 base models, {label}", b["p50_ms"], b["p99_ms"], b["max_ms"],
                 round(b["p50_ms"] * 1000 / batch["rows"], 2)]
                for label, b in bases.items()
            ),
        ],
    )  # fmt: skip
    verdict = "reached" if figures["decision_p99_over_target"] <= 1.0 else "missed"  # type: ignore[operator]
    console.print(
        f"one decision: p99 {stages['decision']['p99_ms']} ms = {figures['decision_p99_over_target']} x "
        f"the {target:g} ms target ({verdict}); its probabilities differ from add_features' rows' by at "
        f"most {figures['decision_vs_add_features_max_abs_difference']:.1e}"
    )


def existing_pack(home: Path, timeframe: Timeframe = TF) -> BuiltPack | None:
    """The newest pack :func:`build_pack` left in ``home``, or None."""
    with _farm_home(home):
        market = get_settings().artifacts_dir / SYMBOL / timeframe.value
    packs = sorted(market.glob("*/manifest.json")) if market.is_dir() else []
    if not packs:
        return None
    bars = resample(read_bars(SAMPLE_DIR / f"{SYMBOL}-5m.parquet"), timeframe)
    digest = hashlib.sha256(packs[-1].read_bytes()).hexdigest()
    return BuiltPack(packs[-1].parent, digest, bars)


def main(home: Path | None = None) -> dict[str, object]:
    """Build a pack in a temporary farm home, measure, print the tables and return the figures.

    With ``home`` (kept afterwards) a pack built there by an earlier call is reused instead of trained.
    """
    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        root = home if home is not None else Path(tmp) / "home"
        pack = existing_pack(root)
        if pack is None:
            started = time.perf_counter()
            pack = build_pack(root)
            console.print(f"bench inference: pack built in {time.perf_counter() - started:.0f} s")
        figures = measure(pack)
    report(figures)
    return figures


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
