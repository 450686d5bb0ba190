"""Bar by bar, as a bot would: each policy's champion of the moment scores every newly closed bar.

Between ``t_i`` and ``t_(i+1)`` each bar is scored when it closes: its features come from the client's own
newest-bar path (:meth:`trainfarm_client.predictor.Predictor.newest_features`) on the bars closed by then,
and each policy's pack predicts them (base models, stacker, calibration) and decides with its own p*. The
features of a bar are computed once and predicted by every pack: they depend on the bars and the feature
parameters alone, which every pack of a replay shares. A bar the client would not score (an incomplete
bucket, features warming up after a gap) is scored by no policy, so the five policies score identical bars.

Every scored bar must lie after its model's ``data.deployed.label_end`` (checked per bar: a
:class:`CausalityError` otherwise). The realised label and return come from the whole series, with the
farm's own labelling: they are what happened, known only after the bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from trainfarm.shared.atomicio import atomic_write
from trainfarm.shared.config import TimeframeParams
from trainfarm.shared.dataset.features import add_features
from trainfarm.shared.dataset.labels import add_labels
from trainfarm.shared.dataset.snapshot import drop_labels_of_incomplete_bars
from trainfarm.shared.errors import CausalityError, DatasetError
from trainfarm.shared.evaluation.book import bar_returns
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.replay.decisions import POLICIES, TrainedPoint
from trainfarm.shared.replay.metrics import SHADOW
from trainfarm.shared.replay.shadow_policy import ShadowPolicy
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.arrays import FloatArray
from trainfarm_client.featurespec import SeriesKey, bar_duration

_SIGNAL = {"up": 1, "down": -1, None: 0}


def realised(bars: pl.DataFrame, timeframe: Timeframe, params: TimeframeParams) -> pl.DataFrame:
    """``date``, ``label``, ``fwd_return`` and ``bar_return`` of every bar, from the whole series."""
    frame = add_features(bars, interval=timeframe.duration, max_gap_bars=params.max_gap_bars)
    frame = add_labels(
        frame, horizon=params.label_horizon, threshold=params.label_threshold, vol_window=params.vol_window
    )
    frame = drop_labels_of_incomplete_bars(frame, timeframe, params.label_horizon)
    return frame.select(
        pl.col("date").cast(pl.Datetime("us", "UTC")),
        pl.col("label").cast(pl.Int64),
        "fwd_return",
        pl.Series("bar_return", bar_returns(frame["close"].to_numpy(), frame["segment"].to_numpy())),
    )


class _Packs:
    """Each pack loaded once, verified, with its deployed label end."""

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[Predictor, datetime]] = {}

    def get(self, point: TrainedPoint) -> tuple[Predictor, datetime]:
        if point.version not in self._loaded:
            predictor = Predictor.load(point.path, expected_manifest_sha256=point.manifest_sha256)
            label_end = datetime.fromisoformat(str(predictor.manifest["data"]["deployed"]["label_end"]))
            self._loaded[point.version] = (predictor, label_end)
        return self._loaded[point.version]


def score_bars(
    bars: pl.DataFrame,
    points: Sequence[TrainedPoint],
    lines: Mapping[str, Sequence[TrainedPoint | None]],
    priors: Sequence[FloatArray],
    *,
    timeframe: Timeframe,
    params: TimeframeParams,
    end: datetime,
    context: Mapping[SeriesKey, pl.DataFrame] | None = None,
    shadow: ShadowPolicy | None = None,
) -> pl.DataFrame:
    """Every policy's score of every bar opening in ``[points[0].at, end)``, one row per (policy, bar).

    ``bars`` are the market's bars at ``timeframe`` (oldest first, the store's ``bars`` column included);
    ``context`` the other series the packs' features read (higher bar sizes, other markets), each fed to
    a pack as a bot would get it: the bars closed when the scored bar closed;
    ``lines[policy][i]`` is the pack scoring point ``i``'s interval (None: the prior ``priors[i]``);
    ``shadow`` (policy ``shadow``, scored only when given) chooses its pack bar by bar as its challengers
    are decided.
    Columns: date, policy, point, version, trained_at, p_down, p_neutral, p_up, signal, label,
    fwd_return, bar_return (see :mod:`trainfarm.shared.replay.metrics`).
    """
    truth = realised(bars, timeframe, params)
    dates = bars["date"]
    packs = _Packs()
    if shadow is not None:
        shadow.bind(truth, lambda p: packs.get(p)[0])
    frames: list[pl.DataFrame] = []
    for i, point in enumerate(points):
        stop = points[i + 1].at if i + 1 < len(points) else end
        if shadow is not None:
            shadow.at_point(point)
        lo = int(dates.search_sorted(point.at, side="left"))
        hi = int(dates.search_sorted(stop, side="left"))
        source, _ = packs.get(point)
        scored, rows = _features(bars, range(lo, hi), source, timeframe, context or {})
        if not scored:
            continue
        x = np.vstack(rows)
        for policy in POLICIES:
            if policy in lines:
                frames.append(_policy_rows(policy, i, lines[policy][i], priors[i], scored, x, packs))
        if shadow is not None:
            chosen = shadow.score(scored, x, stop)
            frames += [
                _policy_rows(SHADOW, i, pack, priors[i], scored[a:b], x[a:b], packs)
                for a, b, pack in _runs(chosen)
            ]
    if not frames:
        raise DatasetError(
            f"no {timeframe} bar between {points[0].at.isoformat()} and {end.isoformat()} could be scored"
        )
    scores = pl.concat(frames, how="vertical")
    return scores.join(truth, on="date", how="left").sort("policy", "date")


def _runs(chosen: Sequence[TrainedPoint | None]) -> list[tuple[int, int, TrainedPoint | None]]:
    """``chosen`` as runs of one pack: (start, stop, pack)."""
    runs: list[tuple[int, int, TrainedPoint | None]] = []
    for j, pack in enumerate(chosen):
        if runs and runs[-1][2] is pack:
            runs[-1] = (runs[-1][0], j + 1, pack)
        else:
            runs.append((j, j + 1, pack))
    return runs


def _features(
    bars: pl.DataFrame,
    positions: range,
    source: Predictor,
    timeframe: Timeframe,
    context: Mapping[SeriesKey, pl.DataFrame],
) -> tuple[list[datetime], list[FloatArray]]:
    """The client's newest-bar features of each bar at ``positions``, from the bars closed when it closed."""
    scored: list[datetime] = []
    rows: list[FloatArray] = []
    needs = source.requirements
    own = needs[0].bars
    for j in positions:
        window = bars.slice(max(0, j + 1 - own), min(j + 1, own))
        date = window["date"][-1]
        now = date + timeframe.duration
        fed: dict[SeriesKey, pl.DataFrame] = {needs[0].key: window}
        for need in needs[1:]:
            series = context.get(need.key)
            if series is not None:  # (a missing one is the pack's reason for no signal)
                fed[need.key] = _closed_tail(series, need.bars, bar_duration(need.timeframe), now)
        found = source.newest_features(fed, now=now)
        if found.features is not None:
            scored.append(date)
            rows.append(found.features)
    return scored, rows


