"""A replay's metrics from hand-built scores: against the prior, the book, months, degradation, the checks."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.errors import DataError
from trainfarm.shared.evaluation.book import annualised_sharpe
from trainfarm.shared.evaluation.metrics import log_loss
from trainfarm.shared.replay.metrics import (
    POLICIES,
    PROB_COLUMNS,
    SCORE_SCHEMA,
    check_scores,
    degradation_curve,
    equity_curves,
    policy_metrics,
    rolling_logloss_vs_prior,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PRIOR = (0.3, 0.4, 0.3)
Probs = npt.ArrayLike


def scores_frame(
    dates: Sequence[datetime],
    *,
    labels: Sequence[int | None],
    bar_return: Sequence[float] | None = None,
    fwd_return: Sequence[float | None] | None = None,
    probs: Mapping[str, Probs] | None = None,
    signals: Mapping[str, Sequence[int]] | None = None,
) -> pl.DataFrame:
    """Four policies on ``dates``: each scores the prior and never signals unless given otherwise."""
    n = len(dates)
    frames = []
    for policy in POLICIES:
        p = np.asarray((probs or {}).get(policy, np.tile(PRIOR, (n, 1))), dtype=np.float64)
        has_model = policy != "prior"
        frames.append(
            pl.DataFrame(
                {
                    "date": pl.Series(dates, dtype=pl.Datetime("us", "UTC")),
                    "policy": [policy] * n,
                    "point": pl.Series([0] * n, dtype=pl.Int64),
                    "version": pl.Series([f"v-{policy}" if has_model else None] * n, dtype=pl.String),
                    "trained_at": pl.Series([T0 if has_model else None] * n, dtype=pl.Datetime("us", "UTC")),
                    **{column: p[:, k] for k, column in enumerate(PROB_COLUMNS)},
                    "signal": pl.Series(list((signals or {}).get(policy, [0] * n)), dtype=pl.Int8),
                    "label": pl.Series(list(labels), dtype=pl.Int64),
                    "fwd_return": pl.Series(
                        list(fwd_return) if fwd_return is not None else [0.0] * n, dtype=pl.Float64
                    ),
                    "bar_return": pl.Series(
                        list(bar_return) if bar_return is not None else [0.0] * n, dtype=pl.Float64
                    ),
                }
            )
        )
    return pl.concat(frames).sort("policy", "date")


def hourly(n: int, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(n)]


def sure_of(labels: Sequence[int], confidence: float = 0.9) -> npt.NDArray[np.float64]:
    """Probabilities putting ``confidence`` on each row's true class, the rest shared."""
    out = np.full((len(labels), 3), (1.0 - confidence) / 2.0)
    out[np.arange(len(labels)), labels] = confidence
    return out


def metrics(scores: pl.DataFrame, *, horizon: int = 1, fee: float = 0.001) -> dict[str, dict[str, object]]:
    return policy_metrics(
        scores,
        promotions={"gated": 2, "always": 5},
        horizon=horizon,
        fee=fee,
        periods_per_year=8760.0,
        ece_bins=10,
    )


def test_the_schema_follows_the_class_order() -> None:
    assert CLASSES == ("down", "neutral", "up")
    assert PROB_COLUMNS == ("p_down", "p_neutral", "p_up")
    assert list(SCORE_SCHEMA)[:5] == ["date", "policy", "point", "version", "trained_at"]


def test_a_policy_that_is_the_prior_scores_zero_against_it_and_never_trades() -> None:
    labels = [0, 1, 2, 1, None, 2]
    scores = scores_frame(hourly(6), labels=labels, bar_return=[0.01, -0.02, 0.0, 0.03, 0.01, 0.0])
    out = metrics(scores)
    assert set(out) == set(POLICIES)
    assert annualised_sharpe(np.zeros(6), 8760.0) == 0.0  # what an idle book's Sharpe is, not NaN
    for policy in ("static", "prior"):
        m = out[policy]
        assert m["logloss_vs_prior"] == 0.0
        assert m["signals"] == 0 and m["win_rate"] is None
        assert m["sharpe"] == 0.0 and m["total_return"] == 0.0 and m["max_drawdown"] == 0.0
        assert m["scored_bars"] == 6 and m["labelled_bars"] == 5
        assert m["logloss"] == pytest.approx(log_loss(np.tile(PRIOR, (5, 1)), [0, 1, 2, 1, 2]))
    assert out["gated"]["promotions"] == 2 and out["always"]["promotions"] == 5
    assert out["static"]["promotions"] == 0 and out["prior"]["promotions"] == 0
    json.dumps(out, allow_nan=False)  # JSON-ready: no NaN, no numpy scalars


