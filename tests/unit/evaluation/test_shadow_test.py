"""The shadow test's statistics at the scale that could catch them failing: 1,000 simulated cases each.

Each case is a live window of ``BARS`` bars whose true class probabilities drift slowly (an AR(1) logit:
neighbouring bars are alike, as real features make them); labels are drawn from them. Champion and
challenger see the truth through persistent noise of their own (AR(1) too, so their per-bar errors are
autocorrelated, which an i.i.d. bootstrap would understate). Under the null both have the same noise; a
worse challenger has more. The figures these tests assert are the rates the module promises.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainfarm.shared.evaluation.shadow_test import ShadowBars, shadow_verdict, signal_values
from trainfarm_client.arrays import FloatArray

CASES = 1000
BARS = 200
HORIZON = 6
CONFIDENCE = 0.95
SAMPLES = 500


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float, sd: float) -> FloatArray:
    out = np.empty((n, k))
    out[0] = rng.normal(0, sd, k)
    innovation = sd * math.sqrt(1 - phi * phi)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + rng.normal(0, innovation, k)
    return out


def _softmax(logits: FloatArray) -> FloatArray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: FloatArray = z / z.sum(axis=1, keepdims=True)
    return out


def _signals(p: FloatArray, p_star: float = 0.45) -> FloatArray:
    direction = np.where(p[:, 2] >= p[:, 0], 1.0, -1.0)
    out: FloatArray = np.where(np.maximum(p[:, 0], p[:, 2]) >= p_star, direction, 0.0)
    return out


def case(seed: int, *, champion_noise: float, challenger_noise: float, n: int = BARS) -> ShadowBars:
    """One simulated live window (see the module docs)."""
    rng = np.random.default_rng(seed)
    truth = _softmax(_ar1(rng, n, 3, 0.9, 0.8))
    labels = np.array([rng.choice(3, p=row) for row in truth], dtype=np.int64)
    # The bar returns follow the labels' direction a little, so the books' P&L depends on the models.
    bar_return = 0.002 * (labels - 1) / HORIZON + rng.normal(0, 0.004, n)
    log_truth = np.log(truth)
    champion = _softmax(log_truth + _ar1(rng, n, 3, 0.8, champion_noise))
    challenger = _softmax(log_truth + _ar1(rng, n, 3, 0.8, challenger_noise))
    return ShadowBars(
        paired=np.ones(n, dtype=bool),
        label=labels,
        champion=champion,
        challenger=challenger,
        champion_signal=_signals(champion),
        challenger_signal=_signals(challenger),
        bar_return=bar_return,
    )


def verdicts(champion_noise: float, challenger_noise: float, seed0: int) -> list[tuple[str, str]]:
    out = []
    for seed in range(seed0, seed0 + CASES):
        window = case(seed, champion_noise=champion_noise, challenger_noise=challenger_noise)
        v = shadow_verdict(
            window, min_bars=BARS, horizon=HORIZON, fee=0.0, confidence=CONFIDENCE, samples=SAMPLES, seed=seed
        )
        out.append((v.decision, v.reason))
    return out


def _upper_95(hits: int, n: int) -> float:
    """Wilson upper bound: a rate this test may not exceed without the claim being wrong."""
    z = 1.96
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


@pytest.mark.slow
def test_an_equal_challenger_is_rarely_called_significantly_worse() -> None:
    # Same noise for both: any "significantly worse" is a false alarm. Each one-sided test is nominally at
    # 5%; on these strongly persistent errors (AR 0.8-0.9) and 200 bars the percentile block bootstrap
    # undercovers a little: measured 7.5% (log-loss) and 7.7% (P&L, among the rest) at seed 10,000, as
    # docs/ml.md#shadow-challengers reports. The bound asserted is the claim made there: under 10% each.
    results = verdicts(0.5, 0.5, seed0=10_000)
    worse_ll = sum("log-loss significantly worse" in r for _, r in results)
    worse_pnl = sum("P&L significantly worse" in r for _, r in results)
    promoted = sum(d == "promote" for d, _ in results)
    assert _upper_95(worse_ll, CASES) < 0.10, (worse_ll, worse_pnl, promoted)
    assert _upper_95(worse_pnl, CASES) < 0.10, (worse_ll, worse_pnl, promoted)
    # The point estimate favours an equal challenger about half the time (it costs nothing to promote it).
    assert 0.35 <= promoted / CASES <= 0.55, promoted


@pytest.mark.slow
def test_a_clearly_worse_challenger_is_retired_and_a_clearly_better_one_promoted() -> None:
    worse = verdicts(0.3, 1.5, seed0=20_000)
    retired = sum(d == "retire" for d, _ in worse)
    assert retired / CASES >= 0.95, retired
    significant = sum("significantly worse" in r for _, r in worse)
    assert significant / CASES >= 0.8, significant
    better = verdicts(1.5, 0.3, seed0=30_000)
    promoted = sum(d == "promote" for d, _ in better)
    assert promoted / CASES >= 0.9, promoted


def test_below_min_bars_the_verdict_waits() -> None:
    window = case(1, champion_noise=0.5, challenger_noise=0.5, n=50)
    v = shadow_verdict(window, min_bars=60, horizon=HORIZON, fee=0.0, confidence=0.95, samples=200, seed=1)
    assert (v.decision, v.bars, v.logloss_diff) == ("wait", 50, None)
    assert "50 of 60" in v.reason


def test_only_paired_bars_count_and_unpaired_bars_keep_both_books_flat() -> None:
    window = case(2, champion_noise=0.5, challenger_noise=0.5, n=120)
    paired = window.paired.copy()
    paired[::3] = False
    holes = ShadowBars(
        paired=paired,
        label=window.label,
        champion=window.champion,
        challenger=window.challenger,
        champion_signal=np.where(paired, window.champion_signal, 0.0),
        challenger_signal=np.where(paired, window.challenger_signal, 0.0),
        bar_return=window.bar_return,
    )
    v = shadow_verdict(holes, min_bars=60, horizon=HORIZON, fee=0.001, confidence=0.95, samples=200, seed=2)
    assert v.bars == int(paired.sum()) == 80
    # The log-loss is over the paired bars only.
    from trainfarm.shared.evaluation.metrics import log_loss

    expected = log_loss(window.challenger[paired], window.label[paired]) - log_loss(
        window.champion[paired], window.label[paired]
    )
    assert v.logloss_diff == pytest.approx(expected)


def test_shapes_are_checked_and_signals_are_read() -> None:
    window = case(3, champion_noise=0.5, challenger_noise=0.5, n=10)
    with pytest.raises(ValueError, match="label has shape"):
        ShadowBars(window.paired, window.label[:5], window.champion, window.challenger,
                   window.champion_signal, window.challenger_signal, window.bar_return)  # fmt: skip
    assert signal_values(["up", "down", None, ""]).tolist() == [1.0, -1.0, 0.0, 0.0]