def _closed_tail(series: pl.DataFrame, count: int, interval: timedelta, now: datetime) -> pl.DataFrame:
    """The newest ``count`` bars of ``series`` closed by ``now`` (what a bot fetching then would get)."""
    stop = int(series["date"].search_sorted(now - interval, side="right"))
    return series.slice(max(0, stop - count), min(stop, count))


def _policy_rows(
    policy: str,
    idx: int,
    pack: TrainedPoint | None,
    prior: FloatArray,
    dates: list[datetime],
    x: FloatArray,
    packs: _Packs,
) -> pl.DataFrame:
    n = len(dates)
    if pack is None:
        probs = np.tile(np.asarray(prior, dtype=np.float64), (n, 1))
        signal = np.zeros(n, dtype=np.int8)
        version, trained_at = None, None
    else:
        predictor, label_end = packs.get(pack)
        first = min(dates)
        if not first > label_end:
            raise CausalityError(
                f"{policy}: bar {first.isoformat()} would be scored by {pack.version}, whose deployed data "
                f"reaches {label_end.isoformat()}"
            )
        probs = predictor.predict_features(x)
        signal = np.array([_SIGNAL[predictor.decide(row).signal] for row in probs], dtype=np.int8)
        version, trained_at = pack.version, pack.at
    return pl.DataFrame(
        {
            "date": pl.Series(dates, dtype=pl.Datetime("us", "UTC")),
            "policy": [policy] * n,
            "point": pl.Series([idx] * n, dtype=pl.Int64),
            "version": pl.Series([version] * n, dtype=pl.String),
            "trained_at": pl.Series([trained_at] * n, dtype=pl.Datetime("us", "UTC")),
            "p_down": probs[:, 0],
            "p_neutral": probs[:, 1],
            "p_up": probs[:, 2],
            "signal": pl.Series(signal, dtype=pl.Int8),
        }
    )


def write_scores(scores: pl.DataFrame, path: Path) -> None:
    """Store the per-bar scores with the replay (Parquet, written atomically)."""
    atomic_write(path, lambda tmp: scores.write_parquet(tmp, compression="zstd"))


__all__ = ["realised", "score_bars", "write_scores"]
