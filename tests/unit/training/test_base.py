"""train_base_model on a real BTC 1h snapshot: all 8 models, OOF layout, rounds chosen on the purged inner
holdout and shared by folds and final fit, reproducibility, idempotency."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import catboost
import lightgbm
import numpy as np
import polars as pl
import pytest
import xgboost

from trainfarm.shared.atomicio import sha256_file
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, build_snapshot
from trainfarm.shared.dataset.splits import oof_index
from trainfarm.shared.errors import ConfigError, DatasetError
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training import BaseModelResult, result_path, train_base_model
from trainfarm.shared.training import base as base_module
from trainfarm.shared.training.base import BOOSTED_METRIC_KEYS, METRIC_KEYS, write_npz
from trainfarm.shared.zoo import MODEL_NAMES, ModelSpec, get_spec
from trainfarm.shared.zoo import family as real_family
from trainfarm.shared.zoo.attributions import attributing
from trainfarm.shared.zoo.spec import FitOptions

CONFIG = FarmConfig.model_validate({"training": {"base_rounds": 20}})
RUN = "run-1"


@pytest.fixture(scope="module")
def snapshot(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSnapshot:
    bars = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    root = tmp_path_factory.mktemp("datasets")
    return build_snapshot(bars, symbol="BTC_USDT", timeframe=Timeframe.H1, config=CONFIG, root=root)


def _train(snapshot: DatasetSnapshot, model: str, work_dir: Path, **kwargs: Any) -> BaseModelResult:
    options: dict[str, Any] = {"run_id": RUN, "training": CONFIG.training, "threads": 2, **kwargs}
    return train_base_model(snapshot, model, work_dir, splits=CONFIG.splits, **options)


@pytest.fixture(scope="module")
def trained(
    snapshot: DatasetSnapshot, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, BaseModelResult]]:
    work_dir = tmp_path_factory.mktemp("run")
    return work_dir, {name: _train(snapshot, name, work_dir) for name in MODEL_NAMES}


def _arrays(work_dir: Path, result: BaseModelResult) -> dict[str, np.ndarray[Any, Any]]:
    with np.load(work_dir / result.predictions_file, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _split_x(snapshot: DatasetSnapshot, split: str) -> np.ndarray[Any, Any]:
    part = snapshot.frame().filter(pl.col("split") == split)
    return part.select(FEATURE_NAMES).to_numpy().astype(np.float64)


def _folds(snapshot: DatasetSnapshot, frame: pl.DataFrame, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "n_folds": CONFIG.splits.oof_folds,
        "min_train_rows": CONFIG.splits.min_fold_train_rows,
        "min_train_share": CONFIG.splits.oof_min_train_share,
        **kwargs,
    }
    return snapshot.folds(frame, **options)


def _rounds_in(model: Any) -> int:
    """The boosting rounds a fitted or loaded model holds, read with its library's own API."""
    if isinstance(model, lightgbm.Booster):
        return int(model.current_iteration())
    if isinstance(model, xgboost.Booster):
        return int(model.num_boosted_rounds())
    assert isinstance(model, catboost.CatBoostClassifier), type(model)
    return int(model.tree_count_)


def _rounds_in_file(name: str, path: Path) -> int:
    spec = get_spec(name)
    if spec.family == "lightgbm":
        return _rounds_in(lightgbm.Booster(model_file=str(path)))
    if spec.family == "xgboost":
        booster = xgboost.Booster()
        booster.load_model(bytearray(path.read_bytes()))
        return _rounds_in(booster)
    model = catboost.CatBoostClassifier()
    model.load_model(str(path), format="cbm")
    return _rounds_in(model)


