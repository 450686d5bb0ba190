"""Training-free null candidates for the gates' Monte Carlo: random walks, random probabilities, real judging.

A null case is what the gates would see from a model that knows nothing, built in milliseconds instead of a
training run, so that thousands of them can measure the gates' false-positive rates
(``tests/integration/evaluation/test_gate_null_rates.py``). Everything after the model is the farm's own
code, in the order :func:`trainfarm.shared.training.judging.judge` runs it:

1. **Prices.** A Gaussian random walk of one-bar log returns with a constant, known sigma (the synthetic
   bars' 5m sigma, :data:`trainfarm.shared.data.synthetic.DEFAULT_SIGMA`, scaled by the square root of the
   bar length). It is long enough for a calibration split and a test split of the timeframe's real test
   size (:data:`TEST_ROWS`), a purge gap of ``label_horizon`` bars between them, and ``label_horizon`` bars
   after the test split for its last forward return.
2. **Labels.** Each row's ``label_horizon``-bar forward log return against ``label_threshold * sigma *
   sqrt(horizon)`` with the TRUE sigma (:mod:`trainfarm.shared.dataset.labels` uses a trailing estimate).
   The class probabilities are then the same on every row: not even P(neutral) carries information, so no
   check may find skill, and every pass is a false positive.
3. **Raw probabilities.** The softmax of three AR(1) logit series, independent of the prices: persistent
   (the persistence is drawn per case from :data:`PERSISTENCE`) like a stacker's output on slowly moving
   features, with a per-case logit scale (:data:`LOGIT_SCALES`) and a per-case bias around the true class
   log-probabilities (the miscalibration a real stacker brings from its training rows). Persistent noise is
   the hard case for the gates: its errors do not average out within a block.
4. **Judging**, as a run does: the calibrator fitted on the calibration split
   (:func:`~trainfarm.shared.stacking.temperature.fit_temperature_shrink`), p* chosen on the cross-fitted
   calibration probabilities (:func:`~trainfarm.shared.stacking.temperature.cross_fitted`,
   :func:`~trainfarm.shared.evaluation.trading.choose_p_star` with the floors of
   :func:`~trainfarm.shared.evaluation.gates.p_star_floors`), and the test split scored against the
   calibration split's class prior, with each split's one-bar returns for the overlapping book
   (:func:`~trainfarm.shared.evaluation.book.bar_returns`, 0 on a split's last row, as the judge computes
   them from the split's closes).

:func:`planted_case` is the same generator with real information, so the test can show that the harness
has the power to see a candidate pass: the model reads each row's standardised forward return ``d``
through noise, ``s = d + e`` with ``corr(s, d) = strength``, and its logits are the log of the exact class
probabilities given ``s`` (Gaussian ``d``, the true label threshold) plus the same persistent noise and
bias. Adding ``strength * d`` to the up logit instead would also inflate the up and down shares on every
row (the softmax is convex), a miscalibration in the large that the two-number calibrator cannot undo.
Every case is deterministic in its timeframe and seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
from scipy.special import ndtr

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.synthetic import DEFAULT_SIGMA
from trainfarm.shared.dataset.labels import DOWN, NEUTRAL, UP
from trainfarm.shared.evaluation.book import bar_returns
from trainfarm.shared.evaluation.gates import ScoredPredictions, p_star_floors
from trainfarm.shared.evaluation.metrics import class_prior
from trainfarm.shared.evaluation.trading import ThresholdRule, matched_threshold, periods_per_year
from trainfarm.shared.stacking.temperature import cross_fitted, fit_temperature_shrink
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.arrays import FloatArray, IntArray
from trainfarm_client.calibration import TemperatureShrinkCalibration

#: Test rows of each timeframe's default training window (the calibration split is given as many).
TEST_ROWS: Mapping[Timeframe, int] = {
    Timeframe.M5: 2590,
    Timeframe.H1: 1313,
    Timeframe.H12: 327,
    Timeframe.D1: 218,
}
#: AR(1) coefficients of the raw logits, one drawn per case: a half-life of about 7, 23 and 69 rows.
PERSISTENCE: tuple[float, ...] = (0.9, 0.97, 0.99)
#: Stationary standard deviations of the raw logits, one drawn per case (raw probabilities of roughly
#: +-0.05, +-0.1 and +-0.2 around the class shares).
LOGIT_SCALES: tuple[float, ...] = (0.25, 0.5, 1.0)
#: Standard deviation of the per-case bias added to each class's logit (raw miscalibration).
BIAS_SD = 0.15
#: Seeds of different timeframes draw from different streams (the index of the timeframe).
_TIMEFRAME_STREAM: Mapping[Timeframe, int] = {tf: i for i, tf in enumerate(Timeframe)}


@dataclass(frozen=True)
class SimulatedCase:
    """One judged case: what was drawn, the calibrator and p* the farm chose, and the test candidate."""

    timeframe: Timeframe
    seed: int
    persistence: float
    logit_scale: float
    strength: float  #: 0 for a null case
    calibrator: TemperatureShrinkCalibration
    candidate: ScoredPredictions  #: the test split's, as the gates receive it (``p_star`` included)


def bar_sigma(timeframe: Timeframe) -> float:
    """The random walk's one-bar log-return std: the synthetic 5m sigma times sqrt(5m bars per bar)."""
    return DEFAULT_SIGMA * math.sqrt(timeframe.base_bars)


