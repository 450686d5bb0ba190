"""Permutation importance of a stacker: a model it reads matters by how much shuffling it costs; a model it
does not read scores exactly zero; the same seed gives the same figures."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trainfarm.shared.stacking.importance import permutation_importance
from trainfarm_client.arrays import FloatArray


class ReadsOne:
    """A stacker that passes one base model's probabilities through (what ``best_base`` does)."""

    def __init__(self, model: str) -> None:
        self.model = model

    def predict(self, base: Mapping[str, FloatArray], n_rows: int) -> FloatArray:
        return base[self.model]


def test_the_model_a_stacker_reads_matters_and_the_others_do_not() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=400)
    informative = np.full((400, 3), 0.1)
    informative[np.arange(400), y] = 0.8  # right most of the time
    noise = rng.dirichlet(np.ones(3), size=400)
    base = {"good": informative, "noise": noise}
    importance = permutation_importance(ReadsOne("good"), base, y)
    assert importance["noise"] == 0.0
    assert importance["good"] > 0.5  # shuffled, its confident rows are mostly wrong
    assert permutation_importance(ReadsOne("good"), base, y) == importance  # reproducible
