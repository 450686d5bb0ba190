"""Reliability diagram and confidence plot: real PNGs, written atomically, headless, awkward inputs too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainfarm.shared.evaluation.plots import confidence_diagram, reliability_bins, reliability_diagram


def test_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=2000)
    y = rng.integers(0, 3, size=2000)
    path = tmp_path / "plots" / "reliability.png"
    reliability_diagram(probs, y, path, title="BTC_USDT 1h candidate")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]  # no temporary file left


def test_overwrites_and_handles_absent_class_and_few_bins(tmp_path: Path) -> None:
    path = tmp_path / "r.png"
    path.write_bytes(b"old")
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [1.0, 0.0, 0.0]])
    reliability_diagram(probs, np.array([0, 1, 0]), path, title="tiny", bins=5)
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="bins"):
        reliability_diagram(probs, np.array([0, 1, 0]), path, title="x", bins=0)


def test_reliability_bins() -> None:
    p = np.array([0.05, 0.15, 0.15, 1.0])
    hit = np.array([True, False, True, True])
    mean_p, freq, count = reliability_bins(p, hit, 10)
    assert count.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert mean_p[1] == pytest.approx(0.15) and freq[1] == 0.5
    assert np.isnan(mean_p[2]) and freq[9] == 1.0


def test_the_confidence_plot_is_a_png_and_refuses_bad_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet([2.0, 1.0, 1.0], size=500)
    path = tmp_path / "confidence.png"
    confidence_diagram(probs, rng.integers(0, 3, size=500), path, title="BTC_USDT 1h candidate")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and [p.name for p in tmp_path.iterdir()] == [
        "confidence.png"
    ]
    with pytest.raises(ValueError, match="bins"):
        confidence_diagram(probs, np.zeros(500, dtype=int), path, title="x", bins=0)
    with pytest.raises(ValueError):
        confidence_diagram(probs[:, :2], np.zeros(500, dtype=int), path, title="x")
