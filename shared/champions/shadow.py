"""Shadow challengers: start, end and decide them, Celery-free (docs/ml.md#shadow-challengers).

A challenger is a version bots score beside the champion without acting on it. The registry holds the
truth (``registry.shadows``); Redis holds the pointer bots read, ``farm:challenger:<S>:<T>`` (the champion
key's JSON), set and cleared with a ``challenger`` nudge on the market's channel
(:func:`~trainfarm.shared.champions.announce.announce_challenger`). The order is the promotion's: pack
verified, registry committed, then Redis; a Redis failure after the commit raises
:class:`~trainfarm.shared.champions.publish.NotAnnouncedError` and :func:`reconcile_challengers` (run with
the champions' reconciliation) puts the keys back in line.

The decision (:func:`decide`) is taken once per challenger, from the live bars scored by both
(:func:`evidence`, the statistics in :mod:`trainfarm.shared.evaluation.shadow_test`): promote (through
:func:`~trainfarm.shared.champions.publish.promote_version`, reason ``gate``, the verdict added to the gate
report) or retire (the version is rejected with a failed ``shadow`` check). Candidates that pass the gates
while a challenger is active wait as candidates; the newest of them takes the slot when it frees
(:func:`start_next`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import polars as pl
import redis

from trainfarm.shared.champions.announce import (
    NotifyError,
    announce_challenger,
    champion_record,
    read_challenger,
)
from trainfarm.shared.champions.publish import promote_version, redis_after, reject_version, verify_pack
from trainfarm.shared.config import FarmConfig, TimeframeParams
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.errors import ShadowRefusedError
from trainfarm.shared.evaluation.shadow_test import ShadowBars, ShadowVerdict, shadow_verdict, shadow_window
from trainfarm.shared.registry import (
    ChallengerOutcome,
    ChallengerRecord,
    PromotionReason,
    Registry,
    VersionRecord,
    VersionStatus,
)
from trainfarm.shared.replay.scoring import realised
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.timeframes import Timeframe

log = logging.getLogger(__name__)


def start_challenger(
    version_id: str,
    *,
    started_by: str = "manual",
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> ChallengerRecord:
    """Make ``version_id`` its market's challenger (the active one, if any, is superseded).

    Refused (:class:`ShadowRefusedError`, nothing changed) when the market has no champion, the version
    is the champion or pruned, or, started by the gates, is no longer a candidate; an
    :class:`~trainfarm.shared.errors.ArtifactError` when its pack fails verification. Starting the active
    challenger again re-announces it (idempotent).
    """
    settings = settings or get_settings()
    registry = registry or Registry.open()
    version = registry.versions.get(version_id)
    sym, tf = version.symbol, version.timeframe
    champion = registry.champions.get(sym, tf)
    if champion is None:
        raise ShadowRefusedError(f"{sym} {tf} has no champion for {version_id} to be compared with")
    if champion.version == version.version:
        raise ShadowRefusedError(f"{version_id} is the champion of {sym} {tf} already")
    if version.pruned_at is not None:
        raise ShadowRefusedError(f"{version_id}'s pack was pruned; it cannot be scored live")
    if started_by == "gate" and version.status is not VersionStatus.CANDIDATE:
        raise ShadowRefusedError(f"{version_id} is {version.status.value}, not a candidate")
    verify_pack(version)
    record, replaced = registry.shadows.start(
        sym, tf, version.version, champion.version, started_by=started_by
    )
    details: dict[str, object] = {
        "champion": champion.version,
        "started_by": record.started_by,
        "replaced": replaced.version if replaced else None,
    }
    done = f"{version_id} is the challenger of {sym} {tf} in the registry"
    with redis_after(settings, client, done) as conn:
        announce_challenger(
            conn,
            symbol=sym,
            timeframe=tf,
            version=version.version,
            record=_key_record(version, record, settings),
            details=details,
        )
    log.info("%s %s: challenger %s against champion %s", sym, tf, version.version, champion.version)
    return record


def end_challenger(
    challenger: ChallengerRecord,
    outcome: ChallengerOutcome,
    reason: str,
    verdict: Mapping[str, object] | None = None,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> ChallengerRecord:
    """End ``challenger`` in the registry, then clear its key (unless a newer challenger holds it)."""
    settings = settings or get_settings()
    registry = registry or Registry.open()
    ended = registry.shadows.end(challenger.id, outcome, reason, verdict)
    details = {"outcome": (ended.outcome or outcome).value, "reason": ended.reason}
    done = (
        f"challenger {challenger.version} of {challenger.symbol} {challenger.timeframe} ended in the registry"
    )
    with redis_after(settings, client, done) as conn:
        announce_challenger(
            conn,
            symbol=challenger.symbol,
            timeframe=challenger.timeframe,
            version=challenger.version,
            record=None,
            details=details,
        )
    return ended


def stop_challenger(
    symbol: str,
    timeframe: str,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> ChallengerRecord:
    """End the market's active challenger by hand (``stopped``; its version stays as it was)."""
    registry = registry or Registry.open()
    active = registry.shadows.active(symbol, timeframe)
    if active is None:
        raise ShadowRefusedError(f"{symbol} {timeframe} has no active challenger")
    return end_challenger(
        active,
        ChallengerOutcome.STOPPED,
        "stopped by an operator",
        registry=registry,
        client=client,
        settings=settings,
    )


