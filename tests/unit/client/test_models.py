"""Predicting with a pack's models: one thread for a bot's few rows, XGBoost without a DMatrix, and neither
changes a single probability (on the session's real pack: ``tests/integration/client/test_models.py``).

The farm trains and evaluates with these same functions, passing its thread count; a bot passes none.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from trainfarm_client.models import (
    SINGLE_THREAD_ROWS,
    MetaBooster,
    predict_meta_proba,
    threads_for,
)


def test_threads_for_a_call() -> None:
    assert threads_for(1, None) == 1
    assert threads_for(SINGLE_THREAD_ROWS, None) == 1
    assert threads_for(SINGLE_THREAD_ROWS + 1, None) is None  # the library's default: every core
    assert threads_for(1, 4) == 4 and threads_for(10 * SINGLE_THREAD_ROWS, 2) == 2  # the farm's count


def test_the_lightgbm_stacker_scores_a_row_as_in_a_batch() -> None:
    """The 55-feature LightGBM stacker (and format-1 meta-learner): one thread for one row, same values."""
    rng = np.random.default_rng(3)
    x = rng.random((SINGLE_THREAD_ROWS + 200, 55))
    y = rng.integers(0, 3, x.shape[0])
    params = {"objective": "multiclass", "num_class": 3, "num_leaves": 7, "verbosity": -1, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=20)
    meta = MetaBooster.from_text(booster.model_to_string())
    batch = meta.predict_proba(x)
    single = np.concatenate([meta.predict_proba(x[i : i + 1]) for i in range(0, x.shape[0], 60)])
    np.testing.assert_array_equal(single, batch[::60])
    for threads in (1, 2):
        np.testing.assert_array_equal(
            predict_meta_proba(meta.booster, x, num_iteration=meta.best_iteration, threads=threads), batch
        )
