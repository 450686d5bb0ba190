"""What a boosted base model relied on: its library's own per-row attributions, summarised per feature.

LightGBM (``pred_contrib``), XGBoost (``pred_contribs``) and CatBoost (``ShapValues``) each compute
TreeSHAP values for their own trees, so no extra dependency is needed and the values are exact for the
model as saved. A row's attributions for a class, bias included, sum to that class's raw margin (the score
before the softmax): :func:`check_additive` is the test of that. The scikit-learn models have none here,
and neither has a CatBoost model with non-symmetric trees (``cat_depthwise``): CatBoost computes exact
SHAP values for symmetric trees only, and for depthwise trees its "Regular" values missed the raw margin by
more than 1 on a 20-round multiclass model here ("Approximate" by 0.12), so they would not explain it.
A summary is the mean absolute attribution of each feature over rows and classes: how far, on average, the
feature moved the model's margins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np

from trainfarm.shared.zoo import family
from trainfarm.shared.zoo.spec import ModelSpec
from trainfarm_client.arrays import FloatArray

#: Rows a summary is computed on at most (TreeSHAP costs trees x leaves x depth^2 per row and class): evenly
#: spread over the split, so the estimate covers all of it and is the same at every run.
SUMMARY_ROWS = 500


def spread_rows(x: FloatArray, limit: int = SUMMARY_ROWS) -> FloatArray:
    """At most ``limit`` rows of ``x``, evenly spaced from the first to the last."""
    if len(x) <= limit:
        return x
    return x[np.linspace(0, len(x) - 1, limit).round().astype(np.int64)]


class Attributing(Protocol):
    """A family module whose models explain their margins (the boosted families)."""

    def contributions(self, model: Any, x: FloatArray, *, threads: int | None = None) -> FloatArray:
        """n x 3 x (features + 1) attributions, the bias last."""
        ...

    def raw_margin(self, model: Any, x: FloatArray, *, threads: int | None = None) -> FloatArray:
        """n x 3 raw margins (before the softmax)."""
        ...


def attributing(spec: ModelSpec) -> Attributing | None:
    """The family of ``spec`` when its models have exact attributions, else None (see the module doc)."""
    if spec.family == "catboost" and spec.params.get("grow_policy", "SymmetricTree") != "SymmetricTree":
        return None
    module = family(spec)
    return cast(Attributing, module) if hasattr(module, "contributions") else None


def mean_abs_by_feature(contributions: FloatArray, features: Sequence[str]) -> dict[str, float]:
    """The mean absolute attribution of each feature over rows and classes (the bias column dropped)."""
    if contributions.ndim != 3 or contributions.shape[2] != len(features) + 1:
        raise ValueError(
            f"attributions of shape {contributions.shape} do not match {len(features)} features plus the bias"
        )
    means = np.abs(contributions[:, :, :-1]).mean(axis=(0, 1))
    return {name: float(value) for name, value in zip(features, means, strict=True)}


def check_additive(
    fam: Attributing, model: Any, x: FloatArray, *, atol: float = 1e-4, threads: int | None = None
) -> float:
    """The largest gap between a row's summed attributions and its raw margin; ValueError above ``atol``
    (float32 trees: a few 1e-6 is normal)."""
    summed = fam.contributions(model, x, threads=threads).sum(axis=2)
    gap = float(np.max(np.abs(summed - fam.raw_margin(model, x, threads=threads))))
    if gap > atol:
        raise ValueError(f"attributions do not sum to the raw margin: largest gap {gap:.3g}")
    return gap
