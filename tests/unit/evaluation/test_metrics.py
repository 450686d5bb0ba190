"""Evaluation: hand-computed scores and simulation, p* chosen on calibration only, JSON-safe report."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss

from trainfarm.shared.evaluation.metrics import (
    brier,
    check_probs,
    class_prior,
    evaluate,
    expected_calibration_error,
    headline,
    log_loss,
    mean_confidence,
    pr_auc_lift,
    predicted_class_share,
    prior_probs,
)
from trainfarm.shared.evaluation.trading import (
    TradingResult,
    choose_p_star,
    matched_threshold,
    max_drawdown,
    periods_per_year,
    simulate,
)


def sample_labels(probs: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """One label per row drawn from that row's probabilities."""
    u = rng.random(probs.shape[0])[:, None]
    return (u > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, 2).astype(np.int64)


# ----------------------------------------------------------------------------------- scores


def test_log_loss_and_brier_by_hand() -> None:
    probs = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    y = np.array([0, 2])
    assert log_loss(probs, y) == pytest.approx((math.log(2) - math.log(0.8)) / 2, rel=1e-12)
    assert log_loss(probs, y) == pytest.approx(sk_log_loss(y, probs, labels=[0, 1, 2]), rel=1e-12)
    # Row 0: 0.5^2 + 2 * 0.25^2 = 0.375; row 1: 0.01 + 0.01 + 0.04 = 0.06.
    assert brier(probs, y) == pytest.approx((0.375 + 0.06) / 2, rel=1e-12)
    assert log_loss([[0.0, 0.5, 0.5]], [0]) == pytest.approx(-math.log(1e-15))  # clipped, not infinite


def test_class_prior_floor_and_prior_probs() -> None:
    prior = class_prior(np.array([0, 0, 1, 1]))
    assert prior.sum() == pytest.approx(1.0, abs=1e-15)
    assert prior[0] == prior[1] == pytest.approx(0.5, abs=1e-6)
    assert 0 < prior[2] < 2e-6
    rows = prior_probs(prior, 4)
    assert rows.shape == (4, 3)
    np.testing.assert_array_equal(rows[3], prior)
    y = np.array([0, 1, 2, 2])
    assert log_loss(prior_probs(class_prior(y), 4), y) == pytest.approx(
        -(math.log(0.25) * 2 + math.log(0.5) * 2) / 4
    )


def test_input_checks() -> None:
    with pytest.raises(ValueError, match="n x 3"):
        check_probs(np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        log_loss([[np.nan, 0.5, 0.5]], [0])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        brier([[2.0, -1.0, 0.0]], [0])
    with pytest.raises(ValueError, match="3 rows"):
        log_loss(np.full((2, 3), 1 / 3), [0, 1, 2])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        log_loss(np.full((1, 3), 1 / 3), [3])


# -------------------------------------------------------------------------- calibration & shape


def test_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.5, 0.3, 0.2]])
    y = np.array([0, 1, 0])
    # Bin 0.9: confidence 0.9, accuracy 0.5 (2 rows); bin 0.5: confidence 0.5, accuracy 1 (1 row).
    assert expected_calibration_error(probs, y) == pytest.approx((2 * 0.4 + 0.5) / 3, rel=1e-12)
    assert expected_calibration_error([[1.0, 0.0, 0.0]], [0]) == 0.0  # confidence 1.0 is in the last bin


def test_ece_of_calibrated_probabilities_is_small() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=50_000)
    y = sample_labels(probs, rng)
    assert expected_calibration_error(probs, y) < 0.01
    sharp = probs**4 / (probs**4).sum(axis=1, keepdims=True)
    assert expected_calibration_error(sharp, y) > 0.05


def test_pr_auc_lift_random_perfect_and_absent() -> None:
    rng = np.random.default_rng(2)
    n = 30_000
    y = rng.choice(3, size=n, p=[0.3, 0.45, 0.25])
    lift = pr_auc_lift(rng.dirichlet([1.0, 1.0, 1.0], size=n), y)
    for value in lift.values():
        assert value is not None and value == pytest.approx(1.0, abs=0.05)
    perfect = np.eye(3)[y]
    prevalence = np.bincount(y) / n
    for k, value in enumerate(pr_auc_lift(perfect, y).values()):
        assert value == pytest.approx(1 / prevalence[k])
    absent = pr_auc_lift(np.full((4, 3), 1 / 3), np.array([0, 1, 0, 1]))
    assert absent["up"] is None and absent["down"] == pytest.approx(1.0)


