"""Drift policies and the skew flag on a real bar store, registry and (embedded) Redis.

The champion's pack is a stand-in (:class:`StubPack`: a manifest, a data end and fixed probabilities), so no
model is trained here; the real pack's path through the same code is tested in
``tests/integration/monitoring/test_drift_pack.py``. The bars are a random walk whose volatility quadruples
after the champion's data: a shift PSI must see. ETH_USDT has a champion but no bars in the store: it reports,
never breaks BTC's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
import redis

from tests.support.markets import crown, two_markets
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.data.synthetic import random_walk_bars
from trainfarm.shared.dataset.features import (
    FEATURE_NAMES,
    FEATURE_SPEC_VERSION,
    MIN_HISTORY_BARS,
    add_features,
)
from trainfarm.shared.monitoring.drift import FeatureDistribution
from trainfarm.shared.registry import Registry
from trainfarm.shared.registry.models import VersionRecord
from trainfarm.shared.timeframes import Timeframe
from trainfarm.workers.checks.outcome_ingest import ingest
from trainfarm.workers.checks.trigger_check import MarketReport, check, report
from trainfarm.workers.runs import Submitted, claim_run
from trainfarm.workers.status import farm_status
from trainfarm_client.contract import OUTCOMES_STREAM, encode_features

H1 = Timeframe.H1
TRAIN_DAYS, LIVE_DAYS = 60, 25  # 25 days of 1h bars: 600 live bars, the window takes the latest 500


@dataclass
class StubPack:
    """What the drift inputs read of a pack, without models: a manifest, a data end, fixed probabilities."""

    manifest: dict[str, Any]
    fitted_until: datetime | None
    probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    loads: list[str] = field(default_factory=list)

    def predict_features(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.tile(np.asarray(self.probs), (np.asarray(x).shape[0], 1))


def _bars(live_sigma: float) -> tuple[pl.DataFrame, datetime]:
    """5m bars: TRAIN_DAYS of a random walk, then LIVE_DAYS at ``live_sigma``; and where training ends."""
    train = random_walk_bars(288 * TRAIN_DAYS, seed=1)
    start = train["date"][-1] + timedelta(minutes=5)
    live = random_walk_bars(288 * LIVE_DAYS, seed=2, start=start, sigma=live_sigma, price=train["close"][-1])
    return pl.concat([train, live]), start - timedelta(minutes=5)


def _manifest(bars: pl.DataFrame, until: datetime, *, distribution: bool = True) -> dict[str, Any]:
    rows = add_features(
        resample(bars.filter(pl.col("date") <= until), H1), interval=H1.duration, max_gap_bars=3
    )
    manifest: dict[str, Any] = {
        "feature_names": list(FEATURE_NAMES),
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "feature_params": {"interval_minutes": 60, "max_gap_bars": 3},
        "label": {"horizon": 6, "threshold": 0.5, "vol_window": 48},
    }
    if distribution:
        x = rows.drop_nulls(list(FEATURE_NAMES)).select(FEATURE_NAMES).to_numpy()
        manifest["feature_distribution"] = FeatureDistribution.fit(x, FEATURE_NAMES).to_json()
    return manifest


@dataclass
class DriftMarkets:
    """Two crowned markets, BTC_USDT's bars stored (ETH_USDT has none), and the drift report over them."""

    registry: Registry
    config: FarmConfig
    client: redis.Redis
    store: BarStore
    bars: pl.DataFrame
    until: datetime

    def report(self, pack: StubPack) -> dict[str, MarketReport]:
        return {
            r.symbol: r
            for r in report(self.registry, self.config, self.client, store=self.store, load=_loader(pack))
        }


def _loader(pack: StubPack) -> Any:
    def load(record: VersionRecord) -> StubPack:
        pack.loads.append(record.version)
        return pack

    return load


def _decision(r: MarketReport, policy: str) -> Any:
    return next(d for d in r.decisions if d.policy == policy)


