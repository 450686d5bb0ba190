"""The replay's shadow policy on real packs and real bars: a challenger decided bar by bar, as the farm would.

The session's real BTC_USDT 12h versions v1 and v2 (trained on windows of the bundled sample ending 60 and
30 days before its end) are two retrain points: v1 passes with no champion (promoted at once), v2 passes
and becomes the challenger. The sample's 12h bars after v2's point are scored by both; the decision comes
at the close of the bar that makes ``min_bars`` labelled pairs, and from then on the shadow policy scores
with its new champion (or keeps v1). The verdict is recomputed here from the scores the replay wrote.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from tests.support.packs import PACK_TF, Version
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.resample import resample
from trainfarm.shared.evaluation.shadow_test import ShadowBars, shadow_verdict
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.replay.decisions import TrainedPoint
from trainfarm.shared.replay.scoring import realised, score_bars
from trainfarm.shared.replay.shadow_policy import ShadowPolicy, ShadowRule

MIN_BARS = 20


def _point(idx: int, v: Version) -> TrainedPoint:
    label_end = datetime.fromisoformat(str(Predictor.load(v.path).manifest["data"]["deployed"]["label_end"]))
    return TrainedPoint(idx, label_end + timedelta(hours=12), v.version, v.path, v.manifest_sha256)


def test_a_challenger_is_decided_at_the_close_of_its_min_bars_th_labelled_bar(
    btc_versions: list[Version], sample_dir: Path
) -> None:
    config = FarmConfig()
    tf = PACK_TF
    params = config.params(tf)
    bars = resample(pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet"), tf)
    points = [_point(0, btc_versions[0]), _point(1, btc_versions[1])]
    end = bars["date"][-1] + tf.duration
    rule = replace(ShadowRule.of(config, tf), min_bars=MIN_BARS)
    shadow = ShadowPolicy(rule, {0: True, 1: True})
    lines: dict[str, list[TrainedPoint | None]] = {"prior": [None, None]}
    priors = [np.full(3, 1 / 3), np.full(3, 1 / 3)]
    scores = score_bars(bars, points, lines, priors, timeframe=tf, params=params, end=end, shadow=shadow)

    v1, v2 = (p.version for p in points)
    events = [(e.event, e.version) for e in shadow.events]
    assert events[:2] == [("promoted", v1), ("challenger", v2)]
    (decision,) = shadow.events[2:]
    assert decision.event in ("promoted", "retired") and decision.verdict is not None
    assert decision.verdict.bars == MIN_BARS
    # The decision comes once the MIN_BARS-th bar after v2's point has its label (horizon bars later).
    truth = realised(bars, tf, params)
    after = truth.filter((pl.col("date") >= points[1].at) & pl.col("label").is_not_null())["date"]
    assert decision.at == after[MIN_BARS - 1] + (params.label_horizon + 1) * tf.duration
    mine = scores.filter(pl.col("policy") == "shadow").sort("date")
    assert mine.height == scores.filter(pl.col("policy") == "prior").height
    before = mine.filter(pl.col("date") + tf.duration <= decision.at)
    later = mine.filter(pl.col("date") + tf.duration > decision.at)
    assert set(before["version"].to_list()) == {v1} and later.height > 0
    assert set(later["version"].to_list()) == {v2 if decision.event == "promoted" else v1}
    assert shadow.promoted == ([points[0], points[1]] if decision.event == "promoted" else [points[0]])

    # The same verdict from the scores themselves: v1's and v2's probabilities on the MIN_BARS bars.
    p1, p2 = (Predictor.load(p.path) for p in points)
    window = truth.filter((pl.col("date") >= points[1].at) & (pl.col("date") <= after[MIN_BARS - 1]))
    scored = before.filter((pl.col("date") >= points[1].at) & (pl.col("date") <= after[MIN_BARS - 1]))
    assert scored["date"].to_list() == window["date"].to_list()  # every bar has features here
    # Each bar's features as a bot had them when it closed (the replay's own newest-bar path).
    rows = [
        p1.newest_features(bars.filter(pl.col("date") <= d).tail(500), now=d + tf.duration)
        for d in window["date"]
    ]
    x = np.vstack([r.features for r in rows if r.features is not None])
    a, b = p1.predict_features(x), p2.predict_features(x)
    sig = {"up": 1.0, "down": -1.0, None: 0.0}
    expected = shadow_verdict(
        ShadowBars(
            paired=np.ones(window.height, dtype=bool),
            label=window["label"].to_numpy().astype(np.int64),
            champion=a,
            challenger=b,
            champion_signal=np.array([sig[p1.decide(r).signal] for r in a]),
            challenger_signal=np.array([sig[p2.decide(r).signal] for r in b]),
            bar_return=window["bar_return"].to_numpy(),
        ),
        min_bars=MIN_BARS, horizon=params.label_horizon, fee=rule.fee, confidence=rule.confidence,
        samples=rule.samples, seed=rule.seed,
    )  # fmt: skip
    assert (expected.decision, expected.logloss_diff) == (
        {"promoted": "promote", "retired": "retire"}[decision.event],
        decision.verdict.logloss_diff,
    )
    print(decision)
