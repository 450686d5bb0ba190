"""The replay's plot: a real PNG, written atomically, headless, with promotions in any time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from trainfarm.shared.replay.metrics import POLICIES, PROB_COLUMNS
from trainfarm.shared.replay.plot import replay_plot

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def scores(n: int = 600) -> pl.DataFrame:
    """Four policies over ``n`` hourly bars: random probabilities and signals, the prior never trading."""
    rng = np.random.default_rng(11)
    dates = pl.Series([T0 + timedelta(hours=i) for i in range(n)], dtype=pl.Datetime("us", "UTC"))
    labels = pl.Series([int(x) for x in rng.integers(0, 3, n - 3)] + [None] * 3, dtype=pl.Int64)
    bar_return = rng.normal(0.0, 0.01, n)
    fwd_return = rng.normal(0.0, 0.02, n)
    frames = []
    for policy in POLICIES:
        probs = rng.dirichlet([3.0, 3.0, 3.0], n) if policy != "prior" else np.tile([0.3, 0.4, 0.3], (n, 1))
        signal = rng.choice([-1, 0, 1], n) if policy != "prior" else np.zeros(n, dtype=np.int64)
        frames.append(
            pl.DataFrame(
                {
                    "date": dates,
                    "policy": [policy] * n,
                    "point": pl.Series(np.arange(n) // 100, dtype=pl.Int64),
                    "version": pl.Series([None if policy == "prior" else "v1"] * n, dtype=pl.String),
                    "trained_at": pl.Series(
                        [None if policy == "prior" else T0] * n, dtype=pl.Datetime("us", "UTC")
                    ),
                    **{column: probs[:, k] for k, column in enumerate(PROB_COLUMNS)},
                    "signal": pl.Series(signal, dtype=pl.Int8),
                    "label": labels,
                    "fwd_return": pl.Series(fwd_return, dtype=pl.Float64),
                    "bar_return": pl.Series(bar_return, dtype=pl.Float64),
                }
            )
        )
    return pl.concat(frames)


PROMOTIONS = {
    "gated": [T0, T0 + timedelta(hours=300)],
    # Another zone and a naive (UTC) time: both land on the same axis as the bars.
    "always": [
        T0.astimezone(timezone(timedelta(hours=2))),
        datetime(2024, 1, 5),
        datetime(2024, 1, 9, tzinfo=UTC),
    ],
}


def test_writes_a_png_and_returns_its_path(tmp_path: Path) -> None:
    path = tmp_path / "replays" / "r1" / "replay.png"
    out = replay_plot(
        scores(), PROMOTIONS, path, title="replay r1: BTC_USDT 1h", horizon=4, fee=0.001, window=50
    )
    assert out == path
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000
    assert [p.name for p in path.parent.iterdir()] == ["replay.png"]  # no temporary file left


def test_replaces_an_old_plot_and_takes_no_promotions(tmp_path: Path) -> None:
    path = tmp_path / "replay.png"
    path.write_bytes(b"old")
    replay_plot(scores(50), {}, path, title="short", horizon=1, fee=0.0, window=200)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["replay.png"]


def test_a_failed_render_leaves_the_old_plot_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "replay.png"
    path.write_bytes(b"old plot")

    def broken_savefig(self: Figure, fname: Path, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        replay_plot(scores(50), PROMOTIONS, path, title="x", horizon=1, fee=0.0, window=10)
    assert path.read_bytes() == b"old plot"
    assert [p.name for p in tmp_path.iterdir()] == ["replay.png"]


def test_refuses_promotions_of_an_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sometimes"):
        replay_plot(
            scores(50), {"sometimes": [T0]}, tmp_path / "p.png", title="x", horizon=1, fee=0.0, window=10
        )
    assert not (tmp_path / "p.png").exists()
