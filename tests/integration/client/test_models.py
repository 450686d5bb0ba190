"""The client's models on the session's real pack: one row scores as the batch, the thread count never
changes a probability, XGBoost predicts in place what a DMatrix gave."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from tests.support.packs import Pack
from trainfarm_client.features import FEATURE_NAMES
from trainfarm_client.models import (
    SINGLE_THREAD_ROWS,
    load_xgboost,
    predict_catboost,
    predict_lightgbm,
    predict_xgboost,
)
from trainfarm_client.predictor import Predictor
from trainfarm_client.probs import FloatArray, normalise_proba

TREE_PREDICTORS: dict[str, Callable[..., FloatArray]] = {
    "lightgbm": predict_lightgbm,
    "xgboost": predict_xgboost,
    "catboost": predict_catboost,
}


@pytest.fixture(scope="module")
def predictor(pack: Pack) -> Predictor:
    return Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)


@pytest.fixture(scope="module")
def rows(pack: Pack) -> FloatArray:
    """The snapshot's feature rows, as polars hands them out (Fortran order), repeated past
    SINGLE_THREAD_ROWS so a bot's batch of them runs on every core."""
    frame = pack.snapshot.frame().select(FEATURE_NAMES).to_numpy()
    copies = SINGLE_THREAD_ROWS // frame.shape[0] + 1
    out: FloatArray = np.asfortranarray(np.concatenate([frame] * copies))
    assert out.shape[0] > SINGLE_THREAD_ROWS
    return out


def test_one_row_at_a_time_scores_as_the_batch(predictor: Predictor, rows: FloatArray) -> None:
    """A live decision predicts one row on one thread; a batch many rows on every core: same values."""
    some = rows[:: max(1, rows.shape[0] // 150)]
    for model in predictor.base_models:
        batch = model.predict_proba(rows)
        assert batch.shape == (rows.shape[0], 3) and batch.dtype == np.float64
        single = np.concatenate([model.predict_proba(some[i : i + 1]) for i in range(some.shape[0])])
        expected = batch[:: max(1, rows.shape[0] // 150)]
        if model.kind == "sklearn":
            # numpy's matrix products sum a single row in another order than a block of rows (a BLAS
            # choice that predates the thread counts): equal to the last bits.
            np.testing.assert_allclose(single, expected, rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(single, expected, err_msg=model.name)


def test_the_thread_count_never_changes_a_probability(predictor: Predictor, rows: FloatArray) -> None:
    small = np.ascontiguousarray(rows[:7])
    for model in predictor.base_models:
        if model.kind not in TREE_PREDICTORS:
            continue
        predict = TREE_PREDICTORS[model.kind]
        for x in (small, rows):
            default = predict(model.model, x)
            for threads in (1, 2):
                np.testing.assert_array_equal(predict(model.model, x, threads=threads), default, model.name)


def test_xgboost_predicts_in_place_what_a_dmatrix_gave(predictor: Predictor, rows: FloatArray) -> None:
    """predict_xgboost used to build a DMatrix; inplace_predict gives the same float32 values."""
    boosters = [m.model for m in predictor.base_models if m.kind == "xgboost"]
    assert boosters
    inputs = {
        "fortran": rows,
        "c order": np.ascontiguousarray(rows),
        "one row": np.ascontiguousarray(rows[-1:]),
        "a strided slice": rows[::3],
    }
    for booster in boosters:
        for name, x in inputs.items():
            before = normalise_proba(booster.predict(xgb.DMatrix(x, nthread=-1)))
            np.testing.assert_array_equal(predict_xgboost(booster, x), before, err_msg=name)


def test_an_xgboost_thread_count_is_set_only_when_it_changes(
    pack: Pack, rows: FloatArray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting a parameter makes XGBoost reconfigure the booster at its next prediction: not per call."""
    entry = next(
        e
        for e in json.loads((pack.path / "manifest.json").read_text())["base_models"]
        if e["kind"] == "xgboost"
    )
    booster = load_xgboost(pack.path / entry["file"])
    calls: list[dict[str, Any]] = []
    original = booster.set_param

    def spy(params: dict[str, Any]) -> None:
        calls.append(dict(params))
        original(params)

    monkeypatch.setattr(booster, "set_param", spy)

    def nthread() -> str:
        return str(json.loads(booster.save_config())["learner"]["generic_param"]["nthread"])

    one = np.ascontiguousarray(rows[:1])
    for _ in range(3):
        predict_xgboost(booster, one)
    assert calls == [{"nthread": 1}] and nthread() == "1"
    for _ in range(2):
        predict_xgboost(booster, rows)
    assert calls[1:] == [{"nthread": 0}] and nthread() == "0"  # 0: every core
    predict_xgboost(booster, one, threads=2)
    assert calls[2:] == [{"nthread": 2}]
