"""Causality as a property of a finished replay: bars after t_i change nothing trained at t_i (the snapshot,
hence the models) and no score before t_(i+1)."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from tests.integration.replay.conftest import FLIP, TF, Replayed
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import random_walk_bars
from trainfarm.shared.dataset.snapshot import build_frame, content_hash
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry
from trainfarm.shared.replay.candidates import load_candidate
from trainfarm.shared.replay.decisions import Decision, timeline
from trainfarm.shared.replay.scoring import score_bars
from trainfarm.shared.replay.shadow_policy import ShadowPolicy, ShadowRule
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.workers.replay_runs import trained_point


def with_other_future(bars: pl.DataFrame, cut: datetime, seed: int) -> pl.DataFrame:
    """The bars before ``cut``, then a different market's bars (a random walk from the same price)."""
    past = bars.filter(pl.col("date") < cut)
    n = bars.height - past.height
    future = random_walk_bars(n, seed, start=cut, price=float(past["close"][-1]))
    return pl.concat([past, future.select(past.columns)])


def test_a_points_snapshot_is_the_same_whatever_comes_after_it(flip_replay: Replayed) -> None:
    config = get_settings().load_config()
    bars = open_store().load(FLIP)
    tf = Timeframe(TF)
    datasets = get_settings().artifacts_dir / "replays" / flip_replay.id / "datasets" / FLIP / TF
    for record in Registry.open().replays.points(flip_replay.id)[::3]:
        point = trained_point(record)
        recorded = Predictor.load(point.path).manifest["data"]["snapshot_hash"]
        recipe = json.loads((datasets / f"{recorded}.json").read_text())["recipe"]
        # Another future after t_i, cut at t_i as the point's snapshot was: the same rows, the same hash.
        changed = with_other_future(bars, point.at, seed=point.idx).filter(pl.col("date") < point.at)
        frame = build_frame(changed, tf, config)
        assert frame["date"].max() < point.at  # type: ignore[operator]
        assert frame["label_end"].max() + tf.duration <= point.at  # type: ignore[operator]
        assert content_hash(frame, recipe) == recorded, point.idx


def test_no_score_before_the_next_point_depends_on_the_bars_after_it(flip_replay: Replayed) -> None:
    config = get_settings().load_config()
    tf = Timeframe(TF)
    records = Registry.open().replays.points(flip_replay.id)
    points = [trained_point(p) for p in records]
    decisions = [Decision(p.idx, bool((p.decision or {}).get("passed")), None, {}) for p in records]
    lines = timeline(points, decisions)
    priors = [load_candidate(p.candidate_path)[0].prior for p in points]
    full = flip_replay.scores()
    i = len(points) // 2
    cut = points[i + 1].at
    # The 5m bars after t_(i+1) replaced by another market's: the scores up to t_(i+1) must not move.
    changed = resample(with_other_future(open_store().load(FLIP), cut, seed=99), tf)
    rescored = score_bars(
        changed,
        points[: i + 1],
        {policy: line[: i + 1] for policy, line in lines.items()},
        priors[: i + 1],
        timeframe=tf,
        params=config.params(tf),
        end=cut,
        # The shadow policy too: its decisions before the cut rest only on labels known by then.
        shadow=ShadowPolicy(ShadowRule.of(config, tf), {d.idx: d.passed for d in decisions}),
    )
    columns = ["date", "policy", "point", "version", "p_down", "p_neutral", "p_up", "signal"]
    before = full.filter(pl.col("date") < cut).sort("policy", "date").select(columns)
    assert before.height > 0 and before["point"].max() == i
    assert_frame_equal(rescored.sort("policy", "date").select(columns), before)
    # The bars scored just before the cut are there: the newest closed bar, not an older one.
    assert rescored["date"].max() == cut - tf.duration
    assert np.isfinite(rescored.select("p_down", "p_neutral", "p_up").to_numpy()).all()