def null_case(timeframe: Timeframe, seed: int, *, config: FarmConfig) -> SimulatedCase:
    """A candidate with no information at all, judged as a run would judge it (see the module docs)."""
    return _simulate(timeframe, seed, config=config, strength=0.0)


def planted_case(timeframe: Timeframe, seed: int, *, config: FarmConfig, strength: float) -> SimulatedCase:
    """The null generator with real information: ``strength`` (in (0, 1)) is the correlation of the
    model's reading with the row's forward return (see the module docs)."""
    if not 0 < strength < 1:
        raise ValueError(f"strength must lie in (0, 1), got {strength}")
    return _simulate(timeframe, seed, config=config, strength=strength)


def _simulate(timeframe: Timeframe, seed: int, *, config: FarmConfig, strength: float) -> SimulatedCase:
    params = config.params(timeframe)
    horizon, n = params.label_horizon, TEST_ROWS[timeframe]
    rng = np.random.default_rng([seed, _TIMEFRAME_STREAM[timeframe]])
    sigma = bar_sigma(timeframe)

    # Rows: calibration [0, n), purge gap [n, n + h), test [n + h, 2n + h); h more bars end the last label.
    rows = 2 * n + horizon
    walk = null_walk(rng, timeframe, config, rows)
    fwd = walk.fwd
    persistence = float(rng.choice(PERSISTENCE))
    logit_scale = float(rng.choice(LOGIT_SCALES))
    noise = rng.normal(0.0, BIAS_SD, 3) + _ar1(rng, rows, persistence, logit_scale)
    if strength > 0:
        reading = fwd / (sigma * math.sqrt(horizon)) + rng.normal(0.0, math.sqrt(1 / strength**2 - 1), rows)
        known = _posterior(reading, strength, params.label_threshold)
    else:
        known = np.broadcast_to(_posterior(np.zeros(1), 0.0, params.label_threshold), (rows, 3))
    raw = _softmax(np.log(known) + noise)
    calibrator, candidate = judged(
        timeframe, config, walk, raw, cal=slice(0, n), test=slice(n + horizon, rows)
    )
    return SimulatedCase(timeframe, seed, persistence, logit_scale, strength, calibrator, candidate)


@dataclass(frozen=True)
class NullWalk:
    """A Gaussian random walk and its labels: each row's close, forward log return and class."""

    close: FloatArray
    fwd: FloatArray  #: log return over the next ``label_horizon`` bars
    y: IntArray  #: its class against ``label_threshold * sigma * sqrt(horizon)`` with the TRUE sigma


