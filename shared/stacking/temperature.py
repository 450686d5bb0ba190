"""Fitting the default calibrator: temperature scaling, then shrinkage toward the recent class prior.

``p = (1 - shrink) * softmax(log(q) / T) + shrink * prior`` (applied by
:class:`trainfarm_client.calibration.TemperatureShrinkCalibration`). ``T`` and ``shrink`` minimise the
log-loss on the calibration split, over a fixed grid (two numbers: nothing to overfit with a few hundred
rows, and a grid has no convergence to fail). The smallest shrink is ``1 / rows`` (:func:`min_shrink`), a
probability floor tied to the calibration size. Isotonic calibration is not offered: per class it needs
far more rows than a calibration split holds (the farm's 12h/24h splits have about 200), and outside
its fitted range it predicts the floor for the true class. ``prior`` is the calibration split's own
class shares, the most recent data the model may use, so base-rate drift between train and calibration
is absorbed here and a stacker with no signal left falls back to the prior (``shrink`` near 1).

:func:`cross_fitted` gives calibrated probabilities for the calibration rows that no calibrator saw while
it was fitted (two time-ordered halves, a purge gap between them): what the decision threshold p* is
chosen on, instead of the in-sample fit.
"""

from __future__ import annotations

import numpy as np

from trainfarm.shared.stacking.selection import class_shares
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.calibration import TemperatureShrinkCalibration

TEMPERATURES = tuple(float(t) for t in np.geomspace(0.25, 4.0, 25))
SHRINKS = tuple(float(w) for w in np.linspace(0.0, 1.0, 41))


def min_shrink(rows: int) -> float:
    """The smallest shrink a calibrator fitted on ``rows`` rows may use: ``1 / rows``.

    It is the calibrator's probability floor: every class keeps at least ``prior_k / rows``, so a row whose
    class the model ruled out costs at most ``log(rows / prior_k)`` nats (about 7-9 on a few hundred to a
    few thousand rows), instead of the 34.5 of a clipped zero. Fewer rows earn less trust in the extremes.
    """
    return 1.0 / max(rows, 1)


def fit_temperature_shrink(probs: FloatArray, y: IntArray) -> TemperatureShrinkCalibration:
    """The (temperature, shrink) pair of the grid with the lowest log-loss of ``probs`` against ``y``.

    The shrink grid starts at :func:`min_shrink` of the number of rows (the probability floor).
    """
    prior = class_shares(y)
    prior_t = (float(prior[0]), float(prior[1]), float(prior[2]))
    floor = min_shrink(y.size)
    shrinks = np.array([floor, *(w for w in SHRINKS if w > floor)])
    picked_p = prior[y]
    rows = np.arange(y.size)
    best: tuple[float, float, float] | None = None
    for t in TEMPERATURES:
        picked_t = TemperatureShrinkCalibration(t, 0.0, prior_t).transform(probs)[rows, y]
        # Every shrink of this temperature at once (row by row the same arithmetic as one at a time).
        mixed = (1 - shrinks)[:, None] * picked_t[None, :] + shrinks[:, None] * picked_p[None, :]
        losses = -np.mean(np.log(np.clip(mixed, 1e-15, 1.0)), axis=1)
        for w, loss in zip(shrinks, losses, strict=True):
            if best is None or loss < best[0] - 1e-12:
                best = (float(loss), t, float(w))
    assert best is not None
    return TemperatureShrinkCalibration(best[1], best[2], prior_t)


def cross_fitted(probs: FloatArray, y: IntArray, purge: int) -> FloatArray:
    """Calibrated probabilities of every row from a calibrator fitted without it (two halves, purged).

    The first half is calibrated by a fit on the second and vice versa; the ``purge`` rows after the first
    half belong to neither fit and take the second half's calibrator, which never saw them either.
    """
    n = y.size
    half = n // 2
    first = np.arange(0, max(0, half))
    second = np.arange(min(n, half + purge), n)
    if first.size < 10 or second.size < 10:
        # Too few rows to split: the in-sample fit is all there is (the caller's gates judge the result).
        out: FloatArray = fit_temperature_shrink(probs, y).transform(probs)
        return out
    on_first = fit_temperature_shrink(probs[first], y[first])
    on_second = fit_temperature_shrink(probs[second], y[second])
    result = on_first.transform(probs)  # the second half and the purge gap: fitted on the first
    result[first] = on_second.transform(probs[first])
    return result
