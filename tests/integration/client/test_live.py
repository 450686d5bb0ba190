"""LiveModel against a real embedded Redis and real packs: nudges, re-checks, refusals, heartbeat, outcomes.

Three real versions of BTC_USDT 12h are built once for the module (the same steps as a run, on three
training windows of the bundled sample, so they are different models); every test gets its own farm home
and embedded Redis server, always stopped afterwards. Champions are published the way the farm does it
(:func:`trainfarm.shared.champions.announce.announce`: SET the key, PUBLISH the nudge, XADD the event). Every
wait is bounded by a generous deadline that only a hang reaches; no test asserts how fast a reload is.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis

import trainfarm_client
from tests.support.packs import PACK_SYMBOL, PACK_TF, Version
from tests.support.waiting import wait_until
from trainfarm.shared.champions.announce import AnnounceOutcome, announce, dumps
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.data.resample import resample
from trainfarm.shared.registry.models import LiveOutcome
from trainfarm_client.contract import OUTCOMES_STREAM, bot_key, champion_key, promoted_channel
from trainfarm_client.errors import ChampionError, NoSignalError
from trainfarm_client.features import FEATURE_NAMES
from trainfarm_client.live import Champion, LiveModel
from trainfarm_client.pack import MANIFEST, sha256_file
from trainfarm_client.predictor import decide

SYMBOL, TF = PACK_SYMBOL, PACK_TF
#: Bound on every wait for something a nudge, a reconnect or a re-check should cause at once: a deadline
#: against hangs, not a speed requirement (how fast reloads are is for ``python -m bench``, not a test).
WAIT_S = 60.0
#: The periodic re-check of the tests where only a nudge or a reconnect may cause a reload: it never
#: comes within a test.
NEVER_S = 3600.0


def closed(frame: pl.DataFrame) -> datetime:
    """The moment the newest bar of ``frame`` closed: score the sample's bars as if live at that time."""
    return frame["date"][-1] + PACK_TF.duration


def announce_version(
    client: redis.Redis,
    v: Version,
    *,
    event: str = "promoted",
    previous: Version | None = None,
    pack_path: Path | None = None,
) -> float:
    """Announce ``v`` as the farm does (key, nudge, event); returns time.monotonic() at the announcement."""
    outcome = announce(
        client,
        symbol=SYMBOL,
        timeframe=TF.value,
        version=v.version,
        manifest_sha256=v.manifest_sha256,
        pack_path=pack_path or v.path,
        event=event,
        previous_version=previous.version if previous else None,
        promoted_at=datetime.now(UTC),
    )
    assert outcome is AnnounceOutcome.ANNOUNCED
    return time.monotonic()


def get_calls(client: redis.Redis) -> int:
    """How many reads of the keys (GET, or the bot's MGET of the champion and challenger keys) the server
    has run so far (its own count, not the client's)."""
    stats = client.info("commandstats")
    calls = 0
    for command in ("cmdstat_get", "cmdstat_mget"):
        entry = stats.get(command, {})
        calls += int(entry["calls"]) if isinstance(entry, dict) else 0
    return calls


def serves(model: LiveModel, v: Version) -> Callable[[], bool]:
    """A condition: ``model`` serves ``v``."""
    return lambda: model.version == v.version


def subscribers(client: redis.Redis) -> int:
    """How many connections are subscribed to the promotion channel."""
    return int(client.pubsub_numsub(promoted_channel(SYMBOL, TF.value))[0][1])


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def versions(btc_versions: list[Version]) -> list[Version]:
    """Three real versions (v1 < v2 < v3) of BTC_USDT 12h; shared, so no test may change them."""
    return btc_versions


