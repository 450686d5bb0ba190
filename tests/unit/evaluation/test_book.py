"""The overlapping book: positions of 1/h for h bars, fees on every entry and exit, per-bar Sharpe."""

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
    # fees (0.001 per entry or exit of a full position, halved by 1/h):
    #   row 0: entry long 0                    -> 0.0005
    #   row 1: entry long 1                    -> 0.0005
    #   row 2: exit long 0                     -> 0.0005
    #   row 3: exit long 1, entry short 3, and the short closed at the last row -> 0.0015
    expected = np.array(
        [0.5 * 0.01 - 0.0005, 1.0 * 0.02 - 0.0005, 0.5 * -0.01 - 0.0005, -0.5 * 0.03 - 0.0015]
    )
    np.testing.assert_allclose(pnl, expected, rtol=0, atol=1e-15)


def test_every_entry_pays_its_exit_inside_the_sample() -> None:
    rng = np.random.default_rng(3)
    signal = rng.choice([-1, 0, 1], size=200)
    for horizon in (1, 3, 12):
        fees = -book_pnl(signal, np.zeros(200), horizon=horizon, fee=0.002).sum()
        # One round trip per signal, on a position of 1/h of the capital: fee / h each.
        assert fees == pytest.approx(0.002 / horizon * np.abs(signal).sum())


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
