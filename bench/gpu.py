"""`python -m bench gpu`: the GPU-capable base models on GPU against CPU, and a GPU pack on a CPU bot.

Runs only where a GPU is visible (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``, as ``farm up --gpu``
decides); elsewhere it records that nothing was measured and why. On a GPU machine:

* every ``gpu_capable`` base model (XGBoost and CatBoost) is fitted on the largest 5m snapshot of the
  default config (BTC_USDT, ``../shared/data`` or the bundled sample) with ``device="cuda"`` and with
  ``device="cpu"`` (one thread, as a CPU worker slot; and all cores), timed back to back;
* a pack is built from the GPU-trained models and loaded in a separate process with no GPU visible
  (``CUDA_VISIBLE_DEVICES=""``): it must verify, reproduce its sample rows (``self_check``) and score the
  snapshot's test rows exactly as the GPU process does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.bars import bar_file
from trainfarm.cli.output import console, print_table
from trainfarm.cli.up import visible_gpus
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.dataset.snapshot import DatasetSnapshot
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.zoo import MODEL_NAMES, get_spec
from trainfarm.shared.zoo.threads import available_cores
from trainfarm_client.arrays import FloatArray

SYMBOL, TF = "BTC_USDT", Timeframe.M5

#: Run with no GPU visible: load the pack, check it, score the given rows, write them to ``out``.
CPU_BOT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import numpy as np
import numpy.typing as npt

    from trainfarm_client.predictor import Predictor

    args = json.loads(sys.argv[1])
    predictor = Predictor.load(Path(args["pack"]), expected_manifest_sha256=args["sha256"])
    predictor.self_check()
    np.save(args["out"], predictor.predict_features(np.load(args["rows"])))
    """
)


def _fits(
    snapshot: DatasetSnapshot, config: FarmConfig, root: Path
) -> tuple[list[list[object]], dict[str, Any]]:
    """Fit every model on the GPU (the CPU-only ones on the CPU), the GPU-capable ones on the CPU too."""
    from trainfarm.shared.training.base import train_base_model

    rows: list[list[object]] = []
    fits: dict[str, dict[str, float]] = {}
    results = {}
    for model in MODEL_NAMES:
        capable = get_spec(model).gpu_capable
        for label, device, threads in (("cuda", "cuda", 1), ("cpu1", "cpu", 1), ("cpuall", "cpu", 0)):
            if not capable and label != "cuda":
                continue
            started = time.perf_counter()
            result = train_base_model(
                snapshot,
                model,
                root / label,
                run_id=f"gpu-{label}",
                training=config.training,
                splits=config.splits,
                threads=threads or available_cores(),
                device=device,
            )
            fits.setdefault(model, {})[label] = time.perf_counter() - started
            if label == "cuda":
                results[model] = result
        if capable:
            t = fits[model]
            rows.append(
                [model, round(t["cuda"], 2), round(t["cpu1"], 2), round(t["cpuall"], 2),
                 round(t["cpu1"] / t["cuda"], 2), round(t["cpuall"] / t["cuda"], 2)]
            )  # fmt: skip
    return rows, {"fits": fits, "results": results}


def _cpu_bot_difference(pack: Path, manifest_sha256: str, rows: FloatArray, root: Path) -> float:
    """Largest difference between this process's and a GPU-less process's scores of ``rows``."""
    from trainfarm_client.predictor import Predictor

    here = Predictor.load(pack, expected_manifest_sha256=manifest_sha256).predict_features(rows)
    rows_file, out = root / "rows.npy", root / "cpu.npy"
    np.save(rows_file, rows)
    args = {"pack": str(pack), "sha256": manifest_sha256, "rows": str(rows_file), "out": str(out)}
    env = dict(os.environ) | {"CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", CPU_BOT, json.dumps(args)], env=env, check=True, timeout=600)
    return float(np.abs(np.load(out) - here).max())


def main() -> dict[str, object]:
    """Measure on a GPU machine; elsewhere return why nothing was measured."""
    gpus = visible_gpus()
    if not gpus:
        console.print("bench gpu: no GPU visible (CUDA_VISIBLE_DEVICES / nvidia-smi -L): not measured")
        return {"measured": False, "reason": "no GPU visible on the machine that ran the benchmarks"}
    from trainfarm.shared.training.meta_stage import build_version
    from trainfarm.workers import stages
    from trainfarm.workers.payloads import RunJob
    from trainfarm.workers.runs import claim_run

    source = bar_file(SYMBOL)
    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        root = Path(tmp)
        os.environ["FARM_HOME"] = str(root / "home")
        get_settings.cache_clear()
        try:
            config = get_settings().load_config()
            open_store().import_file(source, SYMBOL)
            # The snapshot a real run builds (training window, warm-up, splits): a claimed run's prepare.
            claimed = claim_run(SYMBOL, TF.value, "bench gpu")
            stage = stages.prepare(RunJob(run_id=claimed.run_id, symbol=SYMBOL, timeframe=TF.value))
            assert stage is not None and stages.launched(stage)
            snapshot = stages.load_run_snapshot(stage)
            rows, fitted = _fits(snapshot, config, root)
            built = build_version(
                stage, snapshot, fitted["results"], root / "cuda", threads=available_cores(),
                run_created_at=datetime.now(UTC),
            )  # fmt: skip
            test = snapshot.frame().filter(pl.col("split") == "test").select(FEATURE_NAMES).to_numpy()
            difference = _cpu_bot_difference(built.path, built.manifest_sha256, test, root)
        finally:
            embedded_redis().stop()
            get_settings.cache_clear()
    print_table(
        f"fit seconds on {snapshot.rows} rows of {SYMBOL} {TF.value} (GPU {', '.join(gpus)})",
        ["model", "GPU s", "CPU 1 thread s", f"CPU {available_cores()} threads s", "x 1 thread", "x all"],
        rows,
    )
    console.print(
        f"GPU-trained pack on a CPU-only bot: largest difference {difference:.2e}, {len(test)} rows"
    )
    return {
        "measured": True,
        "gpus": gpus,
        "rows": snapshot.rows,
        "fit_s": {m: {k: round(v, 3) for k, v in t.items()} for m, t in fitted["fits"].items()},
        "cpu_bot_max_abs_difference": difference,
        "cpu_bot_rows": len(test),
    }


if __name__ == "__main__":
    main()