@pytest.fixture(scope="module")
def bars(sample_dir: Path) -> pl.DataFrame:
    """The raw 12h bars a bot would feed (the sample resampled)."""
    return resample(pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet"), TF)


@pytest.fixture
def make_model(server: EmbeddedRedis) -> Iterator[Callable[..., LiveModel]]:
    """``make_model(**options)``: an unstarted LiveModel on this test's Redis, closed afterwards."""
    made: list[LiveModel] = []

    def make(
        *, recheck_interval: float = NEVER_S, heartbeat_interval: float = 0.5, heartbeat_ttl: float = 30.0
    ) -> LiveModel:
        model = LiveModel(
            SYMBOL,
            TF.value,
            redis_url=server.url,
            recheck_interval=recheck_interval,
            heartbeat_interval=heartbeat_interval,
            heartbeat_ttl=heartbeat_ttl,
        )
        made.append(model)
        return model

    yield make
    for model in made:
        model.close()


# -- the champion's life: nothing, promotion, promotion, stale nudge, rollback ------------------------


def test_promotions_a_manual_promotion_and_a_rollback_reach_a_running_model_and_stale_nudges_do_not(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version], bars: pl.DataFrame
) -> None:
    v1, v2, _ = versions
    # No periodic re-check: within this test only the nudge (or a reconnect) can make the model re-read
    # the key.
    model = make_model(recheck_interval=NEVER_S)
    seen: list[tuple[str | None, str]] = []
    model.on_reload(lambda old, new: seen.append((old.version if old else None, new.version)))
    model.start()
    assert model.version is None and model.champion is None
    with pytest.raises(ChampionError, match="no champion loaded"):
        model.predict_proba(bars, now=closed(bars))
    with pytest.raises(ChampionError):
        model.decide(bars, now=closed(bars))

    at = announce_version(rds, v1)
    wait_until(lambda: model.version == v1.version, WAIT_S, "v1 via the nudge")
    print(f"v1 served {time.monotonic() - at:.2f}s after its announcement")
    assert seen == [(None, v1.version)]
    assert model.champion is not None and model.champion.path == v1.path
    first = model.predict_proba(bars, now=closed(bars))

    at = announce_version(rds, v2, previous=v1)
    wait_until(lambda: model.version == v2.version, WAIT_S, "v2 via the nudge")
    print(f"v2 served {time.monotonic() - at:.2f}s after its announcement")
    assert seen == [(None, v1.version), (v1.version, v2.version)]
    assert not np.allclose(
        model.predict_proba(bars, now=closed(bars)), first
    )  # another model, not another label

    # A duplicate nudge (v2, which is served) is ignored: the model does not even re-read the key (the
    # server's own GET count does not move).
    record = json.loads(rds.get(champion_key(SYMBOL, TF.value)) or "{}")
    gets = get_calls(rds)
    assert rds.publish(promoted_channel(SYMBOL, TF.value), dumps(record | {"event": "promoted"})) == 1
    time.sleep(1.5)
    assert get_calls(rds) == gets
    # A stale nudge (v1 "promoted" while the key still names v2: a late or replayed message) costs one
    # read of the key, which names v2: nothing changes.
    stale = {**record, "version": v1.version, "sha256": v1.manifest_sha256, "uri": v1.path.as_uri()}
    assert rds.publish(promoted_channel(SYMBOL, TF.value), dumps(stale | {"event": "promoted"})) == 1
    wait_until(lambda: get_calls(rds) > gets, WAIT_S, "the stale nudge's read of the key")
    time.sleep(1.0)
    assert get_calls(rds) == gets + 1
    assert model.version == v2.version and model.reloads == 2 and model.last_error is None
    second = model.predict_proba(bars, now=closed(bars))

    # A manual promotion of the older v1 (event "promoted", not a rollback) arrives through its nudge
    # (the periodic re-check is off).
    at = announce_version(rds, v1, previous=v2)
    wait_until(lambda: model.version == v1.version, WAIT_S, "the manual promotion of v1")
    print(f"manual promotion served {time.monotonic() - at:.2f}s after its announcement")
    assert seen[-1] == (v2.version, v1.version) and model.reloads == 3
    np.testing.assert_allclose(model.predict_proba(bars, now=closed(bars)), first)

    at = announce_version(rds, v2, event="rollback", previous=v1)
    wait_until(lambda: model.version == v2.version, WAIT_S, "the rollback to v2")
    print(f"rollback served {time.monotonic() - at:.2f}s after its announcement")
    assert seen[-1] == (v1.version, v2.version) and model.reloads == 4
    np.testing.assert_allclose(model.predict_proba(bars, now=closed(bars)), second)


