"""The replay's picture: the five policies' equity curves over their rolling log-loss against the prior.

Rendered like :mod:`trainfarm.shared.evaluation.plots`: through matplotlib's Agg canvas explicitly, never
``pyplot`` (no display, no figure left in a worker's global state), with fixed margins, written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainfarm.shared.atomicio import atomic_write
from trainfarm.shared.replay.metrics import (
    MODEL_POLICIES,
    POLICIES,
    equity_curves,
    rolling_logloss_vs_prior,
)

COLOURS = {
    "gated": "tab:blue",
    "always": "tab:orange",
    "static": "tab:green",
    "prior": "tab:gray",
    "shadow": "tab:purple",
}
#: How a policy's promotions are drawn: the vertical line's style and the height (axes fraction) of the
#: marker, so two policies promoting at the same time stay told apart.
_PROMOTION_STYLE = {
    "gated": ("--", 0.97),
    "always": (":", 0.91),
    "static": ("-.", 0.85),
    "prior": ("-", 0.79),
    "shadow": ((0, (5, 1, 1, 1)), 0.73),
}


def replay_plot(
    scores: pl.DataFrame,
    promotions_at: Mapping[str, Sequence[datetime]],
    path: Path,
    *,
    title: str,
    horizon: int,
    fee: float,
    window: int,
) -> Path:
    """Write the replay's PNG to ``path`` (atomically) and return ``path``.

    Top panel: each policy's equity curve (cumulative P&L of its overlapping book, ``horizon`` and
    ``fee`` as in :func:`trainfarm.shared.evaluation.book.book_pnl`). Bottom panel: the rolling log-loss
    minus the prior's over ``window`` labelled bars of gated, always and static, with a zero line (below
    it: better than the prior). ``promotions_at[policy]`` (gated and always, as a rule) is drawn on both
    panels as vertical lines and markers in the policy's colour; a naive time is taken as UTC.
    """
    unknown = sorted(set(promotions_at) - set(POLICIES))
    if unknown:
        raise ValueError(f"promotions_at names unknown policies {unknown}; a replay has {list(POLICIES)}")
    equity = equity_curves(scores, horizon=horizon, fee=fee)
    rolling = rolling_logloss_vs_prior(scores, window=window)

    # Fixed margins for the fixed figure size (see trainfarm.shared.evaluation.plots: no layout engine).
    fig = Figure(figsize=(12, 8), dpi=100)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=0.92, hspace=0.08)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))

    dates = equity["date"].to_numpy()
    for policy in POLICIES:
        top.plot(dates, equity[policy].to_numpy(), color=COLOURS[policy], linewidth=1.2, label=policy)
    top.axhline(0.0, color="black", linewidth=0.6)
    top.set_ylabel("cumulative book P&L (fraction of capital)")
    top.set_title(f"equity of the overlapping book ({horizon}-bar horizon, round-trip fee {fee:g})")

    bottom.axhline(0.0, color="black", linewidth=0.8)
    for policy in MODEL_POLICIES:
        bottom.plot(
            rolling["date"].to_numpy(),
            rolling[policy].to_numpy(),
            color=COLOURS[policy],
            linewidth=1.0,
            label=policy,
        )
    bottom.set_ylabel(f"log-loss minus prior's\n(rolling {window} labelled bars)")
    bottom.set_xlabel("bar open time (UTC)")

    for policy, times in promotions_at.items():
        _mark_promotions(top, policy, times, legend=True)
        _mark_promotions(bottom, policy, times, legend=False)

    for axes in (top, bottom):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="upper left", fontsize="small", ncol=3)
    fig.suptitle(title)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    atomic_write(path, write)
    return path


def _mark_promotions(axes: Axes, policy: str, times: Sequence[datetime], *, legend: bool) -> None:
    """Vertical lines at ``times`` in ``policy``'s colour, with a marker near the top of ``axes``."""
    if not times:
        return
    style, height = _PROMOTION_STYLE[policy]
    at = _utc64(times)
    colour = COLOURS[policy]
    for t in at:
        axes.axvline(t, color=colour, linestyle=style, linewidth=0.8, alpha=0.6)
    axes.plot(
        at,
        np.full(at.size, height),
        transform=axes.get_xaxis_transform(),
        linestyle="none",
        marker="v",
        markersize=6,
        color=colour,
        label=f"{policy} promotion" if legend else None,
    )


def _utc64(times: Sequence[datetime]) -> npt.NDArray[np.datetime64]:
    """``times`` as naive-UTC datetime64[us], the form polars hands the curves' dates to matplotlib in."""
    naive = [(t.astimezone(UTC) if t.tzinfo else t).replace(tzinfo=None) for t in times]
    return np.array(naive, dtype="datetime64[us]")


__all__ = ["COLOURS", "replay_plot"]
