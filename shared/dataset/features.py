"""The causal feature set, for the farm: a re-export of :mod:`trainfarm_client.features`.

Bots compute features with exactly the code that training used, so the one implementation lives in the
bot client (which must not import ``shared``) and the farm imports it from there. See that module for
the feature list, the causality contract and when to bump :data:`FEATURE_SPEC_VERSION`.
"""

from __future__ import annotations

from trainfarm_client.features import (
    FEATURE_NAMES,
    FEATURE_SPEC_VERSION,
    FEATURE_WARMUP,
    MIN_HISTORY_BARS,
    REQUIRED_COLUMNS,
    VOLUME_CHANGE_CAP,
    WARMUP_BARS,
    add_features,
    segment_expr,
)

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SPEC_VERSION",
    "FEATURE_WARMUP",
    "MIN_HISTORY_BARS",
    "REQUIRED_COLUMNS",
    "VOLUME_CHANGE_CAP",
    "WARMUP_BARS",
    "add_features",
    "segment_expr",
]