def test_predictions_never_fail_while_versions_swap(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version], bars: pl.DataFrame
) -> None:
    v1, v2, v3 = versions
    announce_version(rds, v1)
    model = make_model().start()
    assert model.version == v1.version  # loaded at start, before start() returned
    errors: list[BaseException] = []
    served: set[str] = set()
    stop = threading.Event()
    window = bars.tail(300)

    def predict_in_a_loop() -> None:
        while not stop.is_set():
            try:
                scored = model.score(window, now=closed(window))
                assert np.isclose(scored.probabilities.sum(), 1.0)
                served.add(scored.version)
            except BaseException as exc:
                errors.append(exc)
                return

    worker = threading.Thread(target=predict_in_a_loop)
    worker.start()
    try:
        for previous, current in ((v1, v2), (v2, v3)):
            announce_version(rds, current, previous=previous)
            wait_until(serves(model, current), WAIT_S, current.version)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not errors, errors
    assert served <= {v1.version, v2.version, v3.version} and v3.version in served


# -- refusals -------------------------------------------------------------------------------------


def test_a_tampered_file_is_refused_and_the_old_version_keeps_serving(
    make_model: Callable[..., LiveModel],
    rds: redis.Redis,
    versions: list[Version],
    bars: pl.DataFrame,
    tmp_path: Path,
) -> None:
    v1, v2, v3 = versions
    announce_version(rds, v1)
    model = make_model().start()
    announce_version(rds, v2, previous=v1)
    wait_until(lambda: model.version == v2.version, WAIT_S, "v2")
    before = model.predict_proba(bars, now=closed(bars))

    tampered = tmp_path / "tampered" / v3.version
    shutil.copytree(v3.path, tampered)
    target = tampered / "base" / "lgbm_gbdt.txt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit; the manifest (and so its sha256) is untouched
    target.write_bytes(bytes(data))
    announce_version(rds, v3, previous=v2, pack_path=tampered)
    wait_until(lambda: model.last_error is not None, WAIT_S, "the refusal")
    assert model.last_error is not None
    assert "refused version " + v3.version in model.last_error
    assert "base/lgbm_gbdt.txt" in model.last_error and "sha256" in model.last_error
    assert model.version == v2.version and model.reloads == 2
    np.testing.assert_allclose(
        model.predict_proba(bars, now=closed(bars)), before
    )  # still serving v2, unchanged
    beat = rds.hgetall(bot_key(model.bot_id))
    assert beat["version"] == v2.version and "base/lgbm_gbdt.txt" in beat["last_error"]

    # Not retried while the key names the same record (its bytes will not change by themselves) ...
    gets = get_calls(rds)
    assert model.reload_if_changed() is False
    assert get_calls(rds) == gets + 1 and model.version == v2.version
    assert model.last_error and "lgbm_gbdt.txt" in model.last_error
    # ... but a new announcement of an intact copy is loaded, and the error clears.
    announce_version(rds, v3, previous=v2)
    wait_until(lambda: model.version == v3.version, WAIT_S, "the intact v3")
    assert model.last_error is None
    wait_until(lambda: rds.hget(bot_key(model.bot_id), "last_error") == "", WAIT_S, "a clean heartbeat")


def test_a_pack_that_does_not_reproduce_its_sample_rows_is_refused(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version], tmp_path: Path
) -> None:
    """The files all hash right (the manifest lists a sha256 for a changed model) but the outputs differ."""
    v1, v2, _ = versions
    announce_version(rds, v1)
    model = make_model().start()
    mixed = tmp_path / v2.version
    shutil.copytree(v2.path, mixed)
    # v2's manifest with v1's calibrator: every sha256 is consistent, the sample rows are not.
    shutil.copy(v1.path / "calibrator.json", mixed / "calibrator.json")
    manifest = json.loads((mixed / MANIFEST).read_text())
    manifest["files"]["calibrator.json"] = json.loads((v1.path / MANIFEST).read_text())["files"][
        "calibrator.json"
    ]
    (mixed / MANIFEST).write_text(json.dumps(manifest))
    forged = Version(v2.version, mixed, sha256_file(mixed / MANIFEST))
    announce_version(rds, forged, previous=v1)
    wait_until(lambda: model.last_error is not None, WAIT_S, "the refusal")
    assert model.last_error is not None and "sample rows do not reproduce" in model.last_error
    assert model.version == v1.version