def _markets(tmp_path: Path, live_sigma: float) -> Iterator[DriftMarkets]:
    with two_markets(tmp_path / "home") as (registry, config, client):
        bars, until = _bars(live_sigma)
        path = tmp_path / "btc.parquet"
        bars.write_parquet(path)
        store = open_store()
        store.import_file(path, "BTC_USDT")
        for symbol in ("BTC_USDT", "ETH_USDT"):
            crown(registry, symbol)
        yield DriftMarkets(registry, config, client, store, bars, until)


@pytest.fixture
def shifted(tmp_path: Path) -> Iterator[DriftMarkets]:
    yield from _markets(tmp_path, live_sigma=0.006)  # four times the training volatility


@pytest.fixture
def steady(tmp_path: Path) -> Iterator[DriftMarkets]:
    yield from _markets(tmp_path, live_sigma=0.0015)


def test_a_volatility_shift_fires_feature_drift_and_a_market_without_bars_only_reports(
    shifted: DriftMarkets,
) -> None:
    pack = StubPack(_manifest(shifted.bars, shifted.until), shifted.until)

    def claim(symbol: str, timeframe: str, reason: str) -> Submitted:
        return claim_run(symbol, timeframe, reason)

    fired = check(
        shifted.registry, shifted.config, shifted.client, claim, store=shifted.store, load=_loader(pack)
    )
    assert ("BTC_USDT", "feature_drift") in {(f.symbol, f.policy) for f in fired}
    assert all(f.symbol == "BTC_USDT" for f in fired)
    reports = shifted.report(pack)
    drift = _decision(reports["BTC_USDT"], "feature_drift")
    assert drift.retrain and drift.value > 0.25 and "500 live bars" in drift.detail
    assert drift.detail.split(" PSI")[0].startswith(("vol_", "atr_", "range_rel", "upper_", "lower_"))
    for policy in ("feature_drift", "calibration_drift"):
        missing = _decision(reports["ETH_USDT"], policy)
        assert not missing.retrain and missing.detail.startswith("bars missing from the farm's store")


def test_a_steady_market_does_not_drift(steady: DriftMarkets) -> None:
    pack = StubPack(_manifest(steady.bars, steady.until), steady.until)
    drift = _decision(steady.report(pack)["BTC_USDT"], "feature_drift")
    assert not drift.retrain and drift.value is not None and drift.value < 0.25


def test_too_few_live_bars_and_an_older_pack_report_without_firing(steady: DriftMarkets) -> None:
    late = steady.until + timedelta(days=LIVE_DAYS) - timedelta(hours=150)  # 150 hourly bars after it
    few = _decision(steady.report(StubPack(_manifest(steady.bars, late), late))["BTC_USDT"], "feature_drift")
    assert not few.retrain and few.detail == "150 of 200 live bars"
    older = StubPack(_manifest(steady.bars, steady.until, distribution=False), steady.until)
    decisions = steady.report(older)["BTC_USDT"]
    assert _decision(decisions, "feature_drift").detail == "pack has no training distribution (older pack)"
    assert _decision(decisions, "calibration_drift").value is not None  # still measured


def test_calibration_drift_fires_for_probabilities_the_bars_contradict(steady: DriftMarkets) -> None:
    manifest = _manifest(steady.bars, steady.until)
    sure_up = _decision(
        steady.report(StubPack(manifest, steady.until, (0.05, 0.05, 0.9)))["BTC_USDT"], "calibration_drift"
    )
    assert sure_up.retrain and sure_up.value > 0.3 and "494 live bars" in sure_up.detail  # 6-bar horizon
    # The realised class shares of those bars (labelled as training labels them), predicted for each.
    from trainfarm.workers.checks.live_window import DriftInputs, drift_inputs

    shares = StubPack(manifest, steady.until)
    inputs: DriftInputs = drift_inputs(
        steady.registry.champions.get("BTC_USDT", H1),  # type: ignore[arg-type]
        H1,
        steady.config.params(H1),
        steady.store,
        _loader(shares),
    )
    assert inputs.labelled_bars == 494 and inputs.live_bars == 500
    assert inputs.calibration_gap is not None and inputs.calibration_gap < 0.1