def test_a_sure_and_right_model_beats_the_prior() -> None:
    labels = [0, 1, 2, 2, 1, 0, 1, 2]
    scores = scores_frame(hourly(8), labels=labels, probs={"gated": sure_of(labels)})
    out = metrics(scores)
    gated, prior = out["gated"], out["prior"]
    assert isinstance(gated["logloss"], float) and isinstance(prior["logloss"], float)
    assert gated["logloss"] == pytest.approx(-math.log(0.9))
    assert gated["logloss"] < prior["logloss"]
    assert gated["logloss_vs_prior"] == pytest.approx(gated["logloss"] - prior["logloss"])
    assert isinstance(gated["brier"], float) and isinstance(prior["brier"], float)
    assert gated["brier"] < prior["brier"]
    assert gated["ece"] == pytest.approx(0.1)  # always 90% sure, always right


@pytest.mark.parametrize(("horizon", "flat_start"), [(1, 0), (3, 2)])
def test_a_constant_long_pays_one_round_trip(horizon: int, flat_start: int) -> None:
    # With a horizon of h the book needs h bars to be fully long: those bars carry no return here.
    n = 10
    rng = np.random.default_rng(3)
    bars = rng.normal(0.0, 0.01, n)
    bars[:flat_start] = 0.0
    bars[-1] = 0.0  # the last bar has no next close
    scores = scores_frame(hourly(n), labels=[1] * n, bar_return=bars.tolist(), signals={"always": [1] * n})
    out = metrics(scores, horizon=horizon, fee=0.002)
    assert out["always"]["total_return"] == pytest.approx(bars.sum() - 0.002, abs=1e-12)
    assert out["always"]["signals"] == n


def test_the_win_rate_counts_signals_with_a_known_return_after_the_fee() -> None:
    # Wins: long into +1% (yes), short into +1% (no), long into -1% (no), long into +0.05% (no: the fee),
    # short into -1% (yes); a long whose return is unknown (the label runs past the data) is not counted.
    fwd = [0.01, 0.01, -0.01, 0.0005, -0.01, None]
    scores = scores_frame(
        hourly(6), labels=[2, 2, 0, 1, 0, None], fwd_return=fwd, signals={"gated": [1, -1, 1, 1, -1, 1]}
    )
    gated = metrics(scores, fee=0.001)["gated"]
    assert gated["signals"] == 6
    assert gated["win_rate"] == pytest.approx(2 / 5)


def test_the_months_add_up_to_the_whole_replay() -> None:
    dates = [datetime(2024, 1, 20, tzinfo=UTC) + timedelta(hours=6 * i) for i in range(200)]  # to March
    rng = np.random.default_rng(7)
    labels: list[int | None] = [int(x) for x in rng.integers(0, 3, 200)]
    labels[-5:] = [None] * 5
    signals = rng.choice([-1, 0, 1], size=200).tolist()
    scores = scores_frame(
        dates,
        labels=labels,
        bar_return=rng.normal(0.0, 0.01, 200).tolist(),
        probs={"gated": rng.dirichlet([2.0, 2.0, 2.0], 200)},
        signals={"gated": signals},
    )
    gated = metrics(scores, horizon=4)["gated"]
    monthly = gated["monthly"]
    assert isinstance(monthly, list)
    assert [m["month"] for m in monthly] == ["2024-01", "2024-02", "2024-03"]
    assert sum(m["bars"] for m in monthly) == gated["scored_bars"] == 200
    assert sum(m["labelled_bars"] for m in monthly) == gated["labelled_bars"] == 195
    assert sum(m["signals"] for m in monthly) == gated["signals"] == sum(s != 0 for s in signals)
    assert sum(m["pnl"] for m in monthly) == pytest.approx(gated["total_return"], abs=1e-12)
    assert monthly[0]["bars"] == 48  # Jan 20 00:00 .. Jan 31 18:00, four bars a day
    # A month's log-loss is over its own labelled bars.
    jan = scores.filter((pl.col("policy") == "gated") & (pl.col("date") < datetime(2024, 2, 1, tzinfo=UTC)))
    assert monthly[0]["logloss"] == pytest.approx(
        log_loss(jan.select(PROB_COLUMNS).to_numpy(), jan["label"].to_numpy())
    )


def test_a_month_without_labels_has_no_scores() -> None:
    dates = [datetime(2024, 1, 31, 23, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)]
    monthly = metrics(scores_frame(dates, labels=[1, None]))["prior"]["monthly"]
    assert monthly == [
        {
            "month": "2024-01",
            "bars": 1,
            "labelled_bars": 1,
            "logloss": pytest.approx(-math.log(0.4)),
            "brier": pytest.approx(0.3**2 * 2 + 0.6**2),
            "signals": 0,
            "pnl": 0.0,
        },
        {
            "month": "2024-02",
            "bars": 1,
            "labelled_bars": 0,
            "logloss": None,
            "brier": None,
            "signals": 0,
            "pnl": 0.0,
        },
    ]