def test_a_malformed_key_or_foreign_uri_is_reported_and_changes_nothing(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version]
) -> None:
    v1, v2, _ = versions
    announce_version(rds, v1)
    model = make_model(recheck_interval=1.0).start()
    key = champion_key(SYMBOL, TF.value)
    rds.set(key, "{not json")
    wait_until(lambda: model.last_error is not None, WAIT_S, "the malformed key")
    assert "malformed champion record" in (model.last_error or "") and model.version == v1.version
    record = {
        "symbol": SYMBOL,
        "timeframe": TF.value,
        "version": v2.version,
        "sha256": v2.manifest_sha256,
        "uri": f"s3://bucket/{v2.version}",
        "promoted_at": datetime.now(UTC).isoformat(),
    }
    rds.set(key, dumps(record))
    wait_until(lambda: "unsupported pack uri" in (model.last_error or ""), WAIT_S, "the s3 uri")
    assert model.version == v1.version
    # The key names the served version again: the problem has passed, and says so.
    served = {"version": v1.version, "sha256": v1.manifest_sha256, "uri": v1.path.as_uri()}
    rds.set(key, dumps(record | served))
    wait_until(lambda: model.last_error is None, WAIT_S, "the error to clear")
    assert model.version == v1.version and model.reloads == 1


# -- convergence without the nudge --------------------------------------------------------------


def test_a_key_changed_without_a_nudge_is_picked_up_by_the_recheck(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version]
) -> None:
    v1, v2, _ = versions
    announce_version(rds, v1)
    model = make_model(recheck_interval=1.0).start()
    record = json.loads(rds.get(champion_key(SYMBOL, TF.value)) or "{}")
    assert model.version == v1.version
    changed = record | {"version": v2.version, "sha256": v2.manifest_sha256, "uri": v2.path.as_uri()}
    rds.set(champion_key(SYMBOL, TF.value), dumps(changed))  # no PUBLISH: as if the nudge were lost
    # No nudge and no reconnect: only the 1 s re-check can find v2 (WAIT_S is a bound against a hang).
    took = wait_until(lambda: model.version == v2.version, WAIT_S, "v2 via the periodic re-check")
    print(f"converged {took:.2f}s after the key changed (recheck 1 s)")


def test_a_killed_connection_makes_the_model_re_read_the_key(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version]
) -> None:
    """The nudge was lost (the key changed, nothing published); the connections then die. The model must
    re-read the key on reconnecting: its periodic re-check never comes within the test."""
    v1, v2, _ = versions
    announce_version(rds, v1)
    model = make_model(recheck_interval=NEVER_S).start()
    wait_until(lambda: subscribers(rds) == 1, WAIT_S, "the model to subscribe")
    record = json.loads(rds.get(champion_key(SYMBOL, TF.value)) or "{}")
    changed = record | {"version": v2.version, "sha256": v2.manifest_sha256, "uri": v2.path.as_uri()}
    rds.set(champion_key(SYMBOL, TF.value), dumps(changed))
    killed = rds.client_kill_filter(_type="pubsub") + rds.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    took = wait_until(lambda: model.version == v2.version, WAIT_S, "v2 after the reconnect")
    print(f"converged {took:.2f}s after CLIENT KILL (no periodic re-check)")
    wait_until(lambda: model.last_error is None, WAIT_S, "the connection error to clear")
    wait_until(lambda: subscribers(rds) == 1, WAIT_S, "the model to subscribe again")


# -- polling bots, heartbeat, outcomes, predictions ----------------------------------------------


def test_a_polling_bot_reloads_when_it_asks(
    make_model: Callable[..., LiveModel], rds: redis.Redis, server: EmbeddedRedis, versions: list[Version]
) -> None:
    v1, v2, _ = versions
    model = make_model(heartbeat_interval=0.0).start(background=False)
    assert model.version is None and model.reload_if_changed() is False
    assert rds.exists(bot_key(model.bot_id))  # polling refreshes the heartbeat too (no thread does)
    announce_version(rds, v1)
    time.sleep(0.3)
    assert model.version is None  # nobody watches: nothing happens until the bot asks
    assert model.reload_if_changed() is True and model.version == v1.version
    assert model.reload_if_changed() is False
    announce_version(rds, v2, previous=v1)
    assert model.reload_if_changed() is True and model.version == v2.version
    assert not [t for t in threading.enumerate() if t.name.endswith(model.bot_id)]  # no threads started
    # Redis gone: the poll reports it and returns; the loaded version keeps serving.
    server.stop()
    started = time.monotonic()
    assert model.reload_if_changed() is False
    print(f"a poll with Redis down returned in {time.monotonic() - started:.2f}s")
    assert model.version == v2.version and model.last_error and "redis unavailable" in model.last_error


