"""Isotonic calibration of the meta-learner's probabilities, one curve per class, then renormalised.

Fitted on the CALIBRATION split (never on the rows the meta-learner trained on, whose probabilities are
optimistic, and never on test). For each class ``k`` an increasing step-and-ramp map ``p_k -> P(y = k)`` is
fitted by sklearn's ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``; at prediction time each
column goes through its map and the row is renormalised to sum to 1.

Only the fitted thresholds are kept (``X_thresholds_``/``y_thresholds_``), and prediction is ``np.interp``
on them, which is what sklearn's predict computes (linear between thresholds, clipped outside). So the
JSON form is complete: a bot rebuilds the calibrator without sklearn and without pickle.

Why a probability floor (``min_prob``, default 1e-3): isotonic regression returns exactly 0 for a class in
any confidence region where the calibration split happened to contain none of it. With a few hundred rows
that is sampling noise, not certainty, and a single test row of that class would cost ~34 nats of
log-loss. :meth:`IsotonicCalibrator.transform` therefore keeps every probability at or above ``min_prob``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.errors import DatasetError
from shared.evaluation import check_labels, check_probs
from shared.labels import CLASSES

FloatArray = npt.NDArray[np.float64]

KIND = "isotonic"
DEFAULT_MIN_PROB = 1e-3


@dataclass(frozen=True)
class _Curve:
    x: FloatArray
    y: FloatArray


class IsotonicCalibrator:
    """Per-class isotonic calibration; fit with :meth:`fit`, apply with :meth:`transform`."""

    def __init__(self, *, min_prob: float = DEFAULT_MIN_PROB) -> None:
        if not 0.0 <= min_prob < 1.0 / len(CLASSES):
            raise ValueError(f"min_prob must be in [0, 1/{len(CLASSES)}), got {min_prob}")
        self.min_prob = float(min_prob)
        self._curves: tuple[_Curve, ...] | None = None

    @property
    def fitted(self) -> bool:
        """Whether the calibrator has curves (from :meth:`fit` or :meth:`from_json`)."""
        return self._curves is not None

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
                _Curve(
                    x=np.asarray(iso.X_thresholds_, dtype=np.float64).copy(),
                    y=np.asarray(iso.y_thresholds_, dtype=np.float64).copy(),
                )
            )
        self._curves = tuple(curves)
        return self

    def _require(self) -> tuple[_Curve, ...]:
        if self._curves is None:
            raise RuntimeError("the calibrator is not fitted; call fit() or from_json() first")
        return self._curves

    def per_class(self, probs: npt.ArrayLike) -> FloatArray:
        """Each column through its curve, before the floor and renormalisation (equals sklearn's predict)."""
        curves = self._require()
        p = check_probs(probs, allow_nan=True)
        out = np.empty_like(p)
        for k, curve in enumerate(curves):
            # np.interp holds the end values outside [x[0], x[-1]], i.e. out_of_bounds="clip".
            out[:, k] = np.interp(p[:, k], curve.x, curve.y)
        return out

    def transform(self, probs: npt.ArrayLike) -> FloatArray:
        """Calibrated ``n x 3`` probabilities: every finite row sums to 1 and no entry is below ``min_prob``.

        The three curve values are renormalised to sum to 1, then mixed with the uniform distribution,
        ``(1 - 3 * min_prob) * q + min_prob``, which guarantees the floor exactly and moves no probability
        by more than ``2 * min_prob``. A row whose curve values sum to 0 (all three curves at 0) falls back
        to the uncalibrated row. NaN rows stay NaN.
        """
        p = check_probs(probs, allow_nan=True)
        cal = self.per_class(p)
        total = cal.sum(axis=1, keepdims=True)
        zero = (total[:, 0] <= 0.0) & ~np.isnan(total[:, 0])
        if zero.any():
            cal[zero] = p[zero]
            total[zero] = p[zero].sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = cal / total
        return np.asarray((1.0 - len(CLASSES) * self.min_prob) * q + self.min_prob, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form: the kind, the floor and each class's thresholds (floats round-trip exactly)."""
        curves = self._require()
        return {
            "kind": KIND,
            "classes": list(CLASSES),
            "min_prob": self.min_prob,
            "curves": {
                name: {"x_thresholds": c.x.tolist(), "y_thresholds": c.y.tolist()}
                for name, c in zip(CLASSES, curves, strict=True)
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        """Rebuild a calibrator from :meth:`to_json` output; raises ``ValueError`` on a malformed dict."""
        if data.get("kind") != KIND:
            raise ValueError(f"not an isotonic calibrator: kind={data.get('kind')!r}")
        if list(data.get("classes", [])) != list(CLASSES):
            raise ValueError(f"calibrator classes {data.get('classes')!r} differ from {list(CLASSES)}")
        raw = data.get("curves")
        if not isinstance(raw, dict) or set(raw) != set(CLASSES):
            raise ValueError(f"calibrator needs a curve for each of {list(CLASSES)}")
        curves = []
        for name in CLASSES:
            x = np.asarray(raw[name]["x_thresholds"], dtype=np.float64)
            y = np.asarray(raw[name]["y_thresholds"], dtype=np.float64)
            if x.ndim != 1 or x.shape != y.shape or x.size == 0:
                raise ValueError(f"curve {name!r}: thresholds must be two equal, non-empty lists")
            if not (np.isfinite(x).all() and np.isfinite(y).all()) or np.any(np.diff(x) < 0):
                raise ValueError(f"curve {name!r}: thresholds must be finite and x non-decreasing")
            curves.append(_Curve(x=x, y=y))
        calibrator = cls(min_prob=float(data.get("min_prob", DEFAULT_MIN_PROB)))
        calibrator._curves = tuple(curves)
        return calibrator