def test_share_and_confidence() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]])
    assert predicted_class_share(probs) == {"down": 0.25, "neutral": 0.25, "up": 0.5}
    assert mean_confidence(probs) == pytest.approx((0.6 + 0.5 + 0.7 + 0.8) / 4)
    assert periods_per_year(60) == 8760.0
    assert periods_per_year(5) == 105_120.0
    assert periods_per_year(1440) == 365.0


# ----------------------------------------------------------------------------- trading simulation


def test_simulate_five_rows_by_hand() -> None:
    probs = np.array(
        [
            [0.1, 0.3, 0.6],  # long,  +2%   -> 0.02 - 0.001  = 0.019
            [0.7, 0.2, 0.1],  # short, -3%   -> 0.03 - 0.001  = 0.029
            [0.2, 0.6, 0.2],  # max directional 0.2 < p*: no signal
            [0.5, 0.0, 0.5],  # tie at p* exactly: a signal, long, -1% -> -0.011
            [0.3, 0.2, 0.5],  # long,  +0.5% -> 0.005 - 0.001 = 0.004
        ]
    )
    fwd = np.log([1.02, 0.97, 1.5, 0.99, 1.005])
    res = simulate(probs, fwd, p_star=0.5, fee=0.001, periods_per_year=100.0)
    assert res.signals == 4
    assert res.eligible_share == 0.8
    assert res.win_rate == 0.75
    assert res.mean_return == pytest.approx(0.041 / 4, rel=1e-12)
    # The book (horizon 1): each signal is the whole capital for one bar; half the round-trip fee on each
    # unit of position change, and the last position closed at the last row:
    #   row 0: +0.02 - 0 -> 1 0.0005                      =  0.0195
    #   row 1: +0.03 - 1 -> -1 0.001                      =  0.029
    #   row 2: flat  - -1 -> 0 0.0005                     = -0.0005
    #   row 3: -0.01 - 0 -> 1 0.0005                      = -0.0105
    #   row 4: +0.005, still long (no trade), closed 0.0005 =  0.0045
    book = np.array([0.0195, 0.029, -0.0005, -0.0105, 0.0045])
    assert res.total_return == pytest.approx(0.042, rel=1e-12)
    assert res.sharpe == pytest.approx(book.mean() / book.std(ddof=1) * math.sqrt(100.0), rel=1e-10)
    # Cumulative: 0.0195, 0.0485, 0.048, 0.0375, 0.042 -> the worst fall from a peak is 0.0485 - 0.0375.
    assert res.max_drawdown == pytest.approx(0.011, rel=1e-10)


def test_simulate_degenerate_cases() -> None:
    probs = np.array([[0.2, 0.6, 0.2], [0.3, 0.4, 0.3]])
    none = simulate(probs, np.array([0.1, -0.1]), p_star=0.5, fee=0.001, periods_per_year=365.0)
    assert none == TradingResult(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    one = simulate(probs, np.array([0.1, -0.1]), p_star=0.3, fee=0.0, periods_per_year=365.0)
    # Only row 1 is a signal; p_up == p_down goes long, into a log return of -0.1: a losing book.
    assert one.signals == 1 and one.sharpe < 0.0 and one.win_rate == 0.0
    assert one.mean_return == pytest.approx(math.expm1(-0.1)) == -one.max_drawdown
    with pytest.raises(ValueError, match="non-finite"):
        simulate(probs, np.array([np.nan, 0.0]), p_star=0.5, fee=0.0, periods_per_year=1.0)


def test_max_drawdown_on_known_sequences() -> None:
    # Curve 0, .1, .05, -.05, .15, -.15: the peak .15 falls to -.15.
    assert max_drawdown([0.1, -0.05, -0.1, 0.2, -0.3]) == pytest.approx(0.3)
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)  # the curve starts at 0, itself a peak
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert max_drawdown([]) == 0.0


