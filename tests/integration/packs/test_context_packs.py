"""A pack trained on context features and a user's feature set, from a run to a live bot.

One real run of ETH_USDT 12h with ``sets = ["core", "trend_efficiency", "context"]`` (the example user set
of examples/feature-set, installed by ``make``), ``timeframes = ["24h"]`` and ``markets = ["BTC_USDT"]``
is made for the module from the bundled sample, through the workers' stages (small models, with
``prune_features``). Then: the manifest says what the pack reads and what pruning dropped; a bot's
features of the newest bar equal the training rows (train/serve parity for every new column); a missing
or stale series gives no signal, with the reason; a LiveModel on a real Redis serves it from a mapping of
series, and refuses a pack naming a feature set (or a version of one) it lacks while the champion it has
keeps serving; `farm bot`, in its own process, serves it from the store's series.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis

from tests.support.bots import Bot
from tests.support.packs import SMALL_CONFIG, farm_settings, run_in_process
from tests.support.waiting import wait_until
from trainfarm.shared.champions.announce import AnnounceOutcome, announce
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, load_snapshot
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry, dispose_engine
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.contract import bot_key
from trainfarm_client.errors import PackError
from trainfarm_client.features import FEATURE_NAMES
from trainfarm_client.featuresets import CONTEXT_FEATURES
from trainfarm_client.featurespec import SeriesKey
from trainfarm_client.live import LiveModel
from trainfarm_client.pack import MANIFEST, sha256_file

SYMBOL, TF = "ETH_USDT", Timeframe.H12
# The small models of every in-process pack; pruning on, in SMALL_CONFIG's [training] table that it ends in.
CONFIG = (
    SMALL_CONFIG
    + """prune_features = true

[timeframes.12h.features]
sets = ["core", "trend_efficiency", "context"]
timeframes = ["24h"]
markets = ["BTC_USDT", "ETH_USDT"]
"""
)
WAIT_S = 60.0


@dataclass(frozen=True)
class Built:
    """The module's pack, its snapshot, and every series it reads (the sample's bars)."""

    path: Path
    manifest_sha256: str
    snapshot: DatasetSnapshot
    series: dict[SeriesKey, pl.DataFrame]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Built]:
    """A whole retrain of ETH_USDT 12h through the workers' stages in this process (claim, prepare from
    the store, 8 base models, meta stage; no Celery), on the sample's ETH and BTC bars."""
    home = tmp_path_factory.mktemp("context") / "home"
    with farm_settings(home, CONFIG) as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        try:
            store = open_store()
            for symbol in ("BTC_USDT", "ETH_USDT"):
                store.import_file(sample_dir / f"{symbol}-5m.parquet", symbol)
            record = Registry.open().versions.get(run_in_process(SYMBOL, TF.value, "test: context features"))
            run = Registry.open().runs.get(record.run_id)
            assert run.snapshot_path is not None
            snapshot = load_snapshot(Path(run.snapshot_path).with_suffix(".json"))
            series = {
                (symbol, tf.value): store.load(symbol, tf)
                for symbol, tf in ((SYMBOL, TF), (SYMBOL, Timeframe.D1), ("BTC_USDT", TF))
            }
        finally:
            server.stop()
            dispose_engine(settings.database)
        yield Built(Path(record.path), record.manifest_sha256, snapshot, series)


