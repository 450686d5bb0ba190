"""Loading a pack's models from their files and predicting class probabilities, one kind at a time.

Base models are stored in each library's own format (``kind`` in the manifest): LightGBM text, XGBoost
UBJSON, CatBoost ``cbm``, and the scikit-learn models as JSON arrays run by numpy
(:mod:`trainfarm_client.numpy_models`). The meta-learner is a LightGBM text model. Nothing is unpickled.

Each library is imported inside its own loader or predictor, never at module import: a bot whose pack
has no CatBoost model never imports CatBoost (nor pays its start-up time and memory). The farm's model
families (``trainfarm.shared.zoo.*_family``) call these same functions to load and predict, so the
probabilities a bot computes are the farm's, bit for bit.

Threads: the farm passes each call its thread count. A bot passes none, and then a small input (up to
:data:`SINGLE_THREAD_ROWS` rows, such as the one row of a live decision) runs on one thread, larger ones
on the library's default (every core); see :func:`threads_for`. A row's probabilities do not depend on
the thread count (each row is scored on its own), only the time does.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from trainfarm_client.arrays import FloatArray
from trainfarm_client.numpy_models import NumpyClassifier, read_numpy_classifier
from trainfarm_client.probs import N_CLASSES, normalise_proba

if TYPE_CHECKING:  # types only: the libraries themselves are imported where a model needs them
    import lightgbm as lgb
    import xgboost as xgb
    from catboost import CatBoostClassifier

ModelKind = Literal["lightgbm", "xgboost", "catboost", "sklearn"]
MODEL_KINDS: tuple[ModelKind, ...] = ("lightgbm", "xgboost", "catboost", "sklearn")

#: Inputs up to this many rows predict on one thread unless the caller sets a thread count. LightGBM,
#: XGBoost and CatBoost each keep a pool of worker threads (two OpenMP runtimes and CatBoost's own) that
#: spin for a while after every parallel call: a decision that runs the three in turn on every core makes
#: the pools fight over the cores, which on a 2-core machine costs milliseconds per call, far more than
#: the microseconds each model needs per row. The fewer the rows, the more one thread wins; around this
#: many the two took about as long on a 2-core machine (``python -m bench inference`` prints both), and
#: larger batches can gain from the threads.
SINGLE_THREAD_ROWS = 1000


def threads_for(rows: int, threads: int | None) -> int | None:
    """The thread count for predicting ``rows`` rows: ``threads`` when given, else 1 for an input of at
    most :data:`SINGLE_THREAD_ROWS` rows, else None (the library's default: every core)."""
    if threads is not None:
        return threads
    return 1 if rows <= SINGLE_THREAD_ROWS else None


# --------------------------------------------------------------------------------------- LightGBM


def load_lightgbm(path: Path) -> lgb.Booster:
    """A LightGBM text model."""
    import lightgbm as lgb

    return lgb.Booster(model_file=str(path))


def predict_lightgbm(model: lgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities; ``threads`` caps OpenMP (default: :func:`threads_for`)."""
    n_threads = threads_for(len(x), threads)
    if n_threads is None:
        return normalise_proba(model.predict(x))
    return normalise_proba(model.predict(x, num_threads=n_threads))


# ---------------------------------------------------------------------------------------- XGBoost


def load_xgboost(path: Path) -> xgb.Booster:
    """An XGBoost UBJSON model (the format is detected from the content, whatever the file's suffix)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))
    return booster


#: Held while a booster's thread count is set and it predicts: a booster's parameters are not safe to
#: change while another thread predicts with it (a bot may score from several threads).
_XGBOOST_LOCK = threading.Lock()
#: The ``nthread`` this module last gave each booster. Setting any parameter makes XGBoost reconfigure the
#: whole booster on its next prediction (longer than scoring a row), so it is set only when it changes.
_XGBOOST_THREADS: weakref.WeakKeyDictionary[xgb.Booster, int] = weakref.WeakKeyDictionary()


def predict_xgboost(model: xgb.Booster, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities (XGBoost's float32 output widened and renormalised); threads: :func:`threads_for`.

    ``inplace_predict`` reads the array where it lies; building a ``DMatrix`` first (a copy, and a
    parallel pass of its own) costs more than scoring a few rows. Both give the same float32 values:
    XGBoost compares every feature as a float32 either way.
    """
    n_threads = threads_for(len(x), threads)
    nthread = n_threads if n_threads is not None else 0  # 0: every core
    with _XGBOOST_LOCK:
        if _XGBOOST_THREADS.get(model) != nthread:
            model.set_param({"nthread": nthread})
            _XGBOOST_THREADS[model] = nthread
        out = model.inplace_predict(x)
    return normalise_proba(out)


# --------------------------------------------------------------------------------------- CatBoost


def load_catboost(path: Path) -> CatBoostClassifier:
    """A CatBoost ``cbm`` model."""
    from catboost import CatBoostClassifier

    model = CatBoostClassifier()
    model.load_model(str(path), format="cbm")
    return model


def predict_catboost(model: CatBoostClassifier, x: FloatArray, *, threads: int | None = None) -> FloatArray:
    """n x 3 probabilities; threads: :func:`threads_for` (None is ``thread_count=-1``, all cores)."""
    n_threads = threads_for(len(x), threads)
    return normalise_proba(model.predict_proba(x, thread_count=n_threads if n_threads is not None else -1))


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


def predict_meta_proba(
    booster: lgb.Booster, x: npt.ArrayLike, *, num_iteration: int, threads: int | None = None
) -> FloatArray:
    """The meta-learner's class probabilities for the stacked rows ``x``, ``n x 3``; rows sum to 1.

    Threads: :func:`threads_for`.
    """
    rows = np.asarray(x, dtype=np.float64)
    width = int(booster.num_feature())
    if rows.ndim != 2 or rows.shape[1] != width:
        raise ValueError(f"X must be n x {width}, got shape {rows.shape}")
    if rows.shape[0] == 0:
        return np.empty((0, N_CLASSES), dtype=np.float64)
    n_threads = threads_for(rows.shape[0], threads)
    if n_threads is None:
        raw = booster.predict(rows, num_iteration=num_iteration)
    else:
        raw = booster.predict(rows, num_iteration=num_iteration, num_threads=n_threads)
    out = np.asarray(raw, dtype=np.float64)
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