@pytest.mark.slow  # trains the whole zoo (the module's trained fixture)
def test_every_model_trains_with_valid_probabilities(
    snapshot: DatasetSnapshot, trained: tuple[Path, dict[str, BaseModelResult]]
) -> None:
    work_dir, results = trained
    frame = snapshot.frame()
    folds = _folds(snapshot, frame)
    rows = snapshot.split_rows
    scored = np.zeros(rows["train"], dtype=bool)
    scored[oof_index(folds)] = True
    first_chunk = folds[0].valid_idx[0]
    assert not scored[:first_chunk].any() and scored[first_chunk:].all()
    # Every fold trains on at least half the train split: comparable to the final fit on all of it.
    assert min(f.train_idx.size for f in folds) >= CONFIG.splits.oof_min_train_share * rows["train"]
    for name, result in results.items():
        spec = get_spec(name)
        assert (result.run_id, result.model, result.family, result.device) == (RUN, name, spec.family, "cpu")
        assert result.worker == socket.gethostname()
        assert result.model_file == f"base/{name}.{spec.file_ext}"
        assert result.predictions_file == f"base/{name}.npz"
        assert sha256_file(work_dir / result.model_file) == result.model_sha256
        assert sha256_file(work_dir / result.predictions_file) == result.predictions_sha256
        stored = json.loads(result_path(work_dir, name).read_text())
        assert stored == result.to_json()
        arrays = _arrays(work_dir, result)
        # A model with exact attributions also carries their per-feature summary on two splits.
        explained = ["attributions_calibration", "attributions_test"] if attributing(spec) else []
        assert sorted(arrays) == sorted(["calibration", "oof", "test", *explained]), name
        for key in explained:
            assert arrays[key].shape == (len(FEATURE_NAMES),) and (arrays[key] >= 0).all()
        oof = arrays["oof"]
        assert oof.shape == (rows["train"], 3)
        # OOF NaN rows are exactly the first chunk, which no fold validates on.
        assert np.array_equal(np.isnan(oof).any(axis=1), ~scored), name
        assert np.isnan(oof[:first_chunk]).all()
        for key, n in (("oof", rows["train"]), ("calibration", rows["calibration"]), ("test", rows["test"])):
            proba = arrays[key][scored] if key == "oof" else arrays[key]
            assert arrays[key].shape == (n, 3) and arrays[key].dtype == np.float64
            assert np.isfinite(proba).all() and (proba >= 0).all()
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert set(result.metrics) == set(METRIC_KEYS) | set(BOOSTED_METRIC_KEYS if spec.boosted else ())
        assert result.metrics["oof_rows"] == float(scored.sum())
        rounds = result.metrics["rounds"]
        if spec.boosted:
            # Chosen by early stopping, at most the configured maximum; the saved model holds exactly that.
            assert 1 <= rounds <= CONFIG.training.base_rounds and rounds == int(rounds), (name, rounds)
            assert _rounds_in_file(name, work_dir / result.model_file) == rounds, name
            assert 0.5 < result.metrics["inner_holdout_logloss"] < 1.5, name
        else:
            assert rounds == CONFIG.training.base_rounds, name  # no rounds to choose: the configured budget
        for key in ("oof_logloss", "calibration_logloss", "test_logloss"):
            # Finite and in the range of real models on noisy returns (log 3 = 1.0986 is a uniform guess).
            assert 0.5 < result.metrics[key] < 1.5, (name, key, result.metrics[key])
        assert math.isfinite(result.seconds) and result.seconds > 0


@pytest.mark.slow  # trains the whole zoo (the module's trained fixture)
def test_predictions_are_what_the_saved_model_computes(
    snapshot: DatasetSnapshot, trained: tuple[Path, dict[str, BaseModelResult]]
) -> None:
    work_dir, results = trained
    x_cal, x_test = _split_x(snapshot, "calibration"), _split_x(snapshot, "test")
    for name, result in results.items():
        fam = real_family(get_spec(name))
        model = fam.load(work_dir / result.model_file)
        arrays = _arrays(work_dir, result)
        np.testing.assert_array_equal(fam.predict_proba(model, x_cal, threads=2), arrays["calibration"])
        np.testing.assert_array_equal(fam.predict_proba(model, x_test, threads=2), arrays["test"])


@pytest.mark.slow  # trains the whole zoo (the module's trained fixture)
def test_same_seed_reproduces_models_and_predictions(
    snapshot: DatasetSnapshot, trained: tuple[Path, dict[str, BaseModelResult]], tmp_path: Path
) -> None:
    work_dir, results = trained
    for name, first in results.items():
        again = _train(snapshot, name, tmp_path)
        # LightGBM and XGBoost are byte-identical by construction; CatBoost (volatile metadata dropped)
        # and the sklearn JSON are too, so a retrain after a crash reports the same hashes.
        assert again.model_sha256 == first.model_sha256, name
        assert again.predictions_sha256 == first.predictions_sha256, name
        assert again.metrics == first.metrics, name
        for key, array in _arrays(work_dir, first).items():
            np.testing.assert_array_equal(_arrays(tmp_path, again)[key], array)