def evidence(
    challenger: ChallengerRecord, registry: Registry, store: BarStore, params: TimeframeParams
) -> ShadowBars | None:
    """The challenger's live window: every bar from the first one scored by both to the last labelled
    one, with the farm's own labels and returns (None while no bar was scored by both)."""
    pairs = registry.shadows.paired(challenger.version, challenger.champion_version)
    if not pairs:
        return None
    tf = Timeframe(challenger.timeframe)
    first = pairs[0].at
    # Enough bars before the first pair for the label's volatility window, whatever the gaps.
    warmup = (2 * params.vol_window + params.label_horizon + params.max_gap_bars) * tf.duration
    bars = store.load(challenger.symbol, tf, start=first - warmup)
    truth = realised(bars, tf, params).filter(pl.col("date") >= first)
    return shadow_window(truth, {p.at: p for p in pairs})


def judge(
    challenger: ChallengerRecord, registry: Registry, store: BarStore, config: FarmConfig
) -> ShadowVerdict:
    """The shadow test's verdict on ``challenger`` now (``wait`` until it has its bars)."""
    params = config.params(Timeframe(challenger.timeframe))
    promo = params.promotion
    scored = registry.shadows.count(challenger.version, challenger.champion_version)
    window = evidence(challenger, registry, store, params) if scored >= promo.shadow_min_bars else None
    if window is None:
        # Fewer bars scored by both than the decision needs, labelled or not: no need to load the bars
        # (this runs every minute for every challenger).
        why = f"at most {scored} of {promo.shadow_min_bars} labelled live bars scored by both"
        return ShadowVerdict("wait", why, scored, promo.shadow_min_bars)
    return shadow_verdict(
        window,
        min_bars=promo.shadow_min_bars,
        horizon=params.label_horizon,
        fee=config.evaluation.fee,
        confidence=promo.shadow_confidence,
        samples=promo.shadow_bootstrap_samples,
        seed=config.training.seed,
    )


