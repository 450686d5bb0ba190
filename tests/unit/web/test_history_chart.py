"""The history page's chart geometry (web/history_chart.py): axes, ticks, lines, markers and segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.web.history import ChampionPeriod, MarketHistory, Move, VersionPoint
from trainfarm.web.history_chart import (
    LEFT,
    MAX_TIME_TICKS,
    RIGHT,
    WIDTH,
    TimeAxis,
    ValueAxis,
    history_charts,
    nice_step,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _point(day: int, logloss: float | None, verdict: str = "passed") -> VersionPoint:
    """Version ``v<day>`` built ``day`` days after T0, with the prior at 1.1 and the best base at 1.05."""
    failed = ("sharpe",) if verdict == "failed" else ()
    return VersionPoint(
        f"v{day}", T0 + day * DAY, "candidate", logloss, 1.1, 1.05, "lightgbm", verdict, failed, ("schedule",)
    )


def test_the_time_axis_spans_the_box_and_ticks_whole_days() -> None:
    axis = TimeAxis(T0, T0 + 10 * DAY)
    assert LEFT < axis.x(T0) < axis.x(T0 + 5 * DAY) < axis.x(T0 + 10 * DAY) < WIDTH - RIGHT
    assert axis.x(T0 - 100 * DAY) == LEFT and axis.x(T0 + 100 * DAY) == WIDTH - RIGHT  # clamped
    ticks = axis.ticks()
    assert 3 <= len(ticks) <= MAX_TIME_TICKS + 1
    # Every second UTC midnight (counted from the epoch), inside the padded span.
    assert [t.label for t in ticks] == ["2026-03-02", "2026-03-04", "2026-03-06", "2026-03-08", "2026-03-10"]
    assert [t.at for t in ticks] == sorted(t.at for t in ticks)
    hours = TimeAxis(T0, T0 + timedelta(hours=5)).ticks()
    assert hours[0].label == "03-01 00:00" and len(hours) <= MAX_TIME_TICKS + 1
    # One instant (a single version, nothing else): an hour's axis, not a division by zero.
    assert TimeAxis(T0, T0).x(T0) > LEFT


@pytest.mark.parametrize(
    ("raw", "step"), [(0.0123, 0.02), (0.02, 0.02), (0.21, 0.25), (3.0, 5.0), (7.0, 10.0), (120.0, 200.0)]
)
def test_nice_steps(raw: float, step: float) -> None:
    assert nice_step(raw) == pytest.approx(step)


def test_the_value_axis_covers_its_values_on_whole_ticks() -> None:
    axis = ValueAxis([1.042, 1.088], top=10, bottom=110)
    # Padded by 6% (1.0392 .. 1.0908), a quarter of that rounded up to a nice step (0.02), whole steps.
    assert [t.label for t in axis.ticks()] == ["1.02", "1.04", "1.06", "1.08", "1.10"]
    assert axis.y(axis.lo) == 110 and axis.y(axis.hi) == 10 and 10 < axis.y(1.05) < 110
    assert [t.label for t in ValueAxis([0.0, 1.0], 0, 100, fmt=".0%", pad=False).ticks()] == [
        "0%", "25%", "50%", "75%", "100%"
    ]  # fmt: skip
    flat = ValueAxis([2.0, 2.0], 0, 100)  # equal values: a range around them
    assert flat.lo < 2.0 < flat.hi
    # Across zero: zero is a tick (the lines at a Sharpe of 0 and the threshold read against it).
    assert [t.label for t in ValueAxis([-0.02, 0.03], 0, 100).ticks()] == [
        "-0.04",
        "-0.02",
        "0.00",
        "0.02",
        "0.04",
    ]


def test_the_charts_of_a_history() -> None:
    moves = (Move(T0 + DAY, "v1", None, "gate"), Move(T0 + 3 * DAY, "v1", "v3", "rollback"))
    history = MarketHistory(
        "BTC_USDT",
        "1h",
        (_point(0, 1.04), _point(1, 1.08, "failed"), _point(2, None, "none"), _point(3, 1.02)),
        moves,
        (ChampionPeriod(moves[0], moves[1].at, 30, 0.6, 1.5), ChampionPeriod(moves[1], None, 0, None, None)),
        truncated=False,
        min_win_rate=0.45,
        min_live_sharpe=0.3,
    )
    logloss, win_rate, sharpe = history_charts(history, now=T0 + 4 * DAY)

    prior, base, model = logloss.series
    assert (prior.css, base.css, model.css) == ("prior", "base", "model")
    # The model line breaks where a version has no log-loss: two pieces, three points.
    assert model.path.count("M") == 2 and model.path.count("L") == 1
    assert [p.css for p in model.points] == ["passed", "failed", "passed"]
    assert [p.href for p in model.points] == ["/versions/v0", "/versions/v1", "/versions/v3"]
    assert "gates failed: sharpe" in model.points[1].title and "run: schedule" in model.points[1].title
    assert prior.path.count("M") == 1 and len(prior.points) == 4  # the prior has a figure for every one
    lower = model.points[2]  # 1.08 above 1.04 above 1.02 (y grows downwards)
    assert logloss.top < model.points[1].y < model.points[0].y < lower.y < logloss.bottom
    assert [m.css for m in logloss.markers] == ["promotion", "rollback"]
    assert "rolled back to v1 (from v3)" in logloss.markers[1].title
    assert "v1 promoted (gate) (the first champion)" in logloss.markers[0].title
    assert logloss.markers[0].x == win_rate.markers[0].x == sharpe.markers[0].x  # one time axis

    live, empty = win_rate.segments
    assert live.label == "60% · n=30" and live.x1 < live.x2 and "30 live outcomes" in live.title
    assert empty.css == "empty" and empty.label == "n=0" and "needs two outcomes" in empty.title
    assert win_rate.threshold is not None and win_rate.threshold.label == "45%"
    assert win_rate.threshold.at == pytest.approx(win_rate.bottom - 0.45 * (win_rate.bottom - win_rate.top))
    assert sharpe.segments[0].label == "1.50 · n=30" and sharpe.threshold is not None
    assert sharpe.segments[0].y < sharpe.threshold.at  # 1.5 is above the 0.3 line
    assert empty.x2 == win_rate.segments[1].x2 and empty.x2 <= win_rate.right  # the open period runs to now
    for chart in (logloss, win_rate, sharpe):
        assert chart.label and chart.x_ticks and chart.y_ticks and chart.legend


def test_an_empty_history_still_draws_axes() -> None:
    history = MarketHistory("ETH_USDT", "5m", (), (), (), truncated=False)
    logloss, win_rate, sharpe = history_charts(history, now=T0)
    assert logloss.series[2].points == () and logloss.series[2].path == ""
    assert win_rate.segments == () and win_rate.threshold is None and sharpe.y_ticks


def test_a_period_too_short_for_its_label_gets_a_shorter_one_or_none() -> None:
    moves = (
        Move(T0, "a", None, "gate"),
        Move(T0 + 4 * DAY, "b", "a", "gate"),
        Move(T0 + 4 * DAY + timedelta(hours=5), "c", "b", "gate"),
        Move(T0 + 4 * DAY + timedelta(hours=6), "d", "c", "gate"),
    )
    ends = [m.at for m in moves[1:]] + [T0 + 4 * DAY + timedelta(hours=7)]
    periods = tuple(ChampionPeriod(m, end, 25, 0.52, 1.0) for m, end in zip(moves, ends, strict=True))
    history = MarketHistory("BTC_USDT", "1h", (_point(0, 1.0),), moves, periods, truncated=False)
    _, win_rate, _ = history_charts(history, now=T0 + 4 * DAY + timedelta(hours=7))
    wide, medium, narrow, _ = win_rate.segments
    assert wide.label == "52% · n=25"
    assert medium.label == "52%" and 30 < medium.x2 - medium.x1 < 70  # the figure alone fits
    assert narrow.label == "" and "25 live outcomes" in narrow.title  # the hover text still has it