@pytest.mark.slow  # trains the whole zoo (the module's trained fixture)
def test_recall_returns_the_stored_result_without_training(
    snapshot: DatasetSnapshot,
    trained: tuple[Path, dict[str, BaseModelResult]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work_dir, results = trained
    files = sorted((work_dir / "base").iterdir())
    mtimes = {path: path.stat().st_mtime_ns for path in files}

    def no_training(spec: ModelSpec) -> Any:
        raise AssertionError(f"{spec.name} was retrained")

    monkeypatch.setattr(base_module, "family", no_training)
    for name, first in results.items():
        # Even on another worker and device: a redelivered message gets the first delivery's result.
        again = _train(snapshot, name, work_dir, worker="other-host", device="cuda")
        assert again == first
        assert again.to_json() == first.to_json()
    assert sorted((work_dir / "base").iterdir()) == files
    assert {path: path.stat().st_mtime_ns for path in files} == mtimes


@pytest.mark.slow  # trains the whole zoo (the module's trained fixture)
def test_changed_files_or_another_run_retrain(
    snapshot: DatasetSnapshot,
    trained: tuple[Path, dict[str, BaseModelResult]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, results = trained
    work_dir = tmp_path / "run"
    shutil.copytree(source, work_dir)
    fits: list[str] = []

    def counting(spec: ModelSpec) -> Any:
        fits.append(spec.name)
        return real_family(spec)

    monkeypatch.setattr(base_module, "family", counting)
    model_file = work_dir / results["lgbm_gbdt"].model_file
    model_file.write_bytes(model_file.read_bytes() + b"\n")  # corrupted after the result was written
    (work_dir / results["xgb_shallow"].predictions_file).unlink()
    result_path(work_dir, "sk_mlp").write_text("{not json")

    retrained = {name: _train(snapshot, name, work_dir, device="cuda") for name in results}
    assert fits == ["lgbm_gbdt", "xgb_shallow", "sk_mlp"]
    for name in fits:
        assert retrained[name].model_sha256 == results[name].model_sha256  # deterministic retrain
        assert sha256_file(work_dir / retrained[name].model_file) == results[name].model_sha256
    assert retrained["lgbm_gbdt"].device == "cpu"  # LightGBM has no GPU variant: trained on the CPU
    assert retrained["xgb_shallow"].device == "cuda"  # ...stored; device is part of the result

    fits.clear()
    other = _train(snapshot, "sk_logreg", work_dir, run_id="run-2")
    assert fits == ["sk_logreg"] and other.run_id == "run-2"


def test_invalid_override_raises_the_library_error(snapshot: DatasetSnapshot, tmp_path: Path) -> None:
    training = CONFIG.training.model_copy(update={"model_params": {"lgbm_gbdt": {"boosting": "nonsense"}}})
    with pytest.raises(lightgbm.basic.LightGBMError, match="nonsense"):
        _train(snapshot, "lgbm_gbdt", tmp_path, training=training)
    assert not result_path(tmp_path, "lgbm_gbdt").exists()


def test_class_absent_from_a_fold_names_model_and_fold(snapshot: DatasetSnapshot, tmp_path: Path) -> None:
    frame = snapshot.frame()
    folds = _folds(snapshot, frame, min_train_rows=10)
    first_chunk = int(folds[0].valid_idx[0])  # train rows come first in the snapshot's row order
    no_up = frame.with_row_index("i").with_columns(
        label=pl.when((pl.col("i") < first_chunk) & (pl.col("label") == 2))
        .then(pl.lit(1, dtype=pl.Int8))
        .otherwise(pl.col("label"))
    )
    path = tmp_path / "no_up.parquet"
    no_up.drop("i").write_parquet(path)
    edited = dataclasses.replace(snapshot, path=str(path), file_sha256=sha256_file(path))
    with pytest.raises(
        DatasetError, match=r"base model lgbm_gbdt, fold 1 of 4, before its own holdout: class 'up'"
    ):
        _train(edited, "lgbm_gbdt", tmp_path / "run")


class _RecordingFamily:
    """The real family of a model, recording each fit's rows, rounds, eval set and the model it returned."""

    def __init__(self, spec: ModelSpec) -> None:
        self.real = real_family(spec)
        self.fits: list[dict[str, Any]] = []

    def fit(
        self, spec: ModelSpec, x: Any, y: Any, w: Any, options: FitOptions, *, eval_set: Any = None
    ) -> Any:
        model = self.real.fit(spec, x, y, w, options, eval_set=eval_set)
        self.fits.append({"x": x, "model": model, "options": options, "eval_set": eval_set})
        return model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.parametrize("name", ["lgbm_gbdt", "xgb_hist", "cat_depthwise"])
def test_every_fit_early_stops_on_the_purged_tail_of_its_own_rows(
    name: str, snapshot: DatasetSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder: list[_RecordingFamily] = []

    def recording(spec: ModelSpec) -> Any:
        recorder.append(_RecordingFamily(spec))
        return recorder[-1]

    monkeypatch.setattr(base_module, "family", recording)
    training = CONFIG.training.model_copy(update={"base_rounds": 60})
    result = _train(snapshot, name, tmp_path, training=training)
    fits = recorder[0].fits
    frame = snapshot.frame()
    train = frame.filter(pl.col("split") == "train")
    train_x = train.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    folds = _folds(snapshot, frame)
    assert len(fits) == 1 + len(folds) + 1  # inner-holdout fit, one early-stopped fit per fold, final

    # 1. The run's early-stopping fit: base_rounds at most, on the rows before the holdout minus the purged.
    probe, fold_fits, final = fits[0], fits[1:-1], fits[-1]
    assert probe["options"].rounds == 60
    assert probe["options"].early_stopping_rounds == CONFIG.training.early_stopping_rounds
    holdout = snapshot.inner_holdout(frame, fraction=0.2, min_train_rows=CONFIG.splits.min_fold_train_rows)
    first_held = int(holdout.valid_idx[0])
    assert first_held == train.height - round(0.2 * train.height)
    np.testing.assert_array_equal(probe["eval_set"][0], train_x[first_held:])
    np.testing.assert_array_equal(probe["x"], train_x[holdout.train_idx])
    fitted_ends = train["label_end"].gather(holdout.train_idx)
    assert fitted_ends.max() < train["date"][first_held]  # type: ignore[operator]
    horizon = CONFIG.params(Timeframe.H1).label_horizon
    assert holdout.train_idx.size == first_held - horizon  # the last horizon rows before it are purged
    assert np.array_equal(holdout.train_idx, np.arange(first_held - horizon))

    # 2. Each fold early-stops on the purged last fifth of ITS OWN training rows, all before its validation
    #    chunk (the run's holdout lies inside the out-of-fold region: its rounds would be tuned on rows the
    #    fold models predict), and predicts with that fit.
    assert any(f.valid_idx[-1] >= first_held for f in folds)  # the leak the per-fold rule removes
    for fit, fold in zip(fold_fits, folds, strict=True):
        own = fold.train_idx
        tail_start = own.size - round(0.2 * own.size)
        assert fit["options"].rounds == 60
        assert fit["options"].early_stopping_rounds == CONFIG.training.early_stopping_rounds
        np.testing.assert_array_equal(fit["eval_set"][0], train_x[own[tail_start:]])
        assert fit["x"].shape[0] == tail_start - horizon  # purged against its own tail
        np.testing.assert_array_equal(fit["x"], train_x[own[: tail_start - horizon]])
        assert own[-1] < fold.valid_idx[0]  # every row it fits or stops on precedes what it predicts

    # 3. The final fit: the run's chosen rounds on the whole split, no eval set.
    chosen = _rounds_in(probe["model"])
    assert 1 <= chosen <= 60
    assert result.metrics["rounds"] == chosen
    assert final["options"].rounds == chosen and final["eval_set"] is None
    assert final["options"].early_stopping_rounds is None
    assert _rounds_in(final["model"]) == chosen and final["x"].shape[0] == train.height
    assert _rounds_in_file(name, tmp_path / result.model_file) == chosen


def test_early_stopping_stops_early_on_noise_labels(snapshot: DatasetSnapshot, tmp_path: Path) -> None:
    """Train labels shuffled: nothing to learn, so the holdout loss rises from the first rounds on."""
    frame = snapshot.frame()
    n_train = snapshot.split_rows["train"]  # train rows come first in the snapshot's row order
    rng = np.random.default_rng(3)
    labels = frame["label"].to_numpy().copy()
    labels[:n_train] = rng.permutation(labels[:n_train])
    path = tmp_path / "noise.parquet"
    frame.with_columns(label=pl.Series(labels, dtype=frame["label"].dtype)).write_parquet(path)
    noise = dataclasses.replace(snapshot, path=str(path), file_sha256=sha256_file(path))
    training = CONFIG.training.model_copy(update={"base_rounds": 150})
    for name in ("lgbm_gbdt", "xgb_hist"):
        result = _train(noise, name, tmp_path / "run", training=training)
        # Early stopping fired: the best round lies at least `patience` rounds before the maximum.
        assert result.metrics["rounds"] <= 150 - training.early_stopping_rounds, (name, result.metrics)
        assert _rounds_in_file(name, tmp_path / "run" / result.model_file) == result.metrics["rounds"]


def test_unknown_model_and_bad_arguments(snapshot: DatasetSnapshot, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid models: lgbm_gbdt"):
        _train(snapshot, "lgbm_typo", tmp_path)
    with pytest.raises(ValueError, match="threads"):
        _train(snapshot, "sk_logreg", tmp_path, threads=0)
    with pytest.raises(ValueError, match="device"):
        _train(snapshot, "sk_logreg", tmp_path, device="tpu")
    typo = CONFIG.training.model_copy(update={"model_params": {"lgbm_gdbt": {"num_leaves": 7}}})
    with pytest.raises(ConfigError, match=r"unknown models \['lgbm_gdbt'\]"):
        _train(snapshot, "sk_logreg", tmp_path, training=typo)


@pytest.mark.slow  # trains the whole zoo (the module's trained fixture)
def test_result_json_round_trip_and_validation(trained: tuple[Path, dict[str, BaseModelResult]]) -> None:
    result = trained[1]["xgb_hist"]
    data = json.loads(json.dumps(result.to_json()))
    assert BaseModelResult.from_json(data) == result
    assert len(json.dumps(data)) < 1000  # small: it travels through the broker
    bad: dict[str, dict[str, object]] = {
        "missing keys": {k: v for k, v in data.items() if k != "model_sha256"},
        "unknown keys": {**data, "extra": 1},
        "non-empty string": {**data, "worker": ""},
        "hex sha256": {**data, "predictions_sha256": "abc"},
        "relative to the work dir": {**data, "model_file": "/etc/passwd"},
        "finite number": {**data, "seconds": True},
        "metrics lack": {**data, "metrics": {"oof_logloss": 1.0}},
        r"metrics lack \['rounds'\]": {
            **data,
            "metrics": {k: v for k, v in data["metrics"].items() if k != "rounds"},
        },
        "metrics must be an object": {**data, "metrics": [1.0]},
    }
    for message, payload in bad.items():
        with pytest.raises(ValueError, match=message):
            BaseModelResult.from_json(payload)
    with pytest.raises(ValueError, match="finite number"):
        BaseModelResult.from_json({**data, "metrics": {**data["metrics"], "test_logloss": "1.0"}})


def test_npz_is_byte_deterministic(tmp_path: Path) -> None:
    arrays = {"oof": np.full((4, 3), np.nan), "test": np.eye(3)}
    write_npz(tmp_path / "a", arrays)
    write_npz(tmp_path / "b", arrays)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    with np.load(tmp_path / "a", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["oof", "test"]
        np.testing.assert_array_equal(npz["test"], np.eye(3))
        assert np.isnan(npz["oof"]).all()


def test_training_holds_blas_and_openmp_to_the_tasks_threads(
    snapshot: DatasetSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker slot shares the cores: pools sized to the machine would oversubscribe them."""
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    seen: list[dict[str, int]] = []
    real_splits = base_module._splits

    def recording(frame: pl.DataFrame, names: Sequence[str]) -> Any:
        seen.append({i["internal_api"]: int(i["num_threads"]) for i in threadpool_info()})
        return real_splits(frame, names)

    monkeypatch.setattr(base_module, "_splits", recording)
    _train(snapshot, "sk_logreg", tmp_path, threads=1)
    (inside,) = seen
    assert {"openblas", "mkl", "blis", "flexiblas"} & inside.keys(), inside  # NumPy's BLAS is loaded
    assert set(inside.values()) == {1}, inside