def test_the_manifest_says_what_the_pack_reads(built: Built) -> None:
    manifest = json.loads((built.path / MANIFEST).read_text())
    features = manifest["features"]
    assert [s["name"] for s in features["sets"]] == ["core", "trend_efficiency", "context"]
    assert features["sets"][1] == {"name": "trend_efficiency", "version": "1"}
    # The market itself is left out of its own context markets.
    assert features["timeframes"] == ["24h"] and features["markets"] == ["BTC_USDT"]
    assert manifest["requirements"] == [
        {"symbol": "ETH_USDT", "timeframe": "12h", "bars": 500},
        {"symbol": "ETH_USDT", "timeframe": "24h", "bars": 500},
        {"symbol": "BTC_USDT", "timeframe": "12h", "bars": 500},
    ]
    context = [f"{p}.{n}" for p in ("24h", "BTC_USDT") for n in CONTEXT_FEATURES]
    own = [*FEATURE_NAMES, "ret_48", "efficiency_24", "up_share_24"]
    # Pruning (on the train split) dropped the columns the pruning model did not use; the manifest lists
    # them with every importance, and the models read the rest, in the computed order.
    pruning = manifest["feature_pruning"]
    assert set(pruning["importance"]) == {*own, *context}
    assert features["dropped"] == pruning["dropped"] and pruning["dropped"]
    assert all(pruning["importance"][n] <= 0 for n in pruning["dropped"])
    kept = [n for n in (*own, *context) if n not in pruning["dropped"]]
    assert manifest["feature_names"] == kept == built.snapshot.feature_names
    assert any(n.startswith(("24h.", "BTC_USDT.")) for n in kept)  # context survived pruning
    # Every model saw those columns: the boosted models' attributions name exactly them.
    assert set(manifest["attributions"]["base_models"]["lgbm_gbdt"]["test"]) == set(kept)


def test_a_bots_newest_bar_features_are_the_training_rows(built: Built) -> None:
    predictor = Predictor.load(built.path, expected_manifest_sha256=built.manifest_sha256)
    predictor.self_check()
    rows = built.snapshot.frame().filter(pl.col("split") == "test").tail(12)
    names = list(predictor.feature_names)
    for row in rows.iter_rows(named=True):
        now = row["date"] + TF.duration  # as a bot scoring that bar the moment it closed
        fed = {
            need.key: built.series[need.key]
            .filter(pl.col("date") + Timeframe(need.timeframe).duration <= now)
            .tail(need.bars)
            for need in predictor.requirements
        }
        found = predictor.score_newest(fed, now=now)
        assert found.reason is None, found.reason
        assert found.features is not None and found.probabilities is not None
        np.testing.assert_allclose(found.features, [row[n] for n in names], rtol=1e-7, atol=1e-12)


def test_a_missing_or_stale_series_gives_no_signal_with_the_reason(built: Built) -> None:
    predictor = Predictor.load(built.path, expected_manifest_sha256=built.manifest_sha256)
    own = built.series[(SYMBOL, "12h")]
    now = own["date"][-1] + TF.duration
    alone = predictor.score_newest(own, now=now)
    assert alone.probabilities is None
    assert alone.reason == (
        "no bars given of ETH_USDT 24h (500 bars), BTC_USDT 12h (500 bars), which this pack needs"
    )
    stale = dict(built.series)
    stale[("BTC_USDT", "12h")] = stale[("BTC_USDT", "12h")].head(stale[("BTC_USDT", "12h")].height - 3)
    late = predictor.score_newest(stale, now=now)
    assert late.probabilities is None and late.reason is not None
    assert late.reason.startswith("BTC_USDT 12h: newest closed bar") and "is stale" in late.reason
    whole = predictor.score_newest(built.series, now=now)
    assert whole.reason is None and whole.probabilities is not None


@pytest.fixture
def model(server: EmbeddedRedis) -> Iterator[LiveModel]:
    live = LiveModel(SYMBOL, TF.value, redis_url=server.url, recheck_interval=3600.0, heartbeat_interval=0.2)
    yield live
    live.close()


def _announce(client: redis.Redis, version: str, sha256: str, path: Path) -> None:
    outcome = announce(
        client,
        symbol=SYMBOL,
        timeframe=TF.value,
        version=version,
        manifest_sha256=sha256,
        pack_path=path,
        event="promoted",
        previous_version=None,
        promoted_at=datetime.now(UTC),
    )
    assert outcome is AnnounceOutcome.ANNOUNCED