def _bot_features(bars_1h: pl.DataFrame, bar: datetime) -> list[float]:
    """What a bot computes for ``bar``: the features of its own last MIN_HISTORY_BARS + 100 bars."""
    history = bars_1h.filter(pl.col("date") <= bar).tail(MIN_HISTORY_BARS + 100)
    row = add_features(history, interval=H1.duration, max_gap_bars=3).row(-1, named=True)
    return [float(row[name]) for name in FEATURE_NAMES]


def _report(farm: DriftMarkets, bot: str, bar: datetime, features: list[float]) -> None:
    fields = {
        "bot_id": bot,
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "version": "v-BTC_USDT",
        "signal": "up",
        "probability": "0.6",
        "realised_return": "",
        "at": bar.isoformat(),
        "features": encode_features(features, FEATURE_NAMES),
    }
    farm.client.xadd(OUTCOMES_STREAM, fields)


def test_skew_is_zero_for_an_honest_bot_and_flagged_naming_the_feature_for_a_skewed_one(
    steady: DriftMarkets,
) -> None:
    pack = StubPack(_manifest(steady.bars, steady.until), steady.until)
    bars_1h = resample(steady.bars, H1)
    live = bars_1h.filter(pl.col("date") > steady.until)["date"].to_list()[:20]
    for bar in live:
        _report(steady, "honest", bar, _bot_features(bars_1h, bar))
    ingest(steady.client, steady.registry)
    honest = _decision(steady.report(pack)["BTC_USDT"], "train_serve_skew")
    assert (honest.value, honest.flagged, honest.retrain) == (
        0.0,
        False,
        False,
    ) and honest.detail == "20 rows match"
    # A second bot of the champion whose ret_1 is off by 0.1% on 5 bars (another price source, say).
    index = FEATURE_NAMES.index("ret_1")
    for bar in live[:5]:
        values = _bot_features(bars_1h, bar)
        values[index] *= 1.001
        _report(steady, "skewed", bar, values)
    ingest(steady.client, steady.registry)
    flagged = _decision(steady.report(pack)["BTC_USDT"], "train_serve_skew")
    assert flagged.flagged and not flagged.retrain and flagged.value == pytest.approx(5 / 25)
    assert "5 of 25 reported rows" in flagged.detail and "worst ret_1" in flagged.detail
    # It never fires a retrain, and `farm status` shows the same flag.
    assert all(
        f.policy != "train_serve_skew"
        for f in check(
            steady.registry,
            steady.config,
            steady.client,
            claim_run,
            store=steady.store,
            load=_loader(pack),
        )
    )
    status = farm_status(
        steady.registry, steady.config, steady.client, store=steady.store, load=_loader(pack)
    )
    skew = {m.symbol: m.skew for m in status.markets}
    assert skew["BTC_USDT"] is not None and skew["BTC_USDT"]["flagged"] is True
    assert (skew["BTC_USDT"]["checked"], skew["BTC_USDT"]["mismatched"]) == (25, 5)
    assert skew["BTC_USDT"]["worst_feature"] == "ret_1"
    assert skew["ETH_USDT"] == {
        "checked": 0, "mismatched": 0, "not_checked": 0, "mismatch_share": None, "worst_feature": None,
        "worst_bar": None, "worst_difference": None, "problems": [], "flagged": False,
        "note": "no live features reported yet",
    }  # fmt: skip
    assert json.loads(json.dumps(status.to_json()))["markets"][0]["skew"]["flagged"] in (True, False)


def test_a_reported_bar_the_store_lacks_is_not_checked(steady: DriftMarkets) -> None:
    pack = StubPack(_manifest(steady.bars, steady.until), steady.until)
    after_the_data = steady.bars["date"][-1] + timedelta(days=2)
    _report(steady, "ahead", after_the_data.replace(minute=0), [0.0] * len(FEATURE_NAMES))
    ingest(steady.client, steady.registry)
    skew = _decision(steady.report(pack)["BTC_USDT"], "train_serve_skew")
    assert not skew.flagged and skew.value is None and "1 not checked" in skew.detail
