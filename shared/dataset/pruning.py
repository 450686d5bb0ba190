"""Feature pruning (``[training] prune_features``): drop the features a model does not use on unseen rows.

Honest by construction: the decision is made on the train split alone. A LightGBM model is fitted on the
train rows before the purged inner holdout (the last ``inner_holdout_fraction`` of train, with the rows
whose labels reach into it purged), and each feature's permutation importance is measured on that
holdout: how much the holdout's log-loss rises when the feature's values are shuffled, averaged over
:data:`REPEATS` shuffles. A feature whose importance is not above zero is dropped. Calibration and test
rows are never looked at, so the gates still judge a candidate on rows nothing was chosen on.

When no feature is above zero (a market without a signal the model finds), nothing is dropped: every
column stays and the report says so. The snapshot records the dropped features and every importance;
the pack's manifest carries both (``features.dropped``, ``feature_pruning``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.labels import class_weights
from trainfarm.shared.dataset.splits import inner_holdout
from trainfarm.shared.evaluation.metrics import log_loss

#: Shuffles per feature; the importance is their mean.
REPEATS = 5
#: The pruning model: small, fixed and seeded, so one snapshot always prunes the same way.
_LEAVES = 15


@dataclass(frozen=True)
class Pruning:
    """What pruning decided, and on what."""

    dropped: tuple[str, ...]
    importance: dict[str, float]  #: mean rise of the holdout's log-loss when the feature is shuffled
    fit_rows: int
    holdout_rows: int
    note: str

    def to_json(self) -> dict[str, object]:
        return {
            "dropped": list(self.dropped),
            "importance": self.importance,
            "fit_rows": self.fit_rows,
            "holdout_rows": self.holdout_rows,
            "repeats": REPEATS,
            "note": self.note,
        }


def prune(frame: pl.DataFrame, names: Sequence[str], config: FarmConfig) -> Pruning:
    """Decide which of ``names`` to drop from a snapshot frame (its train split only; see the module)."""
    # Imported here: snapshots are built by the CLI too, which should not load LightGBM to start.
    import lightgbm as lgb

    training = config.training
    train = frame.filter(pl.col("split") == "train")
    fold = inner_holdout(
        train["date"],
        train["label_end"],
        fraction=training.inner_holdout_fraction,
        min_train_rows=config.splits.min_fold_train_rows,
    )
    x = np.ascontiguousarray(train.select(names).to_numpy(), dtype=np.float64)
    y = train["label"].cast(pl.Int64).to_numpy()
    fit, holdout = fold.train_idx, fold.valid_idx
    weights = class_weights(y[fit])
    model = lgb.LGBMClassifier(
        n_estimators=training.base_rounds,
        learning_rate=training.learning_rate,
        num_leaves=_LEAVES,
        random_state=training.seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(x[fit], y[fit], sample_weight=np.array([weights[int(c)] for c in y[fit]]))
    xh, yh = x[holdout], y[holdout]
    base = log_loss(model.predict_proba(xh), yh)
    rng = np.random.default_rng(training.seed)
    importance: dict[str, float] = {}
    for j, name in enumerate(names):
        rises = []
        for _ in range(REPEATS):
            shuffled = xh.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            rises.append(log_loss(model.predict_proba(shuffled), yh) - base)
        importance[name] = float(np.mean(rises))
    dropped = tuple(n for n in names if not importance[n] > 0.0)
    note = f"{len(dropped)} of {len(names)} features not above zero on the holdout"
    if len(dropped) == len(names):
        dropped, note = (), "no feature above zero on the holdout: none dropped"
    return Pruning(dropped, importance, int(fit.size), int(holdout.size), note)