def test_the_heartbeat_hash(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version]
) -> None:
    v1, *_ = versions
    announce_version(rds, v1)
    before_start = datetime.now(UTC)
    model = make_model(heartbeat_interval=0.2, heartbeat_ttl=5.0).start()
    key = bot_key(model.bot_id)
    assert key == f"farm:bots:{model.bot_id}"
    wait_until(lambda: rds.hget(key, "version") == v1.version, WAIT_S, "the heartbeat")
    beat = rds.hgetall(key)
    assert {"symbol", "timeframe", "version", "loaded_at", "host", "pid"} <= beat.keys()
    assert (beat["symbol"], beat["timeframe"], beat["host"]) == (SYMBOL, TF.value, socket.gethostname())
    assert int(beat["pid"]) == os.getpid() and beat["last_error"] == ""
    loaded_at = datetime.fromisoformat(str(beat["loaded_at"]))
    assert before_start <= loaded_at <= datetime.now(UTC)  # the moment this model loaded v1
    assert 0 < rds.ttl(key) <= 5
    seen_at = beat["seen_at"]
    wait_until(lambda: rds.hget(key, "seen_at") != seen_at, WAIT_S, "a second heartbeat")
    model.close()
    assert not rds.exists(key)  # a clean stop removes it; a dead bot's hash expires by its TTL


def test_outcomes_are_reported_to_the_stream_with_the_registry_fields(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version], bars: pl.DataFrame
) -> None:
    v1, *_ = versions
    announce_version(rds, v1)
    model = make_model().start()
    decision = model.decide(bars, now=closed(bars))
    at = datetime(2026, 2, 1, 12, tzinfo=UTC)
    entry = model.report_outcome(signal=decision.signal or "none", probability=decision.probability, at=at)
    later = model.report_outcome(signal="up", probability=0.61, realised_return=-0.0123, at=at)
    stream = [(str(entry_id), dict(fields or {})) for entry_id, fields in rds.xrange(OUTCOMES_STREAM) or []]
    assert [entry_id for entry_id, _ in stream] == [entry, later]
    columns = {c.name for c in LiveOutcome.__table__.columns} - {"id"}
    first, second = (fields for _, fields in stream)
    # What the registry stores, nothing else; ``features`` only when the bot passes them (optional).
    assert first.keys() == columns - {"features"} == second.keys()
    assert first == {
        "bot_id": model.bot_id,
        "symbol": SYMBOL,
        "timeframe": TF.value,
        "version": v1.version,
        "signal": decision.signal or "none",
        "probability": repr(decision.probability),
        "realised_return": "",
        "at": at.isoformat(),
    }
    assert float(second["realised_return"]) == -0.0123 and float(second["probability"]) == 0.61
    scored = model.score(bars, now=closed(bars))
    assert scored.features is not None and scored.features.shape == (len(FEATURE_NAMES),)
    model.report_outcome(signal="up", probability=0.61, at=scored.bar, features=scored.features)
    third = dict(rds.xrange(OUTCOMES_STREAM)[-1][1])
    assert third.keys() == columns and json.loads(third["features"]) == scored.features.tolist()


def test_predict_proba_on_raw_bars_and_the_decision_with_p_star(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version], bars: pl.DataFrame
) -> None:
    v1, *_ = versions
    announce_version(rds, v1)
    model = make_model().start()
    probs = model.predict_proba(bars, now=closed(bars))
    assert probs.shape == (3,) and np.all(probs >= 0) and np.isclose(probs.sum(), 1.0)
    # The newest bar's probabilities are the predictor's last row for the same bars.
    full = model.predictor.predict_bars(bars).select("p_down", "p_neutral", "p_up").to_numpy()
    np.testing.assert_allclose(probs, full[-1])
    p_star = float(json.loads((v1.path / MANIFEST).read_text())["p_star"])
    decision = model.decide(bars, now=closed(bars))
    assert decision == decide(probs, p_star) and decision.p_star == p_star
    scored = model.score(bars, now=closed(bars))
    assert scored.version == v1.version and scored.decision == decision
    assert scored.bar == bars["date"][-1] and scored.reason is None
    # The threshold is the pack's: moved below the confidence there is a signal, above it none.
    confidence = float(max(probs[0], probs[2]))
    model.predictor.manifest["p_star"] = confidence - 1e-9
    assert model.decide(bars, now=closed(bars)).signal == ("up" if probs[2] >= probs[0] else "down")
    model.predictor.manifest["p_star"] = confidence + 1e-9
    assert model.decide(bars, now=closed(bars)).signal is None
    with pytest.raises(NoSignalError, match="incomplete features"):
        model.predict_proba(bars.head(5), now=closed(bars.head(5)))


