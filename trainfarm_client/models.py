"""Loading a pack's models from their files and predicting class probabilities, one kind at a time.

Base models are stored in each library's own format (``kind`` in the manifest): LightGBM text, XGBoost
UBJSON, CatBoost ``cbm``, and the scikit-learn models as JSON arrays run by numpy
(:mod:`trainfarm_client.numpy_models`). The meta-learner is a LightGBM text model. Nothing is unpickled.

Each library is imported inside its own loader or predictor, never at module import: a bot whose pack
has no CatBoost model never imports CatBoost (nor pays its start-up time and memory). The farm's model
families (``trainfarm.shared.zoo.*_family``) call these same functions to load and predict, so the
probabilities a bot computes are the farm's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from trainfarm_client.numpy_models import NumpyClassifier, read_numpy_classifier
from trainfarm_client.probs import N_CLASSES, FloatArray, normalise_proba

if TYPE_CHECKING:  # types only: the libraries themselves are imported where a model needs them
    import lightgbm as lgb
    import xgboost as xgb
    from catboost import CatBoostClassifier

ModelKind = Literal["lightgbm", "xgboost", "catboost", "sklearn"]
MODEL_KINDS: tuple[ModelKind, ...] = ("lightgbm", "xgboost", "catboost", "sklearn")


# --------------------------------------------------------------------------------------- LightGBM


def load_lightgbm(path: Path) -> lgb.Booster:
    """A LightGBM text model."""
    import lightgbm as lgb

    return lgb.Booster(model_file=str(path))


def predict_lightgbm(model: lgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities; ``threads`` caps OpenMP (a loaded booster would otherwise use every core)."""
    if threads is None:
        return normalise_proba(model.predict(x))
    return normalise_proba(model.predict(x, num_threads=threads))


# ---------------------------------------------------------------------------------------- XGBoost


def load_xgboost(path: Path) -> xgb.Booster:
    """An XGBoost UBJSON model (the format is detected from the content, whatever the file's suffix)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))
    return booster


def predict_xgboost(model: xgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities (XGBoost's float32 output widened and renormalised)."""
    import xgboost as xgb

    if threads is not None:
        model.set_param({"nthread": threads})
    data = xgb.DMatrix(x, nthread=threads if threads is not None else -1)
    return normalise_proba(model.predict(data))


# --------------------------------------------------------------------------------------- CatBoost


def load_catboost(path: Path) -> CatBoostClassifier:
    """A CatBoost ``cbm`` model."""
    from catboost import CatBoostClassifier

    model = CatBoostClassifier()
    model.load_model(str(path), format="cbm")
    return model


def predict_catboost(model: CatBoostClassifier, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities; ``thread_count=-1`` (all cores) unless ``threads`` is given."""
    return normalise_proba(model.predict_proba(x, thread_count=threads if threads is not None else -1))


# ------------------------------------------------------------------------------------ scikit-learn


def load_sklearn(path: Path) -> NumpyClassifier:
    """A scikit-learn model's JSON arrays (no sklearn needed, no pickle)."""
    return read_numpy_classifier(path)


def predict_sklearn(model: NumpyClassifier, x: FloatArray) -> FloatArray:
    """n x 3 probabilities from the numpy forward pass."""
    return normalise_proba(model.predict_proba(np.ascontiguousarray(x, dtype=np.float64)))


# ------------------------------------------------------------------------------------ base models

_LOADERS: dict[ModelKind, Callable[[Path], Any]] = {
    "lightgbm": load_lightgbm,
    "xgboost": load_xgboost,
    "catboost": load_catboost,
    "sklearn": load_sklearn,
}
_PREDICTORS: dict[ModelKind, Callable[[Any, FloatArray], FloatArray]] = {
    "lightgbm": predict_lightgbm,
    "xgboost": predict_xgboost,
    "catboost": predict_catboost,
    "sklearn": predict_sklearn,
}


@dataclass(frozen=True, eq=False)
class BaseModel:
    """One loaded base model of a pack: its name, its kind and the library's model object."""

    name: str
    kind: ModelKind
    model: Any

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """n x 3 float64 probabilities (down, neutral, up), rows summing to 1."""
        return _PREDICTORS[self.kind](self.model, x)


def check_kind(kind: str) -> ModelKind:
    """``kind`` as a :data:`ModelKind`, or ``ValueError`` (a manifest is input: never import by name)."""
    for known in MODEL_KINDS:
        if kind == known:
            return known
    raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")


def load_base_model(name: str, kind: str, path: Path) -> BaseModel:
    """Load the base model ``name`` of kind ``kind`` from ``path`` (the library's error if unreadable)."""
    checked = check_kind(kind)
    return BaseModel(name, checked, _LOADERS[checked](path))


# ----------------------------------------------------------------------------------- meta-learner


def predict_meta_proba(booster: lgb.Booster, x: npt.ArrayLike, *, num_iteration: int) -> FloatArray:
    """The meta-learner's class probabilities for the stacked rows ``x``, ``n x 3``; rows sum to 1."""
    rows = np.asarray(x, dtype=np.float64)
    width = int(booster.num_feature())
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"X must be n x {width}, got shape {rows.shape}")
    if rows.shape[0] == 0:
        return np.empty((0, N_CLASSES), dtype=np.float64)
    out = np.asarray(booster.predict(rows, num_iteration=num_iteration), dtype=np.float64)
    return out.reshape(rows.shape[0], N_CLASSES)


@dataclass(frozen=True, eq=False)
class MetaBooster:
    """The loaded meta-learner: a LightGBM booster holding exactly ``best_iteration`` rounds."""

    booster: lgb.Booster
    best_iteration: int

    @classmethod
    def from_text(cls, text: str) -> MetaBooster:
        """Load the LightGBM model string of a pack's ``meta/meta.txt``; ``ValueError`` if not 3-class."""
        import lightgbm as lgb

        booster = lgb.Booster(model_str=text)
        if booster.num_model_per_iteration() != N_CLASSES:
            raise ValueError(
                f"not a {N_CLASSES}-class meta model: {booster.num_model_per_iteration()} trees per round"
            )
        # The farm saves only the trees up to the best iteration, so every round in the file is used.
        return cls(booster=booster, best_iteration=int(booster.current_iteration()))

    @property
    def num_features(self) -> int:
        """Number of stacked input columns the model expects."""
        return int(self.booster.num_feature())

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        """Class probabilities, ``n x 3`` (down, neutral, up); each row sums to 1."""
        return predict_meta_proba(self.booster, x, num_iteration=self.best_iteration)