# -------------------------------------------------------------------------------------------- p*

HAND_PROBS = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4], [0.3, 0.3, 0.4]])
# Realised (fee 0): +0.01, -0.02, +0.03, +0.01 (short on -1%), -0.05, already in confidence order.
HAND_FWD = np.log([1.01, 1.02, 1.03, 0.99, 0.95])


def test_choose_p_star_by_hand() -> None:
    # Book P&L per threshold (fee 0, horizon 1, over all five bars) and its Sharpe (mean / std, ddof 1):
    #   0.8: .01 0 0 0 0 -> 0.447;  0.7: mean < 0;  0.6: .01 -.02 .03 0 0 -> 0.220;
    #   0.5: .01 -.02 .03 .01 0 -> 0.330;  0.4: mean < 0.
    assert choose_p_star(HAND_PROBS, HAND_FWD, fee=0.0, min_signals=1) == 0.8
    assert choose_p_star(HAND_PROBS, HAND_FWD, fee=0.0, min_signals=2) == 0.5
    assert choose_p_star(HAND_PROBS, HAND_FWD, fee=0.001, min_signals=2) == 0.5  # a fee shifts all alike
    assert choose_p_star(HAND_PROBS, HAND_FWD, fee=0.0, min_signals=6) == 0.4  # too few rows: all bars
    assert choose_p_star(HAND_PROBS, HAND_FWD, fee=0.0, min_signals=1, min_eligible_share=0.9) == 0.4


def test_choose_p_star_takes_calibration_data_only() -> None:
    params = list(inspect.signature(choose_p_star).parameters)
    assert params == [
        "probs_cal",
        "fwd_return_cal",
        "fee",
        "min_signals",
        "periods_per_year",
        "min_eligible_share",
        "bar_return_cal",
        "horizon",
    ]
    rng = np.random.default_rng(3)
    cal_p, cal_r = rng.dirichlet([1, 1, 1], size=400), rng.normal(scale=0.01, size=400)
    p_star = choose_p_star(cal_p, cal_r, fee=0.001, min_signals=20, periods_per_year=8760.0)
    reports = []
    for seed in (4, 5):
        t = np.random.default_rng(seed)
        test_p = t.dirichlet([1, 1, 1], size=300)
        reports.append(
            evaluate(
                meta_probs_test=test_p,
                y_test=t.integers(0, 3, size=300),
                fwd_return_test=t.normal(scale=0.01, size=300),
                y_prior=t.integers(0, 3, size=900),
                base_probs_test={"a": test_p},
                p_star=p_star,
                fee=0.001,
                periods_per_year=8760.0,
                ece_bins=10,
            )
        )
    assert reports[0]["p_star"] == reports[1]["p_star"] == p_star
    assert reports[0]["trading"] != reports[1]["trading"]  # the test data did change


