"""Isotonic calibration of the meta-learner's probabilities, one curve per class, then renormalised.

Fitted on the CALIBRATION split (never on the rows the meta-learner trained on, whose probabilities are
optimistic, and never on test). For each class ``k`` an increasing step-and-ramp map ``p_k -> P(y = k)`` is
fitted by sklearn's ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``; at prediction time each
column goes through its map and the row is renormalised to sum to 1. Runs calibrate with
:mod:`trainfarm.shared.stacking.temperature` now; isotonic calibration is what format-1 packs hold.

Only the fitted thresholds are kept (``X_thresholds_``/``y_thresholds_``), and prediction is ``np.interp``
on them, which is what sklearn's predict computes (linear between thresholds, clipped outside). So the
JSON form is complete: a bot rebuilds the calibrator without sklearn and without pickle. Applying and
reading the curves is :class:`trainfarm_client.calibration.IsotonicCalibration`, the one implementation
the farm and bots share; this class adds the fit (sklearn, farm side only).

Why a probability floor (``min_prob``, default 1e-3): isotonic regression returns exactly 0 for a class in
any confidence region where the calibration split happened to contain none of it. With a few hundred rows
that is sampling noise, not certainty, and a single test row of that class would cost ~34 nats of
log-loss. :meth:`IsotonicCalibrator.transform` therefore keeps every probability at or above ``min_prob``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.errors import DatasetError
from trainfarm.shared.evaluation.metrics import check_labels, check_probs
from trainfarm_client.arrays import FloatArray
from trainfarm_client.calibration import (
    DEFAULT_MIN_PROB,
    KIND,
    IsotonicCalibration,
    IsotonicCurve,
    check_min_prob,
)

__all__ = ["DEFAULT_MIN_PROB", "KIND", "FloatArray", "IsotonicCalibrator"]


class IsotonicCalibrator:
    """Per-class isotonic calibration; fit with :meth:`fit`, apply with :meth:`transform`."""

    def __init__(self, *, min_prob: float = DEFAULT_MIN_PROB) -> None:
        self.min_prob = check_min_prob(min_prob)
        self._fitted: IsotonicCalibration | None = None

    @property
    def fitted(self) -> bool:
        """Whether the calibrator has curves (from :meth:`fit` or :meth:`from_json`)."""
        return self._fitted is not None

    @property
    def calibration(self) -> IsotonicCalibration:
        """The fitted curves as the bot client applies them; ``RuntimeError`` before :meth:`fit`."""
        if self._fitted is None:
            raise RuntimeError("the calibrator is not fitted; call fit() or from_json() first")
        return self._fitted

    def fit(self, probs: npt.ArrayLike, y: npt.ArrayLike) -> IsotonicCalibrator:
        """Fit the three curves on calibration-split probabilities and labels; returns ``self``.

        Raises :class:`DatasetError` when a class is absent from ``y``: its curve would be 0 everywhere.
        """
        from sklearn.isotonic import IsotonicRegression  # fit-time only: loading needs no sklearn

        p = check_probs(probs, "calibration probs")
        labels = check_labels(y, p.shape[0], "calibration labels")
        missing = [CLASSES[k] for k in range(len(CLASSES)) if not (labels == k).any()]
        if missing:
            raise DatasetError(
                f"class(es) {', '.join(missing)} absent from the {labels.size} calibration rows; "
                "the calibration split is too short to calibrate on"
            )
        curves = []
        for k in range(len(CLASSES)):
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
            iso.fit(p[:, k], (labels == k).astype(np.float64))
            curves.append(
                IsotonicCurve(
                    x=np.asarray(iso.X_thresholds_, dtype=np.float64).copy(),
                    y=np.asarray(iso.y_thresholds_, dtype=np.float64).copy(),
                )
            )
        self._fitted = IsotonicCalibration(curves=tuple(curves), min_prob=self.min_prob)
        return self

    def per_class(self, probs: npt.ArrayLike) -> FloatArray:
        """Each column through its curve, before the floor and renormalisation (equals sklearn's predict)."""
        return self.calibration.per_class(probs)

    def transform(self, probs: npt.ArrayLike) -> FloatArray:
        """Calibrated ``n x 3`` probabilities, rows summing to 1, no entry below ``min_prob``.

        See :meth:`trainfarm_client.calibration.IsotonicCalibration.transform` (the one implementation).
        """
        return self.calibration.transform(probs)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form: the kind, the floor and each class's thresholds (floats round-trip exactly)."""
        return self.calibration.to_json()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        """Rebuild a calibrator from :meth:`to_json` output; raises ``ValueError`` on a malformed dict."""
        fitted = IsotonicCalibration.from_json(data)
        calibrator = cls(min_prob=fitted.min_prob)
        calibrator._fitted = fitted
        return calibrator
