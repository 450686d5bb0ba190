"""Plots stored in the artifact pack: the per-class reliability diagram and the confidence calibration plot.

Rendering goes through matplotlib's Agg canvas explicitly (``Figure`` + ``FigureCanvasAgg``), never through
``pyplot``: no display is needed, nothing depends on the process-wide backend choice, and no figure is
left registered in pyplot's global state of a long-lived worker process (a slow memory leak otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainfarm.shared.atomicio import atomic_write
from trainfarm.shared.dataset.labels import CLASSES
from trainfarm.shared.evaluation.metrics import check_labels, check_probs
from trainfarm_client.arrays import FloatArray, IntArray

_COLOURS = {"down": "tab:red", "neutral": "tab:gray", "up": "tab:green"}


def reliability_bins(
    p: FloatArray, hit: npt.NDArray[np.bool_], bins: int
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Per equal-width bin of ``p`` on [0, 1]: mean predicted, observed frequency of ``hit``, count.

    Empty bins give NaN for the two means (they are not drawn) and count 0; p = 1.0 is in the last bin.
    """
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=bins) / count
        freq = np.bincount(idx, weights=hit.astype(np.float64), minlength=bins) / count
    return mean_p, freq, count.astype(np.int64)


def reliability_diagram(
    probs: npt.ArrayLike, y: npt.ArrayLike, path: Path, *, title: str, bins: int = 10
) -> None:
    """Write a PNG reliability diagram to ``path`` (atomically).

    One column per class: on top, the mean predicted probability against the observed frequency of the
    class in each of ``bins`` equal-width bins, with the diagonal of perfect calibration; below, how many
    rows fall into each bin (log scale, since the extreme bins are sparse).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])

    # Fixed margins for the fixed figure size: a layout engine costs more than the drawing itself (about
    # 0.4 s per plot, every run), and the labels here never change their extent by much.
    fig = Figure(figsize=(12, 5.5), dpi=100)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.09, top=0.87, wspace=0.25, hspace=0.08)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(CLASSES), sharex=True, height_ratios=(3, 1), squeeze=False)
    for k, name in enumerate(CLASSES):
        top, bottom = axes[0][k], axes[1][k]
        mean_p, freq, count = reliability_bins(p[:, k], labels == k, bins)
        _panels(
            top,
            bottom,
            (mean_p, freq, count),
            colour=_COLOURS[name],
            title=f"{name} (n={int(labels.size)}, prevalence {np.mean(labels == k):.2f})",
            ylabel="observed frequency",
            xlabel=f"predicted p({name})",
        )
    _save(fig, title, path)


def confidence_diagram(
    probs: npt.ArrayLike, y: npt.ArrayLike, path: Path, *, title: str, bins: int = 10
) -> None:
    """Write a PNG calibration plot of the model's confidence to ``path`` (atomically).

    For each of ``bins`` equal-width bins of the top-class probability (the confidence a decision acts
    on): the mean confidence against how often the top class was right, with the diagonal of perfect
    calibration; below, how many rows fall into each bin. The per-class picture is
    :func:`reliability_diagram`.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    p = check_probs(probs)
    labels = check_labels(y, p.shape[0])
    confidence = p.max(axis=1)
    right = p.argmax(axis=1) == labels

    fig = Figure(figsize=(6, 5.5), dpi=100)  # fixed margins: see reliability_diagram
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.09, top=0.87, hspace=0.08)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _panels(
        top,
        bottom,
        reliability_bins(confidence, right, bins),
        colour="tab:blue",
        title=f"confidence (n={int(labels.size)}, accuracy {np.mean(right):.2f})",
        ylabel="top class right, share",
        xlabel="predicted top-class probability",
    )
    _save(fig, title, path)


def _panels(
    top: Axes,
    bottom: Axes,
    binned: tuple[FloatArray, FloatArray, IntArray],
    *,
    colour: str,
    title: str,
    ylabel: str,
    xlabel: str,
) -> None:
    """One reliability picture: on ``top`` the binned mean probability against the observed frequency and
    the diagonal of perfect calibration; on ``bottom`` the rows per bin (log scale)."""
    mean_p, freq, count = binned
    bins = count.size
    drawn = count > 0
    top.plot([0, 1], [0, 1], linestyle="--", color="black", linewidth=1, label="perfect")
    top.plot(mean_p[drawn], freq[drawn], marker="o", color=colour, label="model")
    top.set_title(title)
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel(ylabel)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize="small")
    edges = np.linspace(0.0, 1.0, bins + 1)
    bottom.bar(edges[:-1], count, width=1.0 / bins, align="edge", color=colour, alpha=0.6)
    if count.any():
        bottom.set_yscale("log")
    bottom.set_xlabel(xlabel)
    bottom.set_ylabel("rows")


def _save(fig: Figure, title: str, path: Path) -> None:
    fig.suptitle(title)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    atomic_write(path, write)