def decide(
    challenger: ChallengerRecord,
    verdict: ShadowVerdict,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> ChallengerRecord:
    """Act on a promote or retire verdict, once: promote or reject the version, then end the challenger."""
    settings = settings or get_settings()
    registry = registry or Registry.open()
    version = registry.versions.get(challenger.version)
    check = {
        "name": "shadow",
        "passed": verdict.decision == "promote",
        "reason": verdict.reason,
        "figures": verdict.to_json(),
    }
    report = _with_check(version.gate_report, check)
    if verdict.decision == "promote":
        promote_version(
            version.version,
            PromotionReason.GATE,
            gate_report=report,
            registry=registry,
            client=client,
            settings=settings,
        )
        outcome = ChallengerOutcome.PROMOTED
    elif verdict.decision == "retire":
        if version.status is VersionStatus.CANDIDATE:
            reject_version(version.version, report, registry=registry, client=client, settings=settings)
        outcome = ChallengerOutcome.RETIRED
    else:
        raise ValueError(f"a {verdict.decision!r} verdict decides nothing")
    return end_challenger(
        challenger,
        outcome,
        verdict.reason,
        verdict.to_json(),
        registry=registry,
        client=client,
        settings=settings,
    )


def _with_check(report: Mapping[str, object] | None, check: dict[str, object]) -> dict[str, object]:
    """The gate report with the shadow check added (its overall verdict becomes the check's)."""
    out = dict(report or {})
    checks = out.get("checks")
    if isinstance(checks, list):
        out["checks"] = [*checks, check]
    elif isinstance(checks, Mapping):
        out["checks"] = {**checks, "shadow": check}
    else:
        out["checks"] = [check]
    out["passed"] = bool(check["passed"]) and out.get("passed", True) is not False
    return out


def next_candidate(registry: Registry, symbol: str, timeframe: str) -> VersionRecord | None:
    """The newest candidate that passed the gates after the champion was made and was never a challenger."""
    champion = registry.champions.get(symbol, timeframe)
    if champion is None:
        return None
    for version in registry.versions.of_market(symbol, timeframe):  # newest first
        if version.created_at <= champion.created_at:
            break
        passed = (version.gate_report or {}).get("passed") is True
        waiting = version.status is VersionStatus.CANDIDATE and passed and version.pruned_at is None
        if waiting and not registry.shadows.of_version(version.version):
            return version
    return None


def start_next(
    symbol: str,
    timeframe: str,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> ChallengerRecord | None:
    """Start the market's waiting candidate (:func:`next_candidate`) when no challenger is active."""
    registry = registry or Registry.open()
    if registry.shadows.active(symbol, timeframe) is not None:
        return None
    waiting = next_candidate(registry, symbol, timeframe)
    if waiting is None:
        return None
    return start_challenger(
        waiting.version, started_by="gate", registry=registry, client=client, settings=settings
    )


def expired(challenger: ChallengerRecord, max_age: timedelta, now: datetime) -> bool:
    """True when ``challenger`` is older than ``max_age`` at ``now``."""
    return now - challenger.started_at > max_age


def reconcile_challengers(registry: Registry, client: redis.Redis, settings: FarmSettings) -> list[str]:
    """Set every active challenger's key that is missing or names another version; the versions repaired.

    (A key naming a challenger the registry has ended is cleared by the next end or start; bots verify
    whatever they load, so a stale key costs a little CPU, never a wrong trade.)
    """
    repaired = []
    for challenger in registry.shadows.all_active():
        try:
            found = read_challenger(client, challenger.symbol, challenger.timeframe)
        except NotifyError:
            found = None
        version = registry.versions.get(challenger.version)
        expected = _key_record(version, challenger, settings)
        if found == expected:
            continue
        announce_challenger(
            client,
            symbol=challenger.symbol,
            timeframe=challenger.timeframe,
            version=challenger.version,
            record=expected,
            details={"champion": challenger.champion_version, "started_by": challenger.started_by},
        )
        repaired.append(challenger.version)
    return repaired


def _key_record(
    version: VersionRecord, challenger: ChallengerRecord, settings: FarmSettings
) -> dict[str, str]:
    return champion_record(
        symbol=version.symbol,
        timeframe=version.timeframe,
        version=version.version,
        manifest_sha256=version.manifest_sha256,
        pack_path=version.path,
        promoted_at=challenger.started_at,
        base_url=settings.pack_base_url,
        root=settings.artifacts_dir,
    )


__all__ = [
    "decide",
    "end_challenger",
    "evidence",
    "expired",
    "judge",
    "next_candidate",
    "reconcile_challengers",
    "start_challenger",
    "start_next",
    "stop_challenger",
]
