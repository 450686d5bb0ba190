"""A trained point's candidate as the gates saw it, kept so that it can be gated later.

A replay trains its points in parallel, but the gated policy compares each candidate with the champion of
its moment, which is known only once the earlier points are decided. The meta stage therefore keeps the
candidate's test predictions and test features (:class:`~trainfarm.shared.training.judging.Judgement`)
beside the pack, and the decision pass gates them with the farm's own
:func:`~trainfarm.shared.evaluation.gates.gate_candidate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainfarm.shared.atomicio import atomic_write
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.evaluation.gates import ScoredPredictions
from trainfarm_client.arrays import FloatArray

CANDIDATE_FILE = "candidate.npz"
_ARRAYS = ("probs", "y", "fwd_return", "prior", "bar_return", "dates", "x_test")
_SCALARS = ("p_star", "fee", "periods_per_year", "label_horizon")


def save_candidate(path: Path, candidate: ScoredPredictions, x_test: FloatArray) -> None:
    """Write the candidate's gate inputs to ``path`` (atomically)."""
    arrays: dict[str, Any] = {
        "probs": candidate.probs,
        "y": candidate.y,
        "fwd_return": candidate.fwd_return,
        "prior": candidate.prior,
        "bar_return": candidate.bar_return if candidate.bar_return is not None else np.zeros(0),
        "dates": candidate.dates if candidate.dates is not None else np.zeros(0, dtype="datetime64[us]"),
        "x_test": np.asarray(x_test, dtype=np.float64),
        "p_star": np.float64(candidate.p_star),
        "fee": np.float64(candidate.fee),
        "periods_per_year": np.float64(candidate.periods_per_year),
        "label_horizon": np.int64(candidate.label_horizon),
    }

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)


def load_candidate(path: Path) -> tuple[ScoredPredictions, FloatArray]:
    """The candidate and its test features as :func:`save_candidate` wrote them."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in (*_ARRAYS, *_SCALARS)}
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"cannot read the candidate's gate inputs at {path}: {exc}") from exc
    bar_return = data["bar_return"] if data["bar_return"].size else None
    dates = data["dates"] if data["dates"].size else None
    candidate = ScoredPredictions(
        probs=data["probs"],
        y=data["y"],
        fwd_return=data["fwd_return"],
        prior=data["prior"],
        p_star=float(data["p_star"]),
        fee=float(data["fee"]),
        periods_per_year=float(data["periods_per_year"]),
        label_horizon=int(data["label_horizon"]),
        bar_return=bar_return,
        dates=dates,
    )
    return candidate, np.asarray(data["x_test"], dtype=np.float64)


__all__ = ["CANDIDATE_FILE", "load_candidate", "save_candidate"]
