"""The overlapping book: positions of 1/h for h bars, fees on position changes, per-bar Sharpe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainfarm.shared.evaluation.book import annualised_sharpe, bar_returns, book_pnl, sharpe_lower_bound


def test_book_by_hand_with_a_two_bar_horizon() -> None:
    # Signals: long at 0, long at 1, flat at 2, short at 3. Each position is half the capital for 2 bars.
    signal = np.array([1, 1, 0, -1])
    bars = np.array([0.01, 0.02, -0.01, 0.03])
    pnl = book_pnl(signal, bars, horizon=2, fee=0.002)
    # position: 0.5, 1.0, 0.5 (the long from row 1), -0.5 (the short from row 3)
    # fees: half the round trip (0.001) per unit of position change, and the close at the last row:
    #   row 0: 0 -> 0.5                              -> 0.0005
    #   row 1: 0.5 -> 1.0                            -> 0.0005
    #   row 2: 1.0 -> 0.5                            -> 0.0005
    #   row 3: 0.5 -> -0.5, then -0.5 closed at the end -> 0.0015
    expected = np.array(
        [0.5 * 0.01 - 0.0005, 1.0 * 0.02 - 0.0005, 0.5 * -0.01 - 0.0005, -0.5 * 0.03 - 0.0015]
    )
    np.testing.assert_allclose(pnl, expected, rtol=0, atol=1e-15)


def _fees(signal: list[int] | np.ndarray, horizon: int, fee: float = 0.002) -> float:
    """What the book charges on a flat market (every bar's return 0): its fees alone."""
    return float(-book_pnl(np.asarray(signal), np.zeros(len(signal)), horizon=horizon, fee=fee).sum())


def test_a_constant_signal_pays_exactly_one_round_trip() -> None:
    # A signal that replaces an expiring one in the same direction changes no position: nothing to pay.
    assert _fees([1] * 24, horizon=6) == pytest.approx(0.002)  # charged per slice, this was 0.008
    assert _fees([1] * 10, horizon=1) == pytest.approx(0.002)  # ... and 10 round trips
    assert _fees([0] * 5 + [-1] * 30 + [0] * 5, horizon=4) == pytest.approx(0.002)


def test_alternating_signals_pay_on_every_change() -> None:
    # Long, short, long, ... at h = 1: the first entry (half), a full reversal each bar (2 halves), and the
    # close at the end (half): one round trip per bar.
    n = 11
    assert _fees([1 if t % 2 == 0 else -1 for t in range(n)], horizon=1) == pytest.approx(0.002 * n)


def test_the_fees_are_those_of_the_position_a_trader_holds() -> None:
    # Against a plain loop over the bars: the book's position, what changing it costs, and the final close.
    rng = np.random.default_rng(3)
    for horizon in (1, 3, 12):
        signal = rng.choice([-1, 0, 1], size=200)
        held, paid = 0.0, 0.0
        for t in range(signal.size):
            position = signal[max(0, t - horizon + 1) : t + 1].sum() / horizon
            paid += 0.001 * abs(position - held)
            held = position
        paid += 0.001 * abs(held)
        assert _fees(signal, horizon) == pytest.approx(paid, abs=1e-12)
        # Netting never costs more than paying every slice's own entry and exit.
        assert _fees(signal, horizon) <= 0.002 / horizon * np.abs(signal).sum() + 1e-12


def test_the_book_does_not_count_overlapping_moves_h_times() -> None:
    """On a random walk, signals every bar: the per-signal Sharpe of h-bar returns is ~sqrt(h) too big."""
    rng = np.random.default_rng(0)
    n, h = 20_000, 12
    bars = rng.normal(0.0002, 0.01, size=n)
    signal = np.ones(n)
    book = annualised_sharpe(book_pnl(signal, bars, horizon=h, fee=0.0), 365.0)
    # The book holds the whole capital long every bar: its Sharpe is the asset's own.
    assert book == pytest.approx(annualised_sharpe(bars, 365.0), rel=0.01)
    windows = np.convolve(bars, np.ones(h), mode="valid")  # each signal's h-bar return
    per_signal = annualised_sharpe(windows, 365.0)
    assert per_signal / book == pytest.approx(math.sqrt(h), rel=0.2)


def test_bar_returns_stop_at_segment_breaks_and_the_last_row() -> None:
    close = np.array([100.0, 101.0, 99.99, 50.0, 55.0])
    segment = np.array([0, 0, 0, 1, 1])
    np.testing.assert_allclose(bar_returns(close, segment), [0.01, -0.01, 0.0, 0.1, 0.0])
    with pytest.raises(ValueError, match="positive"):
        bar_returns(np.array([1.0, 0.0]), np.array([0, 0]))


def test_sharpe_lower_bound_lies_below_the_point() -> None:
    rng = np.random.default_rng(1)
    pnl = rng.normal(0.001, 0.01, size=800)
    point = annualised_sharpe(pnl, 365.0)
    lower = sharpe_lower_bound(pnl, periods_per_year=365.0, horizon=4, confidence=0.95, samples=500, seed=2)
    assert lower < point
    assert lower == sharpe_lower_bound(
        pnl, periods_per_year=365.0, horizon=4, confidence=0.95, samples=500, seed=2
    )
    assert annualised_sharpe([0.01], 365.0) == 0.0 and annualised_sharpe([0.01, 0.01], 365.0) == 0.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="only -1, 0 and"):
        book_pnl([2], [0.0], horizon=1, fee=0.0)
    with pytest.raises(ValueError, match="horizon"):
        book_pnl([1], [0.0], horizon=0, fee=0.0)
    with pytest.raises(ValueError, match="equally long"):
        book_pnl([1, 0], [0.0], horizon=1, fee=0.0)
