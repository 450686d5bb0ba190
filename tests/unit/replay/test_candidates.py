"""A candidate's gate inputs survive the round trip to disk, and a broken file is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.evaluation.gates import ScoredPredictions
from trainfarm.shared.replay.candidates import load_candidate, save_candidate


def scored(n: int = 40) -> ScoredPredictions:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([2, 3, 2], size=n)
    return ScoredPredictions(
        probs=probs,
        y=rng.integers(0, 3, n),
        fwd_return=rng.normal(0, 0.01, n),
        prior=np.array([0.3, 0.4, 0.3]),
        p_star=0.45,
        fee=0.002,
        periods_per_year=8760.0,
        label_horizon=4,
        bar_return=rng.normal(0, 0.003, n),
        dates=np.arange(n).astype("datetime64[h]").astype("datetime64[us]"),
    )


def test_round_trip(tmp_path: Path) -> None:
    candidate, x = scored(), np.arange(40 * 5, dtype=np.float64).reshape(40, 5)
    save_candidate(tmp_path / "c.npz", candidate, x)
    back, x_back = load_candidate(tmp_path / "c.npz")
    assert np.array_equal(x_back, x)
    for name in ("probs", "y", "fwd_return", "prior", "bar_return", "dates"):
        assert np.array_equal(getattr(back, name), getattr(candidate, name)), name
    assert (back.p_star, back.fee, back.periods_per_year, back.label_horizon) == (0.45, 0.002, 8760.0, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "c.npz").write_bytes(b"not an npz")
    with pytest.raises(ArtifactError, match=r"c\.npz"):
        load_candidate(tmp_path / "c.npz")
