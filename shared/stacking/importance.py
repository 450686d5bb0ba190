"""Which base models the stacked model relied on: permutation importance on the calibration split.

For each base model, its calibration-split probabilities are shuffled across rows (the three columns of a
row together) and the stacker's log-loss on the calibration labels is measured again; the importance is
the mean increase over ``repeats`` shuffles with a fixed seed (so a run is reproducible). The stacker was
fitted on out-of-fold rows of train, never on calibration, so this is measured out of sample. A base model
the stacker does not read (another model was ``best_base``, or the prior was chosen) scores exactly 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from trainfarm.shared.evaluation.metrics import log_loss
from trainfarm_client.arrays import FloatArray, IntArray

#: Shuffles per base model.
REPEATS = 5


class Stacker(Protocol):
    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray: ...


def permutation_importance(
    stacker: Stacker, base: Mapping[str, FloatArray], y: IntArray, *, repeats: int = REPEATS, seed: int = 7
) -> dict[str, float]:
    """Base model -> mean log-loss increase of ``stacker`` when that model's rows are shuffled."""
    n = len(y)
    baseline = log_loss(stacker.predict(base, n), y)
    rng = np.random.default_rng(seed)
    out = {}
    for model in base:
        losses = []
        for _ in range(repeats):
            shuffled = {**base, model: base[model][rng.permutation(n)]}
            losses.append(log_loss(stacker.predict(shuffled, n), y))
        out[model] = float(np.mean(losses) - baseline)
    return out
