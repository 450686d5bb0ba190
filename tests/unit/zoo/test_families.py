"""The four family modules on real BTC features: fit, early stopping, probabilities, save/load round trips,
no pickle."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.dataset.labels import class_weights, sample_weights
from trainfarm.shared.dataset.snapshot import build_snapshot
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.zoo import MODEL_NAMES, catboost_family, family, get_spec, sklearn_family
from trainfarm.shared.zoo.spec import Device, EvalSet, FitOptions, check_fit_inputs

ROUNDS = 10


@dataclass(frozen=True)
class Data:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    w: npt.NDArray[np.float64]
    x_new: npt.NDArray[np.float64]
    y_new: npt.NDArray[np.int64]


@pytest.fixture(scope="module")
def data(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Data:
    bars = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    snapshot = build_snapshot(
        bars,
        symbol="BTC_USDT",
        timeframe=Timeframe.H1,
        config=FarmConfig(),
        root=tmp_path_factory.mktemp("datasets"),
    )
    frame = snapshot.frame()
    train = frame.filter(pl.col("split") == "train").head(1500)
    new = frame.filter(pl.col("split") == "calibration").head(300)
    y = train["label"].to_numpy().astype(np.int64)
    return Data(
        x=train.select(FEATURE_NAMES).to_numpy().astype(np.float64),
        y=y,
        w=sample_weights(y, class_weights(y)),
        x_new=new.select(FEATURE_NAMES).to_numpy().astype(np.float64),
        y_new=new["label"].to_numpy().astype(np.int64),
    )


def _fit(
    name: str,
    data: Data,
    *,
    seed: int = 7,
    device: Device = "cpu",
    rounds: int = ROUNDS,
    eval_set: EvalSet | None = None,
    early_stopping_rounds: int | None = None,
) -> Any:
    spec = get_spec(name)
    options = FitOptions(
        rounds=rounds,
        learning_rate=0.1,
        seed=seed,
        threads=1,
        device=device,
        early_stopping_rounds=early_stopping_rounds,
    )
    return family(spec).fit(spec, data.x, data.y, data.w, options, eval_set=eval_set)


BOOSTED = [name for name in MODEL_NAMES if get_spec(name).boosted]


def _assert_probabilities(proba: npt.NDArray[np.float64], rows: int) -> None:
    assert proba.dtype == np.float64
    assert proba.shape == (rows, 3)
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_predict_save_load_round_trip(name: str, data: Data, tmp_path: Path) -> None:
    spec = get_spec(name)
    fam = family(spec)
    model = _fit(name, data)
    proba = fam.predict_proba(model, data.x_new, threads=1)
    _assert_probabilities(proba, data.x_new.shape[0])
    # The atomic writer hands save() a ".tmp" path: the format must not depend on the suffix.
    path = tmp_path / "model.tmp"
    fam.save(model, path)
    loaded = fam.load(path)
    again = fam.predict_proba(loaded, data.x_new, threads=1)
    if spec.family == "sklearn":
        np.testing.assert_allclose(again, proba, rtol=0, atol=1e-9)
    else:
        np.testing.assert_array_equal(again, proba)
    if spec.family != "catboost":  # CatBoost re-serialises a loaded model with another header layout
        # A loaded model saves back to the same bytes (nothing is lost or added in the round trip).
        fam.save(loaded, tmp_path / "again.tmp")
        assert (tmp_path / "again.tmp").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_gives_identical_model_bytes(name: str, data: Data, tmp_path: Path) -> None:
    fam = family(get_spec(name))
    paths = [tmp_path / "a", tmp_path / "b"]
    for path in paths:
        fam.save(_fit(name, data, seed=11), path)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("name", ["lgbm_gbdt", "xgb_hist", "cat_symmetric", "sk_mlp"])
def test_another_seed_gives_another_model(name: str, data: Data, tmp_path: Path) -> None:
    fam = family(get_spec(name))
    fam.save(_fit(name, data, seed=1), tmp_path / "a")
    fam.save(_fit(name, data, seed=2), tmp_path / "b")
    assert (tmp_path / "a").read_bytes() != (tmp_path / "b").read_bytes()


@pytest.mark.parametrize("name", ["sk_logreg", "sk_mlp"])
def test_sklearn_json_predictor_matches_sklearn_without_pickle(
    name: str, data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fit(name, data)
    assert isinstance(model, sklearn_family.FittedSklearn)
    expected = model.estimator.predict_proba(model.scaler.transform(data.x_new))
    path = tmp_path / f"{name}.json"
    sklearn_family.save(model, path)
    raw = path.read_bytes()
    assert not raw.startswith(b"\x80")  # a pickle stream starts with its protocol opcode
    doc = json.loads(raw)
    assert doc["format"] == "trainfarm-sklearn-numpy"
    assert doc["classes"] == [0, 1, 2]

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("load() must not unpickle anything")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    loaded = sklearn_family.load(path)
    assert isinstance(loaded, sklearn_family.NumpyClassifier)
    got = loaded.predict_proba(data.x_new)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_sklearn_load_refuses_broken_documents(data: Data, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    sklearn_family.save(_fit("sk_mlp", data), path)
    doc = json.loads(path.read_text())
    cases = {
        "format": {**doc, "format": "pickle"},
        "width": {**doc, "layers": doc["layers"][:-1]},
        "activation": {**doc, "hidden_activation": "gelu"},
        "scaler": {**doc, "scaler": {"mean": doc["scaler"]["mean"][:-1], "scale": doc["scaler"]["scale"]}},
    }
    for case, bad in cases.items():
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="not a usable sklearn model file"):
            sklearn_family.load(path)
            pytest.fail(f"broken {case} was accepted")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        sklearn_family.load(path)


def test_fit_passes_the_gpu_params_to_the_library(data: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU here: capture what the libraries would be called with instead of training on one.
    seen: dict[str, dict[str, object]] = {}

    def fake_train(params: dict[str, object], dtrain: object, num_boost_round: int) -> str:
        seen["xgboost"] = dict(params)
        seen["xgboost_rounds"] = {"rounds": num_boost_round}
        return "booster"

    class FakeCatBoost:
        def __init__(self, **kwargs: object) -> None:
            seen["catboost"] = kwargs

        def fit(self, x: object, y: object, sample_weight: object) -> None:
            assert sample_weight is data.w

    monkeypatch.setattr("trainfarm.shared.zoo.xgboost_family.xgb.train", fake_train)
    monkeypatch.setattr(catboost_family, "CatBoostClassifier", FakeCatBoost)
    _fit("xgb_shallow", data, device="cuda")
    _fit("cat_depthwise", data, device="cuda")
    assert seen["xgboost"]["device"] == "cuda"
    assert seen["xgboost"]["max_depth"] == 2
    assert "num_boost_round" not in seen["xgboost"]  # an argument of xgb.train, not a booster param
    assert seen["xgboost_rounds"] == {"rounds": ROUNDS}
    assert (seen["catboost"]["task_type"], seen["catboost"]["devices"]) == ("GPU", "0")
    assert seen["catboost"]["grow_policy"] == "Depthwise"
    _fit("xgb_shallow", data, device="cpu")
    assert seen["xgboost"].get("device") == "cpu"


def test_fit_refuses_mismatched_shapes(data: Data) -> None:
    with pytest.raises(ValueError, match="differ in rows"):
        check_fit_inputs(data.x, data.y[:-1], data.w)
    with pytest.raises(ValueError, match="2-d"):
        check_fit_inputs(data.x[:, 0], data.y, data.w)


def _eval_set(data: Data) -> tuple[Any, Any, Any]:
    # Weighted like the fit's rows (as the base-model training does).
    return data.x_new, data.y_new, sample_weights(data.y_new, class_weights(data.y))


@pytest.mark.parametrize("name", BOOSTED)
def test_early_stopped_fit_holds_its_best_rounds_and_equals_a_plain_fit_of_that_many(
    name: str, data: Data, tmp_path: Path
) -> None:
    fam = family(get_spec(name))
    early = _fit(name, data, rounds=80, eval_set=_eval_set(data), early_stopping_rounds=10)
    best = fam.best_rounds(early)
    assert 1 <= best <= 80
    plain = _fit(name, data, rounds=best)
    assert fam.best_rounds(plain) == best
    # Fitting with an eval set changes nothing but where the fit stops: the same model, the same outputs.
    np.testing.assert_array_equal(
        fam.predict_proba(early, data.x_new, threads=1), fam.predict_proba(plain, data.x_new, threads=1)
    )
    fam.save(early, tmp_path / "early")
    assert fam.best_rounds(fam.load(tmp_path / "early")) == best  # the file holds only those rounds


@pytest.mark.parametrize("name", BOOSTED)
def test_early_stopping_stops_before_the_maximum_on_noise(name: str) -> None:
    rng = np.random.default_rng(5)
    x, x_eval = rng.normal(size=(2000, 22)), rng.normal(size=(500, 22))
    y, y_eval = rng.integers(0, 3, 2000), rng.integers(0, 3, 500)
    weights = class_weights(y)
    data = Data(x=x, y=y, w=sample_weights(y, weights), x_new=x_eval, y_new=y_eval)
    model = _fit(name, data, rounds=150, eval_set=_eval_set(data), early_stopping_rounds=20)
    # Stopped: its best round lies at least the patience before the maximum (nothing to learn from noise).
    assert family(get_spec(name)).best_rounds(model) <= 150 - 20


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_best_rounds_of_a_plain_fit(name: str, data: Data) -> None:
    expected = ROUNDS if get_spec(name).boosted else 0  # the sklearn models have no rounds
    assert family(get_spec(name)).best_rounds(_fit(name, data)) == expected


def test_early_stopping_arguments_are_checked(data: Data) -> None:
    held = _eval_set(data)
    with pytest.raises(ValueError, match="both eval_set and early_stopping_rounds"):
        _fit("lgbm_gbdt", data, eval_set=held)
    with pytest.raises(ValueError, match="both eval_set and early_stopping_rounds"):
        _fit("xgb_hist", data, early_stopping_rounds=5)
    with pytest.raises(ValueError, match="at least 1"):
        _fit("cat_symmetric", data, eval_set=held, early_stopping_rounds=0)
    with pytest.raises(ValueError, match="columns"):
        _fit("lgbm_gbdt", data, eval_set=(held[0][:, :-1], held[1], held[2]), early_stopping_rounds=5)
    with pytest.raises(ValueError, match="differ in rows"):
        _fit("xgb_hist", data, eval_set=(held[0], held[1][:-1], held[2]), early_stopping_rounds=5)
    with pytest.raises(ValueError, match="do not early-stop"):
        _fit("sk_mlp", data, eval_set=held, early_stopping_rounds=5)
