"""The meta-learner: a small multiclass LightGBM model on the 55 stacked features.

It trains on the base models' out-of-fold rows, which are few (one prediction per train row) and noisy,
so the model is kept modest (15 leaves, 40 rows per leaf, 80% of the features per tree, L2 1.0) and the
number of boosting rounds is picked by early stopping on the LAST ``holdout_fraction`` of the rows in
time order. The hold-out is never shuffled in: a random hold-out would sit between training rows of the
same period and flatter the model exactly the way the purged splits exist to prevent.

``sample_weight`` weighs every row, the hold-out rows too, so early stopping minimises the same weighted
log-loss the trees are fitted to. The stacker selection (:mod:`trainfarm.shared.stacking.selection`)
passes equal weights: no stacker is fitted with class weights, so its probabilities are true frequencies
before calibration (:mod:`trainfarm.shared.stacking.temperature`; docs/ml.md#stacking-calibration-p).

The saved model holds only the trees up to the best iteration, so a loaded model predicts exactly what
the fitted one did, with no extra bookkeeping on the bot's side. Loading and predicting are the bot
client's (:class:`trainfarm_client.models.MetaBooster`), shared with the farm so both compute the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.errors import DatasetError
from trainfarm_client.arrays import FloatArray
from trainfarm_client.models import MetaBooster, predict_meta_proba

#: Fewer out-of-fold rows than this cannot train and early-stop a meta-learner meaningfully.
MIN_META_ROWS = 50
N_CLASSES = len(CLASSES)


@dataclass(frozen=True, eq=False)
class MetaModel:
    """A fitted (or loaded) meta-learner.

    ``booster`` holds exactly ``best_iteration`` boosting rounds. ``holdout_logloss`` is the class-weighted
    multi-logloss on the time-ordered hold-out at ``best_iteration``; it is ``None`` for a model loaded
    from text (the manifest's metrics keep it). ``feature_names`` are the column names it was trained on.
    """

    booster: lgb.Booster
    best_iteration: int
    holdout_logloss: float | None
    feature_names: tuple[str, ...]

    @property
    def num_features(self) -> int:
        """Number of input columns the model expects."""
        return int(self.booster.num_feature())

    def predict_proba(self, X: npt.ArrayLike) -> FloatArray:  # noqa: N803 - the usual name for a design matrix
        """Class probabilities, ``n x 3`` (down, neutral, up); each row sums to 1."""
        return predict_meta_proba(self.booster, X, num_iteration=self.best_iteration)

    def to_text(self) -> str:
        """The LightGBM model string (trees up to ``best_iteration`` only)."""
        return str(self.booster.model_to_string(num_iteration=self.best_iteration))

    @classmethod
    def from_text(cls, text: str) -> MetaModel:
        """Load a model written by :meth:`to_text`; predictions and ``to_text`` match the original exactly."""
        loaded = MetaBooster.from_text(text)
        return cls(
            booster=loaded.booster,
            best_iteration=loaded.best_iteration,
            holdout_logloss=None,
            feature_names=tuple(str(n) for n in loaded.booster.feature_name()),
        )


def _params(learning_rate: float, threads: int, seed: int) -> dict[str, object]:
    return {
        "objective": "multiclass",
        "num_class": N_CLASSES,
        "metric": "multi_logloss",
        "learning_rate": learning_rate,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


def fit_meta(
    X: npt.ArrayLike,  # noqa: N803 - the usual name for a design matrix
    y: npt.ArrayLike,
    sample_weight: npt.ArrayLike,
    *,
    rounds: int,
    learning_rate: float,
    early_stopping_rounds: int,
    holdout_fraction: float,
    threads: int,
    seed: int,
    feature_names: Sequence[str] | None = None,
) -> MetaModel:
    """Train the meta-learner on rows in time order, early-stopping on the last ``holdout_fraction``.

    ``X`` is ``n x k`` (the caller has dropped rows with NaN meta-features), ``y`` holds class ids 0..2 and
    ``sample_weight`` the per-row class weights. The same inputs and ``seed`` give the same model (also
    with several ``threads``). Raises :class:`DatasetError` with fewer than 50 rows or when a class is
    absent from the part that is fitted, and ``ValueError`` for malformed arrays or parameters.
    """
    x = np.asarray(X, dtype=np.float64)
    labels = np.asarray(y)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"X must be 2-dimensional, got shape {x.shape}")
    n = x.shape[0]
    if labels.shape != (n,) or weights.shape != (n,):
        raise ValueError(f"y {labels.shape} and sample_weight {weights.shape} must both have {n} rows")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y must hold integer class ids, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"y must hold class ids 0..{N_CLASSES - 1}")
    if not (np.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError("sample_weight must be finite and positive")
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if rounds < 1 or early_stopping_rounds < 1 or threads < 1:
        raise ValueError("rounds, early_stopping_rounds and threads must be at least 1")
    names = [f"f{i}" for i in range(x.shape[1])] if feature_names is None else list(feature_names)
    if len(names) != x.shape[1]:
        raise ValueError(f"{len(names)} feature names for {x.shape[1]} columns")
    if n < MIN_META_ROWS:
        raise DatasetError(
            f"the meta-learner needs at least {MIN_META_ROWS} out-of-fold rows, got {n}; "
            "use a longer training window or a lower splits.oof_min_train_share"
        )

    n_hold = max(1, math.ceil(n * holdout_fraction))
    cut = n - n_hold
    fit_labels = labels[:cut].astype(np.int64)
    missing = [CLASSES[k] for k in range(N_CLASSES) if not (fit_labels == k).any()]
    if missing:
        raise DatasetError(
            f"class(es) {', '.join(missing)} absent from the {cut} meta-learner fit rows "
            f"(the last {n_hold} of {n} rows are its early-stopping hold-out)"
        )

    params = _params(learning_rate, threads, seed)
    train_set = lgb.Dataset(
        x[:cut], label=fit_labels, weight=weights[:cut], feature_name=names, free_raw_data=True
    )
    hold_set = lgb.Dataset(
        x[cut:], label=labels[cut:].astype(np.int64), weight=weights[cut:], reference=train_set
    )
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=rounds,
        valid_sets=[hold_set],
        valid_names=["holdout"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    # The early-stopping callback sets best_iteration also when all rounds ran; guard the 0 ("unset")
    # case anyway so the saved model is never empty.
    best = int(booster.best_iteration) or int(booster.current_iteration())
    holdout_ll = float(booster.best_score["holdout"]["multi_logloss"])
    # Keep only the trees up to best_iteration, so the fitted and the loaded model are the same object.
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return MetaModel(
        booster=trimmed, best_iteration=best, holdout_logloss=holdout_ll, feature_names=tuple(names)
    )
