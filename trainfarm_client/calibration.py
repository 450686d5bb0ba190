"""Applying the per-class isotonic calibration stored in a pack's ``calibrator.json`` (numpy only).

The farm fits the curves (``trainfarm.shared.stacking.isotonic.IsotonicCalibrator``, with scikit-learn) and
writes only their thresholds; this module is the one implementation of reading and applying them, used by the
farm and by bots alike, so a bot's calibrated probabilities are bit-identical to the farm's.

Each class ``k`` has an increasing step-and-ramp curve ``p_k -> P(y = k)`` given by its thresholds.
Applying it is ``np.interp`` on them, which is what sklearn's ``IsotonicRegression.predict`` computes with
``out_of_bounds="clip"`` (linear between thresholds, held constant outside). The three curve values of a
row are then renormalised to sum to 1 and kept at or above ``min_prob``; see :meth:`transform` for why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trainfarm_client.arrays import FloatArray
from trainfarm_client.probs import CLASSES, N_CLASSES, check_probs

KIND = "isotonic"
DEFAULT_MIN_PROB = 1e-3


def check_min_prob(min_prob: float) -> float:
    """``min_prob`` as a float, or ``ValueError``: three floors must leave room for a distribution."""
    if not 0.0 <= min_prob < 1.0 / len(CLASSES):
        raise ValueError(f"min_prob must be in [0, 1/{len(CLASSES)}), got {min_prob}")
    return float(min_prob)


@dataclass(frozen=True, eq=False)
class IsotonicCurve:
    """One class's fitted thresholds: ``x`` non-decreasing, ``y`` the calibrated value at each."""

    x: FloatArray
    y: FloatArray


@dataclass(frozen=True, eq=False)
class IsotonicCalibration:
    """Fitted per-class isotonic curves (down, neutral, up) and the probability floor; apply with
    :meth:`transform`. Build one with :meth:`from_json` from a pack's ``calibrator.json``."""

    curves: tuple[IsotonicCurve, ...]
    min_prob: float = DEFAULT_MIN_PROB

    def __post_init__(self) -> None:
        check_min_prob(self.min_prob)
        if len(self.curves) != len(CLASSES):
            raise ValueError(f"need one curve per class {list(CLASSES)}, got {len(self.curves)}")

    def per_class(self, probs: npt.ArrayLike) -> FloatArray:
        """Each column through its curve, before the floor and renormalisation (equals sklearn's predict)."""
        p = check_probs(probs, allow_nan=True)
        out = np.empty_like(p)
        for k, curve in enumerate(self.curves):
            # np.interp holds the end values outside [x[0], x[-1]], i.e. out_of_bounds="clip".
            out[:, k] = np.interp(p[:, k], curve.x, curve.y)
        return out

    def transform(self, probs: npt.ArrayLike) -> FloatArray:
        """Calibrated ``n x 3`` probabilities: every finite row sums to 1 and no entry is below ``min_prob``.

        The three curve values are renormalised to sum to 1, then mixed with the uniform distribution,
        ``(1 - 3 * min_prob) * q + min_prob``, which guarantees the floor exactly and moves no probability
        by more than ``2 * min_prob``. The floor exists because isotonic regression returns exactly 0 for a
        class wherever the calibration split happened to hold none of it: with a few hundred rows that is
        sampling noise, not certainty, and one such row would cost ~34 nats of log-loss. A row whose curve
        values sum to 0 (all three curves at 0) falls back to the uncalibrated row. NaN rows stay NaN.
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
        return {
            "kind": KIND,
            "classes": list(CLASSES),
            "min_prob": self.min_prob,
            "curves": {
                name: {"x_thresholds": c.x.tolist(), "y_thresholds": c.y.tolist()}
                for name, c in zip(CLASSES, self.curves, strict=True)
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IsotonicCalibration:
        """Rebuild from :meth:`to_json` output (a pack's ``calibrator.json``); ``ValueError`` if malformed."""
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
            curves.append(IsotonicCurve(x=x, y=y))
        return cls(curves=tuple(curves), min_prob=float(data.get("min_prob", DEFAULT_MIN_PROB)))


TEMPERATURE_KIND = "temperature-shrink"


@dataclass(frozen=True)
class TemperatureShrinkCalibration:
    """Temperature scaling, then shrinkage toward the class prior: the default calibrator (pack format 2).

    ``p = (1 - shrink) * softmax(log(q) / temperature) + shrink * prior`` for the stacker's probabilities
    ``q``. Both parameters are fitted on the calibration split; ``prior`` is that split's class shares (the
    most recent data the model may use), so a model with no signal falls back to the prior. Two numbers
    fitted on a few hundred rows cannot overfit the way per-class isotonic curves do, and the mixture keeps
    every class at least ``shrink * prior``: no row is ever assigned a near-zero probability.
    """

    temperature: float
    shrink: float
    prior: tuple[float, float, float]

    def __post_init__(self) -> None:
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.shrink <= 1.0:
            raise ValueError(f"shrink must lie in [0, 1], got {self.shrink}")
        prior = np.asarray(self.prior, dtype=np.float64)
        if prior.shape != (N_CLASSES,) or (prior <= 0).any() or abs(prior.sum() - 1.0) > 1e-9:
            raise ValueError(f"prior must be {N_CLASSES} positive shares summing to 1, got {self.prior}")

    def transform(self, probs: npt.ArrayLike) -> FloatArray:
        """Calibrated ``n x 3`` probabilities (rows sum to 1)."""
        q = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
        z = np.log(q) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        tempered = np.exp(z)
        tempered /= tempered.sum(axis=1, keepdims=True)
        out: FloatArray = (1.0 - self.shrink) * tempered + self.shrink * np.asarray(self.prior)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": TEMPERATURE_KIND,
            "temperature": self.temperature,
            "shrink": self.shrink,
            "prior": list(self.prior),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TemperatureShrinkCalibration:
        if data.get("kind") != TEMPERATURE_KIND:
            raise ValueError(f"not a {TEMPERATURE_KIND} calibrator: kind {data.get('kind')!r}")
        prior = tuple(float(v) for v in data["prior"])
        if len(prior) != N_CLASSES:
            raise ValueError(f"prior must have {N_CLASSES} shares, got {len(prior)}")
        return cls(float(data["temperature"]), float(data["shrink"]), (prior[0], prior[1], prior[2]))


Calibration = IsotonicCalibration | TemperatureShrinkCalibration


def load_calibration(data: dict[str, Any]) -> Calibration:
    """The calibrator a pack's ``calibrator.json`` describes, by its ``kind``."""
    kind = data.get("kind")
    if kind == TEMPERATURE_KIND:
        return TemperatureShrinkCalibration.from_json(data)
    if kind == KIND:
        return IsotonicCalibration.from_json(data)
    raise ValueError(f"unknown calibrator kind {kind!r}; expected {TEMPERATURE_KIND!r} or {KIND!r}")
