"""Feature pruning: decided on the train split alone, keeps what carries signal, drops what does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.pruning import prune

CONFIG = FarmConfig.model_validate({"training": {"base_rounds": 60, "prune_features": True}})
NOISE = [f"noise_{i}" for i in range(8)]
NAMES = ["signal", *NOISE]


def frame(rows: int = 3000, seed: int = 3, *, signal: bool = True) -> pl.DataFrame:
    """Hourly rows; the label follows ``signal`` (with a quarter of the labels random), never the noise."""
    rng = np.random.default_rng(seed)
    values = {name: rng.normal(size=rows) for name in NAMES}
    lean = values["signal"] if signal else rng.normal(size=rows)
    label = np.where(lean > 0.45, 2, np.where(lean < -0.45, 0, 1))
    random = rng.random(rows) < 0.25
    label[random] = rng.integers(0, 3, size=int(random.sum()))
    dates = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(rows)]
    split = np.array(["train"] * int(rows * 0.6) + ["calibration"] * int(rows * 0.2), dtype=object)
    split = np.concatenate([split, np.array(["test"] * (rows - split.size), dtype=object)])
    return pl.DataFrame(
        {
            "date": dates,
            "label_end": [d + timedelta(hours=6) for d in dates],
            "label": label,
            "split": split.tolist(),
            **values,
        }
    )


def test_the_signal_is_kept_and_what_is_dropped_is_exactly_what_is_not_above_zero() -> None:
    decided = prune(frame(), NAMES, CONFIG)
    assert "signal" not in decided.dropped
    assert decided.importance["signal"] > 0.05  # shuffling it costs the holdout real log-loss
    assert set(decided.dropped) == {n for n in NAMES if not decided.importance[n] > 0}
    assert decided.dropped  # unused noise columns are never split on: shuffling them changes nothing
    # The holdout is the purged tail of the train split: 20% of its 1800 rows, the 6-bar purge before it.
    assert decided.holdout_rows == 360 and decided.fit_rows == 1800 - 360 - 6


def test_calibration_and_test_rows_never_change_the_decision() -> None:
    base = frame()
    scrambled = base.with_columns(
        pl.when(pl.col("split") != "train").then(pl.col(n).shuffle(seed=1)).otherwise(pl.col(n)).alias(n)
        for n in NAMES
    ).with_columns(pl.when(pl.col("split") != "train").then(0).otherwise(pl.col("label")).alias("label"))
    assert prune(scrambled, NAMES, CONFIG) == prune(base, NAMES, CONFIG)


def test_nothing_is_dropped_when_nothing_is_above_zero() -> None:
    # Constant columns are never split on, so shuffling them changes nothing: every importance is 0, and
    # pruning keeps every column instead of leaving the models none.
    flat = frame().with_columns(pl.lit(1.0).alias("flat_a"), pl.lit(2.0).alias("flat_b"))
    decided = prune(flat, ["flat_a", "flat_b"], CONFIG)
    assert decided.importance == {"flat_a": 0.0, "flat_b": 0.0}
    assert decided.dropped == () and "none dropped" in decided.note
