"""The model zoo: the 8 base models of every retrain run, each declared once, here.

Importing this package loads no ML library. :func:`family` imports a family module (and with it
LightGBM, XGBoost, CatBoost or scikit-learn) on first use, inside the task that trains: a Celery worker's
parent process must not load those libraries (and start their thread pools) before it forks its children.

Params below are what makes each model distinct and are kept modest; rounds, learning rate and seed come
from ``TrainingParams`` and the thread count from :func:`trainfarm.shared.zoo.threads.threads_per_task`.
``TrainingParams.model_params[name]`` overrides any of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from trainfarm.shared.errors import ConfigError
from trainfarm.shared.zoo.spec import DEVICES, FAMILIES, Device, Family, ModelSpec
from trainfarm.shared.zoo.threads import threads_per_task

_XGB_GPU = {"device": "cuda"}
_CAT_GPU = {"task_type": "GPU", "devices": "0"}

ZOO: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="lgbm_gbdt",
        family="lightgbm",
        params={
            "boosting": "gbdt",
            "num_leaves": 15,
            "min_data_in_leaf": 40,
            "feature_fraction": 0.8,
            "lambda_l2": 1.0,
        },
    ),
    ModelSpec(
        name="lgbm_extratrees",
        family="lightgbm",
        # Random split thresholds: a differently biased learner, which is what a stack wants.
        params={"boosting": "gbdt", "extra_trees": True, "num_leaves": 31, "min_data_in_leaf": 20},
    ),
    ModelSpec(
        name="xgb_hist",
        family="xgboost",
        params={"max_depth": 5, "min_child_weight": 2.0, "subsample": 0.8, "colsample_bytree": 0.8},
        gpu_capable=True,
        gpu_params=_XGB_GPU,
    ),
    ModelSpec(
        name="xgb_shallow",
        family="xgboost",
        # Stumps-and-pairs: only main effects and two-way interactions.
        params={"max_depth": 2, "subsample": 0.9, "colsample_bytree": 1.0},
        gpu_capable=True,
        gpu_params=_XGB_GPU,
    ),
    ModelSpec(
        name="cat_symmetric",
        family="catboost",
        params={"grow_policy": "SymmetricTree", "depth": 6, "l2_leaf_reg": 3.0},
        gpu_capable=True,
        gpu_params=_CAT_GPU,
    ),
    ModelSpec(
        name="cat_depthwise",
        family="catboost",
        params={"grow_policy": "Depthwise", "depth": 6, "min_data_in_leaf": 20, "l2_leaf_reg": 3.0},
        gpu_capable=True,
        gpu_params=_CAT_GPU,
    ),
    ModelSpec(
        name="sk_logreg",
        family="sklearn",
        # lbfgs with 3 classes is multinomial; C < 1 because 22 correlated features overfit noise.
        params={"estimator": "logistic_regression", "C": 0.1, "max_iter": 1000},
    ),
    ModelSpec(
        name="sk_mlp",
        family="sklearn",
        params={
            "estimator": "mlp",
            "hidden_layer_sizes": "32,16",
            "activation": "relu",
            "alpha": 1e-3,
            "learning_rate_init": 1e-3,
            "batch_size": 256,
            "early_stopping": False,
        },
    ),
)

MODEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in ZOO)
_BY_NAME: dict[str, ModelSpec] = {spec.name: spec for spec in ZOO}
if len(_BY_NAME) != len(ZOO):  # a copy-paste slip would silently drop a model from every run
    raise RuntimeError(f"duplicate model names in the zoo: {MODEL_NAMES}")


def get_spec(name: str) -> ModelSpec:
    """The spec named ``name``; :class:`ConfigError` listing the valid names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown base model {name!r}; valid models: {', '.join(MODEL_NAMES)}") from None


def family(spec: ModelSpec) -> Family:
    """The family module of ``spec``, imported now (see the module docstring for why not earlier)."""
    module = importlib.import_module(f"trainfarm.shared.zoo.{spec.family}_family")
    return cast(Family, module)


__all__ = [
    "DEVICES",
    "FAMILIES",
    "MODEL_NAMES",
    "ZOO",
    "Device",
    "Family",
    "ModelSpec",
    "family",
    "get_spec",
    "threads_per_task",
]

if TYPE_CHECKING:
    # Static proof that every family module implements the Family protocol (mypy checks modules too).
    from trainfarm.shared.zoo import catboost_family, lightgbm_family, sklearn_family, xgboost_family

    _FAMILY_MODULES: tuple[Family, ...] = (lightgbm_family, xgboost_family, catboost_family, sklearn_family)