def test_only_the_newest_closed_bar_is_scored_or_the_reason_is_given(
    make_model: Callable[..., LiveModel], rds: redis.Redis, versions: list[Version], bars: pl.DataFrame
) -> None:
    v1, *_ = versions
    announce_version(rds, v1)
    model = make_model().start()
    interval = PACK_TF.duration
    newest, previous = bars["date"][-1], bars["date"][-2]
    # A bar that has not closed yet is never scored: the bar before it is the newest closed one.
    half_way = newest + interval / 2
    assert model.score(bars, now=half_way).bar == previous
    assert model.score(bars, now=half_way).probabilities is not None
    # The feed stopped: the newest closed bar is older than one interval plus the grace.
    late = closed(bars) + interval + timedelta(minutes=3)
    stale = model.score(bars, now=late)
    assert stale.probabilities is None and stale.decision is None and stale.bar == newest
    assert stale.reason is not None and "stale" in stale.reason
    assert model.no_signal_reason == stale.reason
    assert model.decide(bars, now=late).signal is None
    # The heartbeat says so (waited for: a beat that read the state before this score may land after it).
    wait_until(
        lambda: "stale" in rds.hgetall(bot_key(model.bot_id)).get("no_signal_reason", ""),
        WAIT_S,
        "the stale reason in the heartbeat",
    )
    # A resampled bar built from fewer 5m bars than its interval holds is not scored.
    short = bars.with_columns(bars=pl.lit(144, dtype=pl.UInt32))
    short = short.with_columns(
        pl.when(pl.col("date") == newest).then(pl.lit(143)).otherwise(pl.col("bars")).alias("bars")
    )
    incomplete = model.score(short, now=closed(bars))
    assert incomplete.probabilities is None and "incomplete: 143 of 144" in (incomplete.reason or "")
    # After a gap the features warm up again: the newest bar is not scored, and no older bar instead.
    gap = pl.concat([bars.head(bars.height - 3), bars.tail(1)])
    warm = model.score(gap, now=closed(bars))
    assert warm.bar == newest
    assert warm.probabilities is not None or "incomplete features" in (warm.reason or "")
    # Scored again once the bars are whole and current.
    assert model.score(bars, now=closed(bars)).reason is None and model.no_signal_reason is None


# -- nothing is unpickled -----------------------------------------------------------------------


def test_nothing_is_unpickled(
    make_model: Callable[..., LiveModel],
    rds: redis.Redis,
    versions: list[Version],
    bars: pl.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("something was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    v1, v2, _ = versions
    announce_version(rds, v1)
    model = make_model().start()
    assert model.version == v1.version
    announce_version(rds, v2, previous=v1)
    wait_until(lambda: model.version == v2.version, WAIT_S, "v2 with pickle refused")
    assert model.last_error is None and np.isclose(model.predict_proba(bars, now=closed(bars)).sum(), 1.0)
    # And no pickle-like loader appears anywhere in the client's source.
    forbidden = {"pickle", "cPickle", "_pickle", "joblib", "cloudpickle", "dill", "shelve"}
    for source in Path(trainfarm_client.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & forbidden, f"{source.name} imports {names & forbidden}"
    assert not [p for v in versions for p in v.path.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib"}]


def test_champion_records_parse_as_documented(versions: list[Version]) -> None:
    v1, *_ = versions
    record = {
        "symbol": SYMBOL,
        "timeframe": TF.value,
        "version": v1.version,
        "sha256": v1.manifest_sha256,
        "uri": v1.path.as_uri(),
        "promoted_at": "2026-01-01T00:00:00.000000+00:00",
    }
    champion = Champion.from_json(dumps(record | {"extra": "ignored"}))
    assert champion.path == v1.path and champion.version == v1.version
    for missing in record:
        with pytest.raises(ChampionError, match=missing):
            Champion.from_json(dumps({k: v for k, v in record.items() if k != missing}))
    for junk in ("[]", '"text"', "{", b"\xff"):
        with pytest.raises(ChampionError, match="malformed"):
            Champion.from_json(junk)
