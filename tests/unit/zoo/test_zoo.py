"""The zoo's declarations, routing, parameter layering and thread arithmetic (no training here)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.zoo import MODEL_NAMES, ZOO, ModelSpec, family, get_spec
from trainfarm.shared.zoo.spec import FitOptions
from trainfarm.shared.zoo.threads import available_cores, threads_per_task

REPO_ROOT = Path(__file__).resolve().parents[3]
ML_LIBRARIES = ("lightgbm", "xgboost", "catboost", "sklearn")


def _params(name: str, device: str = "cpu", overrides: dict[str, object] | None = None) -> dict[str, object]:
    spec = get_spec(name)
    return dict(
        family(spec).build_params(
            spec,
            FitOptions(
                rounds=20,
                learning_rate=0.1,
                seed=3,
                threads=2,
                device=spec.effective_device(device),
                overrides=overrides or {},  # type: ignore[arg-type]
            ),
        )
    )


def test_eight_models_declared_once() -> None:
    assert len(ZOO) == 8
    assert len(set(MODEL_NAMES)) == 8
    assert tuple(spec.name for spec in ZOO) == MODEL_NAMES
    assert Counter(spec.family for spec in ZOO) == {"lightgbm": 2, "xgboost": 2, "catboost": 2, "sklearn": 2}
    assert {spec.name: spec.file_ext for spec in ZOO} == {
        "lgbm_gbdt": "txt",
        "lgbm_extratrees": "txt",
        "xgb_hist": "ubj",
        "xgb_shallow": "ubj",
        "cat_symmetric": "cbm",
        "cat_depthwise": "cbm",
        "sk_logreg": "json",
        "sk_mlp": "json",
    }
    assert get_spec("lgbm_extratrees").params["extra_trees"] is True
    assert get_spec("xgb_shallow").params["max_depth"] == 2
    assert get_spec("cat_depthwise").params["grow_policy"] == "Depthwise"


def test_get_spec_names_the_valid_models() -> None:
    assert get_spec("xgb_hist").family == "xgboost"
    with pytest.raises(ConfigError, match="unknown base model 'xgb_typo'") as err:
        get_spec("xgb_typo")
    assert all(name in str(err.value) for name in MODEL_NAMES)


def test_specs_are_read_only() -> None:
    spec = get_spec("lgbm_gbdt")
    with pytest.raises(TypeError):
        spec.params["num_leaves"] = 255  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="not gpu_capable"):
        ModelSpec("x", "lightgbm", {}, gpu_capable=False, gpu_params={"device": "gpu"})
    with pytest.raises(ValueError, match="unknown family"):
        ModelSpec("x", "torch", {})  # type: ignore[arg-type]


def test_queue_routing() -> None:
    gpu_models = {spec.name for spec in ZOO if spec.gpu_capable}
    assert gpu_models == {"xgb_hist", "xgb_shallow", "cat_symmetric", "cat_depthwise"}
    for spec in ZOO:
        assert bool(spec.gpu_params) == spec.gpu_capable


def test_effective_device() -> None:
    assert get_spec("xgb_hist").effective_device("cuda") == "cuda"
    # A CPU-only model on a GPU worker still trains, on the CPU, and says so.
    assert get_spec("lgbm_gbdt").effective_device("cuda") == "cpu"
    assert get_spec("sk_mlp").effective_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        get_spec("xgb_hist").effective_device("tpu")


def test_gpu_params_applied_only_on_cuda() -> None:
    assert _params("xgb_hist")["device"] == "cpu"
    assert _params("xgb_hist", "cuda")["device"] == "cuda"
    assert _params("xgb_shallow", "cuda")["max_depth"] == 2
    for name in ("cat_symmetric", "cat_depthwise"):
        assert _params(name)["task_type"] == "CPU"
        cuda = _params(name, "cuda")
        assert (cuda["task_type"], cuda["devices"]) == ("GPU", "0")
    assert _params("cat_depthwise", "cuda")["grow_policy"] == "Depthwise"
    assert "device" not in _params("lgbm_gbdt", "cuda")


def test_params_layering_config_spec_device_overrides() -> None:
    lgbm = _params("lgbm_gbdt", overrides={"num_leaves": 7})
    config_values = (lgbm["num_iterations"], lgbm["learning_rate"], lgbm["seed"], lgbm["num_threads"])
    assert config_values == (20, 0.1, 3, 2)
    assert lgbm["deterministic"] is True and lgbm["force_col_wise"] is True
    assert lgbm["num_leaves"] == 7  # the override beats the spec's 15
    xgb = _params("xgb_hist", "cuda", overrides={"device": "cuda:1"})
    assert xgb["device"] == "cuda:1"  # overrides come last, after the device params
    assert (xgb["num_class"], xgb["nthread"], xgb["seed"], xgb["num_boost_round"]) == (3, 2, 3, 20)
    cat = _params("cat_symmetric")
    assert (cat["iterations"], cat["random_seed"], cat["thread_count"]) == (20, 3, 2)
    assert cat["allow_writing_files"] is False
    assert _params("sk_mlp")["max_iter"] == 20  # the MLP's epochs are the config's rounds
    assert _params("sk_logreg")["max_iter"] == 1000  # logistic regression is solved to convergence
    assert _params("sk_logreg", overrides={"C": 2.0})["C"] == 2.0


def test_every_spec_builds_params_from_the_default_config() -> None:
    training = FarmConfig().training
    for spec in ZOO:
        options = FitOptions(
            rounds=training.base_rounds,
            learning_rate=training.learning_rate,
            seed=training.seed,
            threads=1,
            device="cpu",
            overrides=training.model_params.get(spec.name, {}),
        )
        params = family(spec).build_params(spec, options)
        assert all(isinstance(value, int | float | str | bool) for value in params.values()), spec.name


def test_importing_the_zoo_loads_no_ml_library() -> None:
    # A Celery worker's parent imports the task modules before forking; none of the ML libraries (and
    # their thread pools) may be loaded there.
    code = (
        "import sys, trainfarm.shared.zoo, trainfarm.shared.zoo.spec, trainfarm.shared.zoo.threads, "
        "trainfarm.shared.training; "
        f"print(','.join(m for m in {ML_LIBRARIES!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT, env=env
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("concurrency", "cores", "expected"),
    [(1, 16, 16), (2, 16, 8), (3, 16, 5), (4, 16, 4), (16, 16, 1), (32, 16, 1), (1, 1, 1), (3, 2, 1)],
)
def test_threads_per_task(concurrency: int, cores: int, expected: int) -> None:
    threads = threads_per_task(concurrency, cores)
    assert threads == expected
    if concurrency <= cores:
        assert concurrency * threads <= cores  # never oversubscribed


def test_threads_per_task_defaults_and_errors() -> None:
    cores = available_cores()
    assert cores >= 1
    assert threads_per_task(1) == cores
    with pytest.raises(ValueError, match="worker_concurrency"):
        threads_per_task(0, 8)
    with pytest.raises(ValueError, match="cores"):
        threads_per_task(1, 0)
