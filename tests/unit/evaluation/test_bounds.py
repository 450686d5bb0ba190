"""Batch-means bounds of a series' mean (shared/evaluation/bounds.py).

Three things are tested: the arithmetic (block sizes, every row used, the Student-t bound, bad input);
agreement of the block standard error with the `arch` package's circular block bootstrap and Bartlett
long-run variance on long AR(1) series; and, the point of the change, the false-positive rate of the
nominal 5% one-sided bound on zero-mean series at scale (iid, autocorrelated, skewed, overlapping labels),
with its power on a small true mean. ``pytest -s`` prints each measured rate with its 95% Clopper-Pearson
interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from arch.bootstrap import CircularBlockBootstrap
from arch.covariance.kernel import Bartlett
from scipy import signal, stats

from trainfarm.shared.evaluation.bounds import TARGET_BLOCKS, MeanBound, block_mean_bound, bound_block

FloatArray = npt.NDArray[np.float64]
#: Blocks a gate needs before it trusts a bound (farm.toml's min_bound_blocks).
MIN_BLOCKS = 20
CONFIDENCE = 0.95
#: The issue's ceiling on the measured false-positive rate of a nominal 5% one-sided bound.
FP_CEILING = 0.065


# --- simulated series ----------------------------------------------------------------------------------


def _ar1(rng: np.random.Generator, m: int, n: int, rho: float) -> FloatArray:
    """``m`` stationary AR(1) series of ``n`` rows with unit-variance innovations (started in equilibrium)."""
    e = rng.standard_normal((m, n))
    if rho == 0.0:
        return e
    x_before = rng.standard_normal(m) / math.sqrt(1.0 - rho * rho)
    out, _ = signal.lfilter([1.0], [1.0, -rho], e, axis=1, zi=(rho * x_before)[:, None])
    return np.asarray(out, dtype=np.float64)


def _moving_sum(rng: np.random.Generator, m: int, n: int, h: int) -> FloatArray:
    """``m`` series of ``n`` rows, each the sum of ``h`` consecutive iid N(0, 1) draws (``h``-bar labels)."""
    e = rng.standard_normal((m, n + h - 1))
    c = np.concatenate([np.zeros((m, 1)), np.cumsum(e, axis=1)], axis=1)
    return np.asarray(c[:, h:] - c[:, :-h], dtype=np.float64)


def _bounds(x: FloatArray, horizon: int) -> list[MeanBound]:
    return [block_mean_bound(row, label_horizon=horizon) for row in x]


def _count_above_zero(x: FloatArray, horizon: int) -> int:
    """Series (rows of ``x``) whose 95% lower bound is above zero and that have enough blocks to be trusted.

    Every series has the same length, so the same blocks and t quantile: the quantile is taken once from
    the module (``MeanBound.quantile``, the slow part of ``lower``) and ``lower = mean - q * se`` is
    applied to all series; a few are checked against ``MeanBound.lower`` itself.
    """
    bounds = _bounds(x, horizon)
    first = bounds[0]
    assert {b.blocks for b in bounds} == {first.blocks}
    q = first.quantile(CONFIDENCE)
    lower = np.array([b.mean for b in bounds]) - q * np.array([b.se for b in bounds])
    for i in range(0, len(bounds), max(1, len(bounds) // 5)):
        assert lower[i] == bounds[i].lower(CONFIDENCE)
    if not first.honest(MIN_BLOCKS):
        return 0
    return int(np.count_nonzero(lower > 0))


def _rate(
    generate: Callable[[np.random.Generator, int], FloatArray],
    horizon: int,
    series: int,
    seed: int,
    chunk: int = 2_000,
) -> tuple[int, int]:
    """(false positives, series) over ``series`` simulated series, generated ``chunk`` at a time."""
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, series, chunk):
        hits += _count_above_zero(generate(rng, min(chunk, series - start)), horizon)
    return hits, series


def _report(name: str, hits: int, series: int) -> tuple[float, float, float]:
    ci = stats.binomtest(hits, series).proportion_ci(CONFIDENCE)
    rate = hits / series
    print(f"\n{name}: {rate:.2%} ({hits}/{series}), 95% CI [{ci.low:.2%}, {ci.high:.2%}]")
    return rate, float(ci.low), float(ci.high)


# --- block sizes ---------------------------------------------------------------------------------------


def test_bound_block_is_rows_over_twenty_within_horizon_and_series() -> None:
    for rows in range(1, 400):
        for horizon in (1, 2, 6, 12, 24):
            block = bound_block(rows, horizon)
            assert block <= rows
            assert block >= min(horizon, rows)
            if horizon <= rows:
                assert block == max(horizon, rows // TARGET_BLOCKS, 1)
    assert bound_block(218, 1) == 10
    assert bound_block(1313, 6) == 65
    assert bound_block(2590, 12) == 129
    assert bound_block(108, 12) == 12  # 108 // 20 = 5 is shorter than a label window
    assert bound_block(7, 12) == 7  # never longer than the series


@pytest.mark.parametrize("rows", [0, -1])
def test_bound_block_rejects_empty(rows: int) -> None:
    with pytest.raises(ValueError):
        bound_block(rows, 1)


# --- the bound's arithmetic ----------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "horizon"), [(21, 1), (45, 1), (218, 1), (1313, 6), (2590, 12), (108, 12)])
def test_every_row_counts_and_blocks_fit(rows: int, horizon: int) -> None:
    x = np.random.default_rng(rows).standard_normal(rows)
    b = block_mean_bound(x, label_horizon=horizon)
    assert b.mean == pytest.approx(float(np.mean(x)), rel=1e-12, abs=1e-15)
    assert b.rows == rows
    assert b.block == bound_block(rows, horizon)
    assert b.blocks == rows // b.block
    assert b.blocks * b.block <= rows
    assert b.df == b.blocks - 1


def test_extra_rows_go_to_the_newest_blocks() -> None:
    # 45 rows: 22 blocks of 2, the newest one of 3.
    x = np.random.default_rng(5).standard_normal(45)
    b = block_mean_bound(x, label_horizon=1)
    assert (b.block, b.blocks) == (2, 22)
    means = [x[i : i + 2].mean() for i in range(0, 42, 2)] + [x[42:].mean()]
    assert b.se == pytest.approx(float(np.std(means, ddof=1) / math.sqrt(22)), rel=1e-12)


def test_constant_series_has_zero_standard_error() -> None:
    b = block_mean_bound(np.full(218, 1.5), label_horizon=1)
    assert b.mean == 1.5
    assert b.se == 0.0
    assert b.lower(CONFIDENCE) == b.upper(CONFIDENCE) == 1.5


def test_one_block_cannot_be_bounded() -> None:
    b = block_mean_bound(np.arange(15.0), label_horizon=12)  # one 12-row window fits once
    assert b.blocks == 1
    assert math.isinf(b.se)
    assert not b.honest(1)  # a t bound needs at least two blocks whatever is asked
    assert not b.honest(MIN_BLOCKS)
    assert b.lower(CONFIDENCE) == -math.inf
    assert b.upper(CONFIDENCE) == math.inf


def test_meta_only_series_is_not_honest() -> None:
    # About 108 rows with a 12-bar label horizon: 9 windows, short of 20.
    b = block_mean_bound(np.random.default_rng(0).standard_normal(108), label_horizon=12)
    assert (b.block, b.blocks) == (12, 9)
    assert math.isfinite(b.se)
    assert not b.honest(MIN_BLOCKS)
    assert b.honest(9)


def test_t_bound_arithmetic() -> None:
    x = np.random.default_rng(11).standard_normal(218) + 0.1
    b = block_mean_bound(x, label_horizon=1)
    assert (b.block, b.blocks) == (10, 21)  # 218 // 10: eight of the 21 blocks hold 11 rows
    assert b.honest(MIN_BLOCKS)
    assert b.lower(CONFIDENCE) < b.mean < b.upper(CONFIDENCE)
    t95, t975 = stats.t.ppf([0.95, 0.975], b.blocks - 1)
    assert b.half_width(0.95) == pytest.approx(t975 * b.se, rel=1e-12)
    assert b.lower(0.95) == pytest.approx(b.mean - t95 * b.se, rel=1e-12)
    assert b.upper(0.95) == pytest.approx(b.mean + t95 * b.se, rel=1e-12)
    assert b.mean - b.lower(0.95) == pytest.approx(b.upper(0.95) - b.mean, rel=1e-12)
    assert b.half_width(0.90) == pytest.approx(b.mean - b.lower(0.95), rel=1e-12)
    assert "t(20)" in b.describe()


@pytest.mark.parametrize(
    "values",
    [
        [1.0, float("nan"), 2.0],
        [1.0, float("inf")],
        [],
        [[1.0, 2.0], [3.0, 4.0]],
    ],
    ids=["nan", "inf", "empty", "2-d"],
)
def test_bad_series_are_rejected(values: list[float] | list[list[float]]) -> None:
    with pytest.raises(ValueError):
        block_mean_bound(values, label_horizon=1)


# --- agreement with arch -------------------------------------------------------------------------------


def test_block_variance_agrees_with_arch() -> None:
    """``se**2`` against arch's circular block bootstrap and Bartlett long-run variance, same block length.

    24 AR(1) series, rho 0.5, n 4,000 (blocks of 200). Tolerances from the estimators' own noise:

    * Batch means with 20 blocks has a relative sd of ``sqrt(2/19) ~ 0.32`` per series; arch's two
      estimators (overlapping blocks) about ``sqrt(4/3 * 200/4000) ~ 0.26``, and they share the data, so
      the per-series log ratio has sd about ``sqrt(2/19 - 2/3 * 2/20) ~ 0.2`` (0.19 measured over 600
      series). The mean log ratio over 24 series has sd ~0.04: it must be within 0.15 (3.5 sd) of 0.
    * arch's estimators centre on the sample mean and divide by n, which biases them low by about
      ``(block + 1) / n`` (5% here: measured 4.8% over 600 series, batch means 0.4%); that known bias is
      removed before comparing. Batch means' ``ddof=1`` has no such bias.
    * The bootstrap and Bartlett are nearly the same estimator (circular vs. truncated triangular
      weights), apart from the bootstrap's replication noise (relative sd ``sqrt(2/1000) ~ 0.045``; 0.031
      measured at 2,000 replications): each series' pair must agree within 20% (4.4 sd).
    * Each series' batch-means ratio must lie within a factor of 2 (3.5 sd of the log ratio).
    """
    n, rho, series, reps = 4_000, 0.5, 24, 1_000
    x = _ar1(np.random.default_rng(20_240_622), series, n, rho)
    # Exact variance of the mean of a stationary AR(1) with unit innovations.
    lags = np.arange(1, n)
    gamma0 = 1.0 / (1.0 - rho * rho)
    true_var = float(gamma0 * (1.0 + 2.0 * np.sum((1.0 - lags / n) * rho**lags)) / n)

    bm, cbb, bart = np.empty(series), np.empty(series), np.empty(series)
    for i, row in enumerate(x):
        b = block_mean_bound(row, label_horizon=1)
        assert (b.block, b.blocks) == (200, 20)
        centring = 1.0 - (b.block + 1) / n
        bm[i] = b.se**2
        bs = CircularBlockBootstrap(b.block, row, seed=1_000 + i)
        cbb[i] = float(np.asarray(bs.var(np.mean, reps=reps), dtype=np.float64).squeeze()) / centring
        long_run = np.asarray(Bartlett(row, bandwidth=b.block).cov.long_run, dtype=np.float64)
        bart[i] = float(long_run.squeeze()) / n / centring

    vs_cbb, vs_bart = np.log(bm / cbb), np.log(bm / bart)
    print(
        f"\nbatch means vs arch (24 AR(1) 0.5 series, n={n}): "
        f"geometric-mean ratio to bootstrap {math.exp(vs_cbb.mean()):.3f} (log sd {vs_cbb.std(ddof=1):.3f}), "
        f"to Bartlett {math.exp(vs_bart.mean()):.3f} (log sd {vs_bart.std(ddof=1):.3f}); "
        f"bootstrap/Bartlett range [{(cbb / bart).min():.3f}, {(cbb / bart).max():.3f}]; "
        f"mean se^2 / exact var(mean) {bm.mean() / true_var:.3f}"
    )
    assert abs(vs_cbb.mean()) < 0.15
    assert abs(vs_bart.mean()) < 0.15
    assert np.all(np.abs(vs_cbb) < math.log(2.0))
    assert np.all(np.abs(vs_bart) < math.log(2.0))
    assert np.all(np.abs(cbb / bart - 1.0) < 0.2)
    # And against the truth: the mean of 24 batch-means variances has relative sd 0.32 / sqrt(24) ~ 0.065.
    assert bm.mean() / true_var == pytest.approx(1.0, abs=0.2)


# --- false-positive rate on zero-mean series -----------------------------------------------------------

#: Series per null scenario. The binomial sd of a rate near 6% is 0.24 points at 10,000 series; the
#: rates measured once over 20,000 series (different seeds) were 4.8% (iid), 6.0% (AR 0.5, n 218),
#: 3.7% (exponential), 5.2% (n 1,313, AR 0.5 + 6-bar), 6.2% (n 1,313, AR 0.9 + 6-bar), 5.3% (n 2,590,
#: AR 0.9 + 12-bar): the two AR scenarios sit close to the 6.5% ceiling.
NULL_SERIES = 10_000

NULL_SCENARIOS: dict[str, tuple[Callable[[np.random.Generator, int], FloatArray], int]] = {
    "n218_iid": (lambda rng, m: rng.standard_normal((m, 218)), 1),
    "n218_ar0.5": (lambda rng, m: _ar1(rng, m, 218, 0.5), 1),
    "n218_exponential": (lambda rng, m: rng.exponential(size=(m, 218)) - 1.0, 1),
    "n1313_ar0.5_sum6": (lambda rng, m: _ar1(rng, m, 1313, 0.5) + _moving_sum(rng, m, 1313, 6), 6),
    "n1313_ar0.9_sum6": (lambda rng, m: _ar1(rng, m, 1313, 0.9) + _moving_sum(rng, m, 1313, 6), 6),
    "n2590_ar0.9_sum12": (lambda rng, m: _ar1(rng, m, 2590, 0.9) + _moving_sum(rng, m, 2590, 12), 12),
}


@pytest.mark.parametrize("name", list(NULL_SCENARIOS))
def test_false_positive_rate_within_ceiling(name: str) -> None:
    generate, horizon = NULL_SCENARIOS[name]
    seed = 7_000 + list(NULL_SCENARIOS).index(name)
    hits, series = _rate(generate, horizon, NULL_SERIES, seed)
    rate, low, _ = _report(name, hits, series)
    assert rate <= FP_CEILING
    if name == "n218_iid":
        # iid normal rows make the 21 block means independent and normal (of 10 or 11 rows): the t bound
        # is all but exact, so the rate must be near 5% from below too, not conservative (3.5% is 6
        # binomial sd under 5%), and 5% must lie in its interval.
        assert low <= 0.05 and rate >= 0.035


def test_meta_only_series_never_passes() -> None:
    # About 108 rows with a 12-bar horizon: 9 blocks, not honest at 20, so never above zero.
    hits, series = _rate(
        lambda rng, m: _ar1(rng, m, 108, 0.5) + _moving_sum(rng, m, 108, 12), 12, 2_000, seed=7_100
    )
    _report("n108_h12 (meta-only)", hits, series)
    assert hits == 0


def test_documented_limit_short_persistent_series() -> None:
    """n 218, AR(1) 0.9: 21 blocks of 10-11 rows cannot absorb that persistence (adjacent block means
    correlate at about 0.5), so the bound is anti-conservative. Measured 15.4% over 20,000 series (and
    about 15% here); reported, not asserted against the ceiling."""
    hits, series = _rate(lambda rng, m: _ar1(rng, m, 218, 0.9), 1, 2_000, seed=7_200)
    rate, _, _ = _report("n218_ar0.9 (documented limit)", hits, series)
    assert 0.0 <= rate <= 1.0


def test_power_on_a_small_true_mean() -> None:
    """A true mean of 0.25 sd of iid normal rows, n 218 (21 blocks of 10-11 rows): t = mean / se is close
    to noncentral t with 20 degrees of freedom and noncentrality ``0.25 * sqrt(218) ~ 3.7``, which puts the
    bound above zero in about 97% of series. The measured share must be well over half and within 3 points
    of that (the binomial sd at 4,000 series is 0.3 points; unequal block lengths move the prediction a
    little)."""
    series, shift = 4_000, 0.25
    x = np.random.default_rng(7_300).standard_normal((series, 218)) + shift
    df = block_mean_bound(x[0], label_horizon=1).df
    assert df == 20
    predicted = float(stats.nct.sf(stats.t.ppf(CONFIDENCE, df), df, shift * math.sqrt(218)))
    hits = _count_above_zero(x, 1)
    rate, _, _ = _report(f"power at +{shift} sd (predicted {predicted:.1%})", hits, series)
    assert rate > 0.5
    assert rate == pytest.approx(predicted, abs=0.03)