def naive_p_star(
    probs: npt.NDArray[np.float64], fwd: npt.NDArray[np.float64], fee: float, floor: int
) -> float:
    """The documented rule, spelled out as a plain loop over the documented candidates."""
    conf = np.maximum(probs[:, 0], probs[:, 2])
    candidates = [*np.quantile(conf, np.linspace(0, 1, 101)), *np.round(np.arange(0.34, 0.9001, 0.01), 2)]
    candidates.append(np.sort(conf)[::-1][floor - 1])
    best_t, best_mean = -1.0, -math.inf
    for t in sorted(set(candidates)):
        res = simulate(probs, fwd, p_star=t, fee=fee, periods_per_year=1.0)
        if res.signals >= floor and res.sharpe >= best_mean:  # ">=": ties go to the higher t
            best_t, best_mean = t, res.sharpe
    return float(best_t)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**31 - 1),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=1, max_value=40),
)
def test_choose_p_star_matches_the_plain_rule(seed: int, n: int, min_signals: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    fwd = rng.normal(scale=0.02, size=n)
    p_star = choose_p_star(probs, fwd, fee=0.001, min_signals=min_signals)
    if n < min_signals:
        assert p_star == np.maximum(probs[:, 0], probs[:, 2]).min()
        return
    assert simulate(probs, fwd, p_star=p_star, fee=0.001, periods_per_year=1.0).signals >= min_signals
    assert p_star == naive_p_star(probs, fwd, 0.001, min_signals)


# ------------------------------------------------------------------------------------- report


def test_evaluate_report_is_json_safe_and_complete() -> None:
    rng = np.random.default_rng(6)
    n = 200
    y_test = rng.integers(0, 2, size=n)  # "up" absent from test: its PR-AUC lift is null
    good = np.clip(np.eye(3)[y_test] * 0.6 + 0.1 + rng.uniform(0, 0.05, size=(n, 3)), 0, 1)
    good /= good.sum(axis=1, keepdims=True)
    uniform = np.full((n, 3), 1 / 3)
    report = evaluate(
        meta_probs_test=good,
        y_test=y_test,
        fwd_return_test=rng.normal(scale=0.01, size=n),
        y_prior=rng.integers(0, 3, size=600),
        base_probs_test={"uniform": uniform, "good": good, "also_uniform": uniform},
        p_star=0.5,
        fee=0.002,
        periods_per_year=8760.0,
        ece_bins=10,
    )
    json.dumps(report, allow_nan=False)
    assert set(report) == {
        "meta",
        "prior",
        "best_base",
        "logloss_vs_prior",
        "trading",
        "p_star",
        "rows",
        "label_share",
    }
    meta, prior = report["meta"], report["prior"]
    assert isinstance(meta, dict) and isinstance(prior, dict)
    assert set(meta) == {"logloss", "brier", "ece", "mean_confidence", "predicted_share", "pr_auc_lift"}
    assert meta["pr_auc_lift"]["up"] is None
    assert report["best_base"] == {"model": "good", "logloss": meta["logloss"], "brier": meta["brier"]}
    expected = (prior["logloss"] - meta["logloss"]) / prior["logloss"]
    assert report["logloss_vs_prior"] == pytest.approx(expected) and expected > 0
    assert report["rows"] == n
    assert set(report["trading"]) == {
        "signals",
        "eligible_share",
        "win_rate",
        "mean_return",
        "sharpe",
        "max_drawdown",
        "total_return",
    }

    head = headline(report)
    assert list(head) == [
        "meta_logloss",
        "prior_logloss",
        "best_base_logloss",
        "brier",
        "ece",
        "sharpe",
        "win_rate",
        "signals",
    ]
    assert head["meta_logloss"] == meta["logloss"]
    assert head["signals"] == float(report["trading"]["signals"])
    assert math.isnan(headline({})["sharpe"])


def test_evaluate_refuses_missing_base_models() -> None:
    with pytest.raises(ValueError, match="base models"):
        evaluate(
            meta_probs_test=np.full((2, 3), 1 / 3),
            y_test=[0, 1],
            fwd_return_test=[0.0, 0.0],
            y_prior=[0, 1, 2],
            base_probs_test={},
            p_star=0.5,
            fee=0.0,
            periods_per_year=1.0,
            ece_bins=10,
        )


def test_a_threshold_is_carried_to_another_calibration_as_a_count_of_signals() -> None:
    """p* chosen on one calibration of the rows leaves as many signals on another, however it shrinks."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 1.0, (400, 3))
    sharp = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    flat = 0.5 * sharp + 0.5 * np.array([0.3, 0.4, 0.3])  # the same order, pulled toward the prior
    p_star = 0.7  # above any flat probability: 0.5 * 1 + 0.5 * 0.3
    count = int((np.maximum(sharp[:, 0], sharp[:, 2]) >= p_star).sum())
    assert count > 0 and not (np.maximum(flat[:, 0], flat[:, 2]) >= p_star).any()  # as a number: none
    carried = matched_threshold(sharp, p_star, flat)
    assert int((np.maximum(flat[:, 0], flat[:, 2]) >= carried).sum()) == count
    assert matched_threshold(sharp, 0.99, flat) == 0.99  # no signal to carry: unchanged
    with pytest.raises(ValueError, match="same rows"):
        matched_threshold(sharp, p_star, flat[:10])