def null_walk(rng: np.random.Generator, timeframe: Timeframe, config: FarmConfig, rows: int) -> NullWalk:
    """``rows`` labelled rows of a random walk with the timeframe's sigma (``label_horizon`` more bars are
    drawn to end the last label); see the module docs, steps 1 and 2."""
    params = config.params(timeframe)
    horizon, sigma = params.label_horizon, bar_sigma(timeframe)
    log_close = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, sigma, rows + horizon))])
    fwd: FloatArray = log_close[horizon : rows + horizon] - log_close[:rows]
    scale = params.label_threshold * sigma * math.sqrt(horizon)
    y: IntArray = np.where(fwd < -scale, DOWN, np.where(fwd > scale, UP, NEUTRAL)).astype(np.int64)
    return NullWalk(100.0 * np.exp(log_close), fwd, y)


def judged(
    timeframe: Timeframe,
    config: FarmConfig,
    walk: NullWalk,
    raw: FloatArray,
    *,
    cal: slice,
    test: slice,
) -> tuple[TemperatureShrinkCalibration, ScoredPredictions]:
    """Calibrate on the ``cal`` rows, choose p* on them cross-fitted, and score the ``test`` rows, as
    :func:`trainfarm.shared.training.judging.judge` does (see the module docs, step 4)."""
    params = config.params(timeframe)
    scoring = config.evaluation
    horizon = params.label_horizon
    y, fwd, close = walk.y[cal], walk.fwd[cal], walk.close[cal]
    calibrator = fit_temperature_shrink(raw[cal], y)
    per_year = periods_per_year(timeframe.minutes)
    floor_signals, floor_share = p_star_floors(params.gates, config.gates.profile, scoring.min_signals)
    rule = ThresholdRule(scoring.fee, floor_signals, floor_share, per_year, horizon)
    crossed = cross_fitted(raw[cal], y, horizon)
    chosen = rule.choose(crossed, fwd, _split_bar_returns(close))
    p_star = matched_threshold(crossed, chosen, calibrator.transform(raw[cal]))
    candidate = ScoredPredictions(
        probs=calibrator.transform(raw[test]),
        y=walk.y[test],
        fwd_return=walk.fwd[test],
        prior=class_prior(y),
        p_star=p_star,
        fee=scoring.fee,
        periods_per_year=per_year,
        label_horizon=horizon,
        bar_return=_split_bar_returns(walk.close[test]),
    )
    return calibrator, candidate


def _posterior(reading: FloatArray, strength: float, threshold: float) -> FloatArray:
    """P(down), P(neutral), P(up) of each row given ``reading = d + e`` (``d`` the standardised forward
    return, standard normal; ``e`` independent noise with ``corr(reading, d) = strength``; 0: no reading).

    ``d`` given the reading is normal with mean ``strength**2 * reading`` and variance ``1 - strength**2``.
    """
    mean = strength**2 * reading
    sd = math.sqrt(1.0 - strength**2)
    down = ndtr((-threshold - mean) / sd)
    up = ndtr((mean - threshold) / sd)
    out: FloatArray = np.clip(np.column_stack([down, 1.0 - down - up, up]), 1e-12, 1.0)
    return out


def _ar1(rng: np.random.Generator, rows: int, phi: float, sd: float) -> FloatArray:
    """``rows`` x 3 independent stationary AR(1) series with coefficient ``phi`` and std ``sd``."""
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), (rows, 3))
    shocks[0] = rng.normal(0.0, sd, 3)  # the first row from the stationary law
    out: FloatArray = np.asarray(lfilter([1.0], [1.0, -phi], shocks, axis=0), dtype=np.float64)
    return out


def _softmax(logits: FloatArray) -> FloatArray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: FloatArray = z / z.sum(axis=1, keepdims=True)
    return out


def _split_bar_returns(close: FloatArray) -> FloatArray:
    """One split's one-bar returns, as the judge computes them from its closes (one gap-free segment)."""
    return bar_returns(close, np.zeros(close.size, dtype=np.int64))


__all__ = [
    "BIAS_SD",
    "LOGIT_SCALES",
    "PERSISTENCE",
    "TEST_ROWS",
    "NullWalk",
    "SimulatedCase",
    "bar_sigma",
    "judged",
    "null_case",
    "null_walk",
    "planted_case",
]