def test_the_degradation_curve_counts_whole_months_since_the_start() -> None:
    # Days 0, 10, 30 fall in month 0 (a month is 30.4375 days), 31 in 1, 61 in 2, 125 in 4; none in 3.
    days = [0, 10, 30, 31, 61, 125]
    dates = [T0 + timedelta(days=d) for d in days]
    labels: list[int | None] = [0, 1, 2, 1, None, 2]
    sure = sure_of([0, 1, 2, 1, 0, 2])
    scores = scores_frame(dates, labels=labels, probs={"gated": sure, "always": sure_of([2, 2, 0, 0, 0, 0])})
    curve = degradation_curve(scores)
    assert [row["month"] for row in curve] == [0, 1, 2, 4]
    assert [row["bars"] for row in curve] == [3, 1, 1, 1]
    assert [row["static"] for row in curve] == [0.0, 0.0, None, 0.0]
    assert curve[2]["gated"] is None and curve[2]["always"] is None  # month 2 has no labelled bar
    prior0 = log_loss(np.tile(PRIOR, (3, 1)), [0, 1, 2])
    assert curve[0]["gated"] == pytest.approx(log_loss(sure[:3], [0, 1, 2]) - prior0)
    assert curve[0]["always"] == pytest.approx(math.log(1 / 0.05) - prior0)  # all wrong
    assert degradation_curve(scores.clear()) == []
    json.dumps(curve, allow_nan=False)


def test_rolling_log_loss_against_the_prior_over_labelled_bars() -> None:
    labels: list[int | None] = [1, None, 1, 1]
    gated = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.3, 0.4, 0.3], [0.1, 0.8, 0.1]])
    scores = scores_frame(hourly(4), labels=labels, probs={"gated": gated})
    rolling = rolling_logloss_vs_prior(scores, window=2)
    assert rolling.columns == ["date", "gated", "always", "static", "shadow"]
    assert rolling["date"].to_list() == [hourly(4)[i] for i in (0, 2, 3)]
    better = math.log(0.4) - math.log(0.8)  # one bar at 0.8 instead of the prior's 0.4
    assert rolling["gated"].to_list() == pytest.approx([better, better / 2, better / 2])
    assert rolling["static"].to_list() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="window"):
        rolling_logloss_vs_prior(scores, window=0)


def test_equity_curves_are_the_cumulative_book() -> None:
    scores = scores_frame(
        hourly(3), labels=[1, 1, 1], bar_return=[0.01, 0.02, 0.0], signals={"gated": [1, 1, 1]}
    )
    equity = equity_curves(scores, horizon=1, fee=0.002)
    assert equity.columns == ["date", *POLICIES]
    assert equity["gated"].to_list() == pytest.approx([0.01 - 0.001, 0.029, 0.028])
    assert equity["prior"].to_list() == [0.0, 0.0, 0.0]


def test_check_scores_names_a_missing_or_mistyped_column() -> None:
    scores = scores_frame(hourly(3), labels=[0, 1, 2])
    check_scores(scores)
    with pytest.raises(DataError, match="fwd_return") as missing:
        check_scores(scores.drop("fwd_return"))
    assert missing.value.column == "fwd_return"
    with pytest.raises(DataError, match="'date'") as naive:
        check_scores(scores.with_columns(pl.col("date").dt.replace_time_zone(None)))
    assert naive.value.column == "date"
    with pytest.raises(DataError, match="signal"):
        check_scores(scores.with_columns(pl.col("signal").cast(pl.Int64)))


def test_check_scores_refuses_policies_on_different_bars() -> None:
    scores = scores_frame(hourly(4), labels=[0, 1, 2, 1])
    dropped = scores.filter(~((pl.col("policy") == "always") & (pl.col("date") == hourly(4)[2])))
    with pytest.raises(DataError, match=r"identical bars.*not by \['always'\]") as err:
        check_scores(dropped)
    assert err.value.column == "date"
    with pytest.raises(DataError, match="identical bars"):
        check_scores(scores.filter(pl.col("policy") != "prior"))
    with pytest.raises(DataError, match="identical bars"):
        policy_metrics(dropped, promotions={}, horizon=1, fee=0.0, periods_per_year=1.0, ece_bins=10)


def test_check_scores_refuses_other_broken_frames() -> None:
    scores = scores_frame(hourly(3), labels=[0, 1, 2])
    with pytest.raises(DataError, match="unknown policies"):
        check_scores(scores.with_columns(pl.col("policy").replace("always", "sometimes")))
    with pytest.raises(DataError, match="signals must be"):
        check_scores(scores.with_columns(pl.lit(2, dtype=pl.Int8).alias("signal")))
    with pytest.raises(DataError, match="more than once"):
        check_scores(pl.concat([scores, scores.head(1)]))
    with pytest.raises(DataError, match="null") as nulls:
        check_scores(scores.with_columns(pl.lit(None, dtype=pl.Float64).alias("p_up")))
    assert nulls.value.column == "p_up"
    relabelled = scores.with_columns(
        pl.when(pl.col("policy") == "gated").then(0).otherwise(pl.col("label")).alias("label")
    )
    with pytest.raises(DataError, match="disagree") as truth:
        check_scores(relabelled)
    assert truth.value.column == "label"
