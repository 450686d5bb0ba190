"""The meta-learner's 55 input features, for the farm: a re-export of :mod:`trainfarm_client.stacking`.

Bots stack their base models' probabilities with exactly the code the meta-learner was trained on, so
the one implementation lives in the bot client and the farm imports it from there. See that module for
the column layout.
"""

from __future__ import annotations

from trainfarm_client.arrays import FloatArray
from trainfarm_client.stacking import (
    AGGREGATE_NAMES,
    N_BASE_MODELS,
    N_META_FEATURES,
    meta_feature_names,
    stack_features,
)

__all__ = [
    "AGGREGATE_NAMES",
    "N_BASE_MODELS",
    "N_META_FEATURES",
    "FloatArray",
    "meta_feature_names",
    "stack_features",
]
