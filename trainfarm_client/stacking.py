"""The meta-learner's 55 input features, built from the 8 base models' class probabilities.

Layout of one row (``meta_feature_names`` gives the names in this order; ``m`` is a model name):

* 24 base probabilities, per model: ``m__p_down``, ``m__p_neutral``, ``m__p_up``;
* 24 derived features, per model:
  ``m__asymmetry`` = p_up - p_down (signed directional view),
  ``m__max_directional`` = max(p_up, p_down) (how sure the model is that *something* moves),
  ``m__neutral_dominance`` = p_neutral - max(p_up, p_down) (> 0 when "nothing happens" beats both moves);
* 7 aggregates across the models (prefixed ``agg__``):
  ``mean_p_down``, ``mean_p_up`` (the committee's average view of each move; mean p_neutral is left out
  because it is 1 minus their sum),
  ``mean_asymmetry`` (their difference, precomputed because trees split on one column at a time),
  ``consensus`` (share of models whose argmax is the most common argmax: 1 = all agree, 3/8 = split),
  ``dispersion`` (population std of the models' asymmetries: disagreement on direction),
  ``entropy`` (Shannon entropy in nats of the mean distribution: ln 3 = no information, 0 = certain),
  ``net_vote`` ((#models voting up - #models voting down) / #models, a vote count robust to one
  over-confident model). A model's vote is its argmax; an exact tie goes to the lower class id (numpy's
  argmax), which real-valued probabilities practically never produce.

The derived and aggregate columns are functions of the base ones, but a tree ensemble trained on the few
rows the meta-learner sees finds them far more easily precomputed than as learned interactions.

A row with NaN in any model's probabilities (a base model without an out-of-fold prediction there) comes
out all-NaN; the caller drops such rows before training or predicting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from trainfarm_client.arrays import FloatArray
from trainfarm_client.probs import check_probs

N_BASE_MODELS = 8
_PROB_SUFFIXES = ("p_down", "p_neutral", "p_up")
_DERIVED_SUFFIXES = ("asymmetry", "max_directional", "neutral_dominance")
AGGREGATE_NAMES: tuple[str, ...] = (
    "agg__mean_p_down",
    "agg__mean_p_up",
    "agg__mean_asymmetry",
    "agg__consensus",
    "agg__dispersion",
    "agg__entropy",
    "agg__net_vote",
)
N_META_FEATURES = N_BASE_MODELS * (len(_PROB_SUFFIXES) + len(_DERIVED_SUFFIXES)) + len(AGGREGATE_NAMES)
assert N_META_FEATURES == 55


def _check_model_names(model_names: Sequence[str]) -> list[str]:
    names = list(model_names)
    if len(names) != N_BASE_MODELS:
        raise ValueError(f"the meta-learner stacks exactly {N_BASE_MODELS} base models, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"base model names must be unique, got {names}")
    bad = [n for n in names if not n or "__" in n or n.startswith("agg")]
    if bad:
        # "__" separates model from feature and "agg" prefixes the aggregates: a clash would make two
        # columns share a name or a name ambiguous to split.
        raise ValueError(f"bad base model name(s) {bad}: must be non-empty, without '__', not 'agg...'")
    return names


def meta_feature_names(model_names: Sequence[str]) -> list[str]:
    """The 55 column names of :func:`stack_features` for these 8 models, in column order."""
    names = _check_model_names(model_names)
    base = [f"{m}__{s}" for m in names for s in _PROB_SUFFIXES]
    derived = [f"{m}__{s}" for m in names for s in _DERIVED_SUFFIXES]
    return [*base, *derived, *AGGREGATE_NAMES]


def stack_features(probs: Sequence[npt.ArrayLike], model_names: Sequence[str]) -> FloatArray:
    """Build the ``n x 55`` meta-feature matrix from 8 models' ``n x 3`` probabilities.

    ``probs[i]`` belongs to ``model_names[i]``; the order of both must be the same at training and at
    prediction time (the names are recorded with the model). Raises ``ValueError`` for a wrong model count,
    mismatched row counts or values that are not probabilities.
    """
    names = _check_model_names(model_names)
    if len(probs) != len(names):
        raise ValueError(f"got {len(probs)} probability arrays for {len(names)} model names")
    arrays = [
        check_probs(p, f"probs[{name!r}]", allow_nan=True) for p, name in zip(probs, names, strict=True)
    ]
    rows = {a.shape[0] for a in arrays}
    if len(rows) != 1:
        raise ValueError(f"all models must predict the same rows; got row counts {sorted(rows)}")
    stack = np.stack(arrays, axis=1)  # n x models x 3
    n, m = stack.shape[0], stack.shape[1]
    p_down, p_neutral, p_up = stack[..., 0], stack[..., 1], stack[..., 2]

    asymmetry = p_up - p_down
    max_dir = np.maximum(p_up, p_down)
    derived = np.stack([asymmetry, max_dir, p_neutral - max_dir], axis=2)  # n x models x 3

    mean = stack.mean(axis=1)  # n x 3
    # argmax of a NaN row is meaningless; such rows are blanked below anyway, so zero-fill to keep numpy
    # from warning or picking an arbitrary class.
    votes = np.nan_to_num(stack, nan=0.0).argmax(axis=2)  # n x models
    vote_counts = np.stack([(votes == k).sum(axis=1) for k in range(3)], axis=1)
    consensus = vote_counts.max(axis=1) / m
    net_vote = (vote_counts[:, 2] - vote_counts[:, 0]) / m
    safe_mean = np.clip(mean, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(safe_mean > 0, safe_mean * np.log(safe_mean), 0.0), axis=1)
    aggregates = np.stack(
        [
            mean[:, 0],
            mean[:, 2],
            mean[:, 2] - mean[:, 0],
            consensus,
            asymmetry.std(axis=1),
            entropy,
            net_vote,
        ],
        axis=1,
    )

    out = np.concatenate([stack.reshape(n, m * 3), derived.reshape(n, m * 3), aggregates], axis=1)
    out[np.isnan(stack).any(axis=(1, 2))] = np.nan
    return out.astype(np.float64, copy=False)