def test_a_live_bot_scores_from_every_series_and_refuses_a_set_it_lacks(
    built: Built, model: LiveModel, rds: redis.Redis, tmp_path: Path
) -> None:
    version = json.loads((built.path / MANIFEST).read_text())["version"]
    _announce(rds, version, built.manifest_sha256, built.path)
    model.start()
    wait_until(lambda: model.version == version, WAIT_S, "the context pack")
    assert [(r.symbol, r.timeframe) for r in model.requirements] == list(built.series)
    own = built.series[(SYMBOL, "12h")]
    now = own["date"][-1] + TF.duration
    scored = model.score({r.key: built.series[r.key].tail(r.bars) for r in model.requirements}, now=now)
    assert scored.probabilities is not None and scored.decision is not None
    missing = model.score(own, now=now)
    assert missing.probabilities is None and missing.reason is not None
    assert "BTC_USDT 12h" in missing.reason
    wait_until(
        lambda: "BTC_USDT 12h" in (rds.hget(bot_key(model.bot_id), "no_signal_reason") or ""),
        WAIT_S,
        "the reason in the heartbeat",
    )

    # The same pack naming a feature set this bot does not have installed (its manifest rewritten, so
    # announced with the rewritten manifest's sha256): refused with that reason, the champion serves on.
    foreign = tmp_path / "foreign" / f"{version}-x"
    shutil.copytree(built.path, foreign)
    manifest = json.loads((foreign / MANIFEST).read_text())
    manifest["version"] = f"{version}-x"
    manifest["features"]["sets"].append({"name": "session_range", "version": "1"})
    (foreign / MANIFEST).write_text(json.dumps(manifest))
    _announce(rds, f"{version}-x", sha256_file(foreign / MANIFEST), foreign)
    wait_until(lambda: model.last_error is not None, WAIT_S, "the refusal")
    assert model.last_error is not None
    assert "feature set 'session_range' is not installed here" in model.last_error
    assert model.version == version
    again = model.score({r.key: built.series[r.key] for r in model.requirements}, now=now)
    assert again.probabilities is not None
    np.testing.assert_allclose(again.probabilities, scored.probabilities)


def test_a_bot_without_the_sets_version_refuses_the_pack(built: Built, tmp_path: Path) -> None:
    copy = tmp_path / "pack"
    shutil.copytree(built.path, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["features"]["sets"][1]["version"] = "2"  # the user's set, another version than installed
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PackError, match="'trend_efficiency' version '2' is needed, this environment has '1'"):
        Predictor.load(copy)
    manifest["features"]["sets"][1]["version"] = "1"
    manifest["features"]["sets"][2]["version"] = "7"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PackError, match="'context' version '7' is needed, this environment has '1'"):
        Predictor.load(copy)


def test_farm_bot_serves_the_pack_from_every_series_in_the_store(
    built: Built, farm_home: Path, settings: FarmSettings, sample_dir: Path, tmp_path: Path
) -> None:
    # `farm bot` in its own process (its own interpreter finds the user's set by its entry point) scores
    # the store's newest bar from the three series the pack names; the probabilities are the pack's own
    # for that bar.
    store = open_store()
    for symbol in ("BTC_USDT", "ETH_USDT"):
        store.import_file(sample_dir / f"{symbol}-5m.parquet", symbol)
    server = embedded_redis(settings)
    server.ensure_running()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | {"FARM_HOME": str(farm_home)}
    stderr_path = tmp_path / "bot.stderr"
    bot: Bot | None = None
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        version = json.loads((built.path / MANIFEST).read_text())["version"]
        _announce(client, version, built.manifest_sha256, built.path)
        client.close()
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from trainfarm.cli.app import main; main()",
                    *("bot", "ETH/USDT", TF.value, "--json", "--interval", "1", "--duration", "600"),
                    "--replay",  # the sample's newest bar is in the past: score it as just closed
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        bot = Bot(proc, stderr_path)
        _, _, event = bot.wait(lambda e: e.get("event") in ("score", "no_signal"), 180.0, "a score")
        assert event["event"] == "score", event
        predictor = Predictor.load(built.path, expected_manifest_sha256=built.manifest_sha256)
        own = built.series[(SYMBOL, "12h")]
        expected = predictor.score_newest(built.series, now=own["date"][-1] + TF.duration)
        assert expected.probabilities is not None and event["bar"] == own["date"][-1].isoformat()
        np.testing.assert_allclose(
            [event["p_down"], event["p_neutral"], event["p_up"]], expected.probabilities, rtol=1e-9
        )
    finally:
        if bot is not None:
            bot.stop()
        server.stop()
