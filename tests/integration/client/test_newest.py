"""score_newest on the session's real pack scores what add_features' rows score."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.features import assert_same_row
from tests.support.packs import Pack
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.features import FEATURE_NAMES, MIN_HISTORY_BARS
from trainfarm_client.predictor import Predictor


def test_score_newest_scores_what_add_features_rows_score(
    pack: Pack, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = Predictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    interval = Timeframe(predictor.manifest["timeframe"]).duration
    bars = pack.bars
    ends = range(MIN_HISTORY_BARS, bars.height + 1)
    histories = [bars.slice(end - MIN_HISTORY_BARS, MIN_HISTORY_BARS) for end in ends]
    now = [h["date"][-1] + interval for h in histories]
    fast = [predictor.score_newest(h, now=t) for h, t in zip(histories, now, strict=True)]
    # Some 12h bars of the sample were resampled from fewer 5m bars than 144 (outages): not scored.
    assert sum(s.probabilities is not None for s in fast) > len(fast) * 0.9
    # The add_features path, as score_newest ran it before: every row, the newest one predicted.
    monkeypatch.setattr("trainfarm_client.predictor.newest_feature_row", lambda *a, **k: None)
    slow = [predictor.score_newest(h, now=t) for h, t in zip(histories, now, strict=True)]
    for f, s in zip(fast, slow, strict=True):
        assert f.bar == s.bar and f.reason == s.reason
        if f.reason is not None:
            continue
        assert f.features is not None and s.features is not None
        assert f.probabilities is not None and s.probabilities is not None
        assert_same_row(f.features[None, :], s.features[None, :])
        np.testing.assert_allclose(f.probabilities, s.probabilities, rtol=0, atol=1e-9)
    # And the rows are add_features' own (what predict_bars scores).
    last = max(i for i, s in enumerate(slow) if s.reason is None)
    rows = predictor.feature_rows(histories[last]).select(FEATURE_NAMES).tail(1).to_numpy()
    assert slow[last].features is not None
    np.testing.assert_array_equal(slow[last].features, rows[0])
