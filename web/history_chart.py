"""The history page's charts as geometry: pixel positions, tick labels and hover texts, no markup.

``templates/_chart.html`` draws a :class:`Chart` as inline SVG, the way the version page draws its bar
charts: no charting library, no script, nothing fetched from elsewhere, and every text (version ids, run
reasons, check names) goes through Jinja's autoescaping. The three charts of a market share one time axis
(:class:`TimeAxis`), so a promotion line sits at the same x in each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from trainfarm.web.history import ChampionPeriod, MarketHistory, Move, VersionPoint

WIDTH = 960
LEFT, RIGHT, TOP, BOTTOM = 64.0, 44.0, 34.0, 30.0
#: Tick spacings tried on the time axis, smallest first: the first that gives at most MAX_TIME_TICKS wins.
TIME_STEPS = tuple(
    timedelta(hours=h)
    for h in (1, 2, 3, 6, 12, 24, 48, 7 * 24, 14 * 24, 30 * 24, 91 * 24, 182 * 24, 365 * 24)
)
MAX_TIME_TICKS = 8
LOGLOSS_HEIGHT, LIVE_HEIGHT = 320, 180
#: Which of a version's figures a series draws.
_Figure = Callable[[VersionPoint], float | None]
#: Average width of a legend character at the charts' 12 px font, to lay the legend out in one row.
CHAR_PX = 6.6


@dataclass(frozen=True)
class Tick:
    """A grid line at ``at`` (pixels along its axis) with its label."""

    at: float
    label: str


@dataclass(frozen=True)
class Point:
    """A hoverable point; ``css`` is its class (a gate verdict for the model's points)."""

    x: float
    y: float
    title: str
    href: str | None = None
    css: str = ""


@dataclass(frozen=True)
class Series:
    """A line through ``points`` (``path`` in SVG path syntax; a missing value breaks it)."""

    css: str
    path: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Segment:
    """A horizontal bar over a champion period at ``y``, with a short ``label`` above it."""

    x1: float
    x2: float
    y: float
    label: str
    title: str
    href: str
    css: str = ""


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``x`` for one move of the champion: ``css`` is "promotion" or "rollback"."""

    x: float
    css: str
    title: str


@dataclass(frozen=True)
class LegendItem:
    """One legend entry at ``x`` in the top margin: ``shape`` is "dot", "line", "dash" or "mark"."""

    x: float
    css: str
    shape: str
    text: str


@dataclass(frozen=True)
class Chart:
    """One chart: the plot box, axes, what is drawn in it and its accessible label."""

    id: str
    label: str  #: aria-label: what the chart shows, in words
    y_label: str
    height: int
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]
    series: tuple[Series, ...] = ()
    segments: tuple[Segment, ...] = ()
    markers: tuple[Marker, ...] = ()
    threshold: Tick | None = None  #: a dashed line at the live policy's threshold, when there is one
    width: int = WIDTH
    left: float = LEFT
    top: float = TOP

    @property
    def right(self) -> float:
        """The plot box's right edge."""
        return self.width - RIGHT

    @property
    def bottom(self) -> float:
        """The plot box's bottom edge (the time axis)."""
        return self.height - BOTTOM


class TimeAxis:
    """UTC times onto x pixels between ``left`` and ``right``."""

    def __init__(self, start: datetime, end: datetime, left: float = LEFT, right: float = WIDTH - RIGHT):
        if end <= start:
            end = start + timedelta(hours=1)
        pad = (end - start) * 0.03  # points on the first and last version stay clear of the box's edges
        self.start, self.end, self.left, self.right = start - pad, end + pad, left, right

    def x(self, at: datetime) -> float:
        """Where ``at`` lies (clamped to the axis: a period that began before the first version shown)."""
        share = (at - self.start) / (self.end - self.start)
        return round(self.left + min(max(share, 0.0), 1.0) * (self.right - self.left), 1)

    def ticks(self) -> tuple[Tick, ...]:
        """Ticks on whole UTC hours or days, at most :data:`MAX_TIME_TICKS` of them."""
        span = self.end - self.start
        step = next((s for s in TIME_STEPS if span / s <= MAX_TIME_TICKS), TIME_STEPS[-1])
        fmt = "%m-%d %H:%M" if step < timedelta(days=1) else "%Y-%m-%d"
        seconds = step.total_seconds()
        first = math.ceil(self.start.timestamp() / seconds) * seconds
        found = []
        for i in range(MAX_TIME_TICKS * 2 + 2):  # bounded: the step leaves at most MAX_TIME_TICKS + 1
            at = datetime.fromtimestamp(first + i * seconds, UTC)
            if at > self.end:
                break
            found.append(Tick(self.x(at), at.strftime(fmt)))
        return tuple(found)


class ValueAxis:
    """Values onto y pixels between ``top`` and ``bottom``, the range widened to whole ticks."""

    def __init__(
        self, values: Iterable[float], top: float, bottom: float, *, fmt: str | None = None, pad: bool = True
    ):
        finite = [v for v in values if math.isfinite(v)] or [0.0]
        lo, hi = min(finite), max(finite)
        if hi - lo < 1e-9:
            lo, hi = lo - max(abs(lo) * 0.05, 0.01), hi + max(abs(hi) * 0.05, 0.01)
        elif pad:  # the extreme points stay clear of the frame (a fixed range, like a share's, is not padded)
            lo, hi = lo - (hi - lo) * 0.06, hi + (hi - lo) * 0.06
        self.step = nice_step((hi - lo) / 4)
        self.lo = math.floor(lo / self.step) * self.step
        self.hi = math.ceil(hi / self.step) * self.step
        self.top, self.bottom = top, bottom
        # As many decimals as the step needs: 0.05 -> 2, 0.025 -> 3, 2.5 -> 1, 10 -> 0.
        decimals = max(0, -math.floor(math.log10(self.step)))
        if abs(self.step * 10**decimals - round(self.step * 10**decimals)) > 1e-6:
            decimals += 1
        self.fmt = fmt or f".{decimals}f"

    def y(self, value: float) -> float:
        """Where ``value`` lies (clamped to the axis)."""
        share = (value - self.lo) / (self.hi - self.lo)
        return round(self.bottom - min(max(share, 0.0), 1.0) * (self.bottom - self.top), 1)

    def ticks(self) -> tuple[Tick, ...]:
        """A tick every step from the bottom of the range to its top."""
        count = min(round((self.hi - self.lo) / self.step), 20)
        # Rounded, and + 0.0: lo + i * step lands a hair off zero, which would print as "-0.00".
        at = [round(self.lo + i * self.step, 12) + 0.0 for i in range(count + 1)]
        return tuple(Tick(self.y(v), format(v, self.fmt)) for v in at)


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5 and 5 times a power of ten that is at least ``raw`` (> 0)."""
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


def time_axis(history: MarketHistory, now: datetime) -> TimeAxis:
    """The axis the charts share: from the first version shown (or move) to now."""
    times = [v.created_at for v in history.versions] + [m.at for m in history.moves]
    start = min(times, default=now)
    return TimeAxis(start, max([now, *times]))


def history_charts(history: MarketHistory, now: datetime) -> tuple[Chart, Chart, Chart]:
    """The log-loss chart and the live win-rate and Sharpe charts of one market, on one time axis."""
    axis = time_axis(history, now)
    markers = tuple(_marker(axis, m) for m in history.moves)
    return (
        logloss_chart(history, axis, markers),
        win_rate_chart(history, axis, markers, now),
        sharpe_chart(history, axis, markers, now),
    )


def logloss_chart(history: MarketHistory, axis: TimeAxis, markers: tuple[Marker, ...]) -> Chart:
    """Each version's test log-loss (points coloured by gate verdict) with the prior's and the best base
    model's, and the champion's moves."""
    figures = (f for v in history.versions for f in (v.logloss, v.prior_logloss, v.best_base_logloss))
    values = ValueAxis((f for f in figures if f is not None), TOP, LOGLOSS_HEIGHT - BOTTOM)
    lines = (
        _series("prior", history.versions, axis, values, lambda v: v.prior_logloss),
        _series("base", history.versions, axis, values, lambda v: v.best_base_logloss),
        _series("model", history.versions, axis, values, lambda v: v.logloss),
    )
    return Chart(
        id="logloss-chart",
        label=f"test log-loss of {len(history.versions)} versions of {history.symbol} {history.timeframe} "
        "against the prior and the best base model, with gate verdicts, promotions and rollbacks",
        y_label="test log-loss (lower: better)",
        height=LOGLOSS_HEIGHT,
        x_ticks=axis.ticks(),
        y_ticks=values.ticks(),
        legend=_legend(
            [
                ("passed", "dot", "gates passed"),
                ("failed", "dot", "gates failed"),
                ("none", "dot", "no gate report"),
                ("model", "line", "final model"),
                ("prior", "dash", "prior"),
                ("base", "line", "best base model"),
                ("promotion", "mark", "promotion"),
                ("rollback", "mark", "rollback"),
            ]
        ),
        series=lines,
        markers=markers,
    )


def win_rate_chart(
    history: MarketHistory, axis: TimeAxis, markers: tuple[Marker, ...], now: datetime
) -> Chart:
    """The share of each champion period's live outcomes that made money, against the policy's minimum."""
    values = ValueAxis([0.0, 1.0], TOP, LIVE_HEIGHT - BOTTOM, fmt=".0%", pad=False)
    segments = tuple(
        _segment(axis, values, p, now, p.win_rate, f"{p.win_rate:.0%}" if p.win_rate is not None else "")
        for p in history.periods
    )
    limit = history.min_win_rate
    threshold = Tick(values.y(limit), f"{limit:.0%}") if limit is not None else None
    return _live_chart("win-rate-chart", "live win rate", history, axis, values, segments, markers, threshold)


def sharpe_chart(history: MarketHistory, axis: TimeAxis, markers: tuple[Marker, ...], now: datetime) -> Chart:
    """Each champion period's live Sharpe (annualised, per signal), against the policy's minimum."""
    limit = history.min_live_sharpe
    shown = [p.sharpe for p in history.periods if p.sharpe is not None]
    values = ValueAxis([0.0, *shown, *([limit] if limit is not None else [])], TOP, LIVE_HEIGHT - BOTTOM)
    segments = tuple(
        _segment(axis, values, p, now, p.sharpe, f"{p.sharpe:.2f}" if p.sharpe is not None else "")
        for p in history.periods
    )
    threshold = Tick(values.y(limit), f"{limit:g}") if limit is not None else None
    return _live_chart("sharpe-chart", "live Sharpe", history, axis, values, segments, markers, threshold)


def _live_chart(
    chart_id: str,
    what: str,
    history: MarketHistory,
    axis: TimeAxis,
    values: ValueAxis,
    segments: tuple[Segment, ...],
    markers: tuple[Marker, ...],
    threshold: Tick | None,
) -> Chart:
    return Chart(
        id=chart_id,
        label=f"{what} of each champion of {history.symbol} {history.timeframe} from the bots' outcomes",
        y_label=what,
        height=LIVE_HEIGHT,
        x_ticks=axis.ticks(),
        y_ticks=values.ticks(),
        legend=_legend(
            [("live", "line", "champion period (n: live outcomes)"), ("threshold", "dash", "retrain below")]
        ),
        segments=segments,
        markers=markers,
        threshold=threshold,
    )


def version_title(v: VersionPoint) -> str:
    """A version's hover text: its figures, verdict and why it was trained."""
    gates = {"passed": "gates passed", "none": "no gate report"}.get(
        v.verdict, "gates failed: " + (", ".join(v.failed_checks) or "(no check named)")
    )
    base = f" ({v.best_base_model})" if v.best_base_model else ""
    lines = [
        f"{v.version} · {v.status} · built {v.created_at:%Y-%m-%d %H:%M} UTC",
        f"test log-loss {_num(v.logloss)} · prior {_num(v.prior_logloss)} · "
        f"best base {_num(v.best_base_logloss)}{base}",
        gates,
    ]
    if v.reasons:
        lines.append("run: " + " | ".join(v.reasons))
    return "\n".join(lines)


def move_title(m: Move) -> str:
    """A move's hover text: when, which version, from which, and why."""
    when = f"{m.at:%Y-%m-%d %H:%M:%S} UTC"
    if m.rollback:
        return f"{when}: rolled back to {m.to_version} (from {m.from_version})"
    replacing = f", replacing {m.from_version}" if m.from_version else " (the first champion)"
    return f"{when}: {m.to_version} promoted ({m.reason}){replacing}"


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _series(
    css: str, versions: Sequence[VersionPoint], axis: TimeAxis, values: ValueAxis, figure: _Figure
) -> Series:
    path: list[str] = []
    points = []
    gap = True
    for v in versions:
        value = figure(v)
        if value is None:
            gap = True  # no figure for this version: the line breaks instead of bridging it
            continue
        x, y = axis.x(v.created_at), values.y(value)
        path.append(f"{'M' if gap else 'L'}{x},{y}")
        gap = False
        verdict = v.verdict if css == "model" else ""
        points.append(Point(x, y, version_title(v), f"/versions/{v.version}", verdict))
    return Series(css, " ".join(path), tuple(points))


def _segment(
    axis: TimeAxis, values: ValueAxis, p: ChampionPeriod, now: datetime, value: float | None, text: str
) -> Segment:
    x1, x2 = axis.x(p.start), axis.x(p.end or now)
    until = f"{p.end:%Y-%m-%d %H:%M} UTC" if p.end else "now"
    title = (
        f"{p.version}, champion {p.start:%Y-%m-%d %H:%M} UTC to {until}: "
        f"{p.outcomes} live outcomes; win rate "
        + (f"{p.win_rate:.1%}" if p.win_rate is not None else "-")
        + " · Sharpe "
        + (f"{p.sharpe:.2f}" if p.sharpe is not None else "- (needs two outcomes)")
    )
    href = f"/versions/{p.version}"
    if value is None:  # nothing to plot: a grey stub on the axis says the period exists, without figures
        return Segment(x1, x2, values.bottom - 3, _fitting(x2 - x1, f"n={p.outcomes}"), title, href, "empty")
    return Segment(x1, x2, values.y(value), _fitting(x2 - x1, f"{text} · n={p.outcomes}", text), title, href)


def _fitting(width: float, *labels: str) -> str:
    """The first of ``labels`` that fits over a bar ``width`` pixels wide, or "" (the hover text and the
    periods table still have the figures): labels of neighbouring periods must not run into each other."""
    return next((label for label in labels if len(label) * CHAR_PX + 8 <= width), "")


def _marker(axis: TimeAxis, m: Move) -> Marker:
    return Marker(axis.x(m.at), "rollback" if m.rollback else "promotion", move_title(m))


def _legend(items: Sequence[tuple[str, str, str]]) -> tuple[LegendItem, ...]:
    laid = []
    x = LEFT
    for css, shape, text in items:
        laid.append(LegendItem(round(x, 1), css, shape, text))
        x += 22 + len(text) * CHAR_PX + 14  # the swatch, the text and a gap
    return tuple(laid)


__all__ = [
    "Chart",
    "LegendItem",
    "Marker",
    "Point",
    "Segment",
    "Series",
    "Tick",
    "TimeAxis",
    "ValueAxis",
    "history_charts",
    "logloss_chart",
    "move_title",
    "nice_step",
    "sharpe_chart",
    "version_title",
    "win_rate_chart",
]
