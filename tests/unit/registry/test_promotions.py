"""Champion promotion in the registry: semantics, history, rollback, retention, and concurrent promoters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.support.concurrency import in_threads, on_own_engine
from trainfarm.shared.errors import FarmError
from trainfarm.shared.registry import (
    NoChampionError,
    PromotionRefusedError,
    Registry,
    VersionNotFoundError,
    VersionRecord,
    VersionStatus,
)

SHA = "cd" * 32
FAILED_REPORT = {
    "passed": False,
    "checks": [{"name": "min_sharpe", "value": -0.2, "threshold": 0.0, "passed": False}],
}


@pytest.fixture
def versions(registry: Registry, new_run: Callable[..., str]) -> Callable[..., list[str]]:
    """Add BTC_USDT 1h candidates named ``v1``, ``v2``, ... (oldest first) and return their ids."""
    made: list[str] = []

    def make(count: int, symbol: str = "BTC_USDT", timeframe: str = "1h") -> list[str]:
        ids = []
        for _ in range(count):
            vid = f"v{len(made) + 1}"
            registry.versions.add(
                vid,
                symbol,
                timeframe,
                new_run(symbol, timeframe),
                metrics={},
                path=f"/p/{vid}",
                manifest_sha256=SHA,
            )
            made.append(vid)
            ids.append(vid)
        return ids

    return make


def statuses(registry: Registry) -> dict[str, str]:
    return {v.version: v.status.value for v in registry.versions.of_market("BTC_USDT", "1h")}


def test_promote_demotes_the_champion_and_records_history(
    registry: Registry, versions: Callable[..., list[str]]
) -> None:
    v1, v2, v3 = versions(3)
    assert registry.champions.get("BTC/USDT", "60m") is None
    first = registry.champions.promote(v1, reason="gate", gate_report={"passed": True, "checks": []})
    assert (first.from_version, first.to_version, first.reason.value, first.new) == (None, v1, "gate", True)
    assert first.at.tzinfo is UTC
    champion = registry.champions.get("BTC_USDT", "1h")
    assert champion is not None and champion.version == v1
    assert champion.gate_report == {"passed": True, "checks": []}

    second = registry.champions.promote(v2, reason="gate")
    assert (second.from_version, second.to_version) == (v1, v2)
    assert statuses(registry) == {v1: "retired", v2: "champion", v3: "candidate"}
    previous = registry.champions.previous("BTC_USDT", "1h")
    assert previous is not None and previous.version == v1
    history = registry.champions.history("btc/usdt", "1h")
    assert [(p.from_version, p.to_version) for p in history] == [(v1, v2), (None, v1)]  # newest first
    assert history[0].at > history[1].at


def test_promoting_the_champion_again_changes_nothing(
    registry: Registry, versions: Callable[..., list[str]]
) -> None:
    v1, v2 = versions(2)
    registry.champions.promote(v1, reason="gate")
    made = registry.champions.promote(v2, reason="gate")
    again = registry.champions.promote(v2, reason="manual", gate_report={"passed": False})
    assert again.new is False
    assert (again.id, again.from_version, again.reason, again.at) == (made.id, v1, made.reason, made.at)
    assert len(registry.champions.history("BTC_USDT", "1h")) == 2
    assert registry.versions.get(v2).gate_report is None  # a no-op stores nothing


def test_a_rejected_version_is_promoted_only_manually(
    registry: Registry, versions: Callable[..., list[str]]
) -> None:
    v1, v2 = versions(2)
    registry.champions.promote(v1, reason="gate")
    rejected = registry.champions.reject(v2, FAILED_REPORT)
    assert rejected.status is VersionStatus.REJECTED and rejected.gate_report == FAILED_REPORT
    for reason in ("gate", "rollback"):
        with pytest.raises(PromotionRefusedError, match=f"only a manual promotion .*not a {reason} one"):
            registry.champions.promote(v2, reason=reason)
    assert statuses(registry) == {v1: "champion", v2: "rejected"}
    manual = registry.champions.promote(v2, reason="manual")
    assert (manual.from_version, manual.to_version, manual.reason.value) == (v1, v2, "manual")
    assert statuses(registry) == {v1: "retired", v2: "champion"}


def test_unknown_versions_and_reasons_are_refused(
    registry: Registry, versions: Callable[..., list[str]]
) -> None:
    (v1,) = versions(1)
    with pytest.raises(VersionNotFoundError, match="no version 'nope'") as info:
        registry.champions.promote("nope", reason="manual")
    assert isinstance(info.value, FarmError)
    with pytest.raises(ValueError, match="'vote'"):
        registry.champions.promote(v1, reason="vote")  # type: ignore[arg-type]
    with pytest.raises(VersionNotFoundError):
        registry.champions.reject("nope", FAILED_REPORT)
    with pytest.raises(VersionNotFoundError):
        registry.versions.set_gate_report("nope", {})
    assert registry.champions.history("BTC_USDT", "1h") == []


def test_reject_and_gate_reports(registry: Registry, versions: Callable[..., list[str]]) -> None:
    v1, v2 = versions(2)
    report = {"passed": True, "checks": [{"name": "min_sharpe", "value": float("nan"), "passed": True}]}
    stored = registry.versions.set_gate_report(v1, report)
    assert stored.status is VersionStatus.CANDIDATE
    assert stored.gate_report == {
        "passed": True,
        "checks": [{"name": "min_sharpe", "value": None, "passed": True}],
    }
    registry.champions.promote(v1, reason="gate")
    with pytest.raises(PromotionRefusedError, match=f"{v1} is the champion of BTC_USDT 1h"):
        registry.champions.reject(v1, FAILED_REPORT)
    assert registry.champions.reject(v2, FAILED_REPORT).status is VersionStatus.REJECTED
    assert registry.champions.reject(v2, {"passed": False}).gate_report == {"passed": False}  # repeatable


def test_rollback_returns_to_the_previous_champion(
    registry: Registry, versions: Callable[..., list[str]]
) -> None:
    v1, v2 = versions(2)
    with pytest.raises(NoChampionError, match="BTC_USDT 1h has no champion"):
        registry.champions.rollback("BTC_USDT", "1h")
    registry.champions.promote(v1, reason="gate")
    with pytest.raises(NoChampionError, match=f"BTC_USDT 1h has no previous champion.*{v1} was the first"):
        registry.champions.rollback("BTC_USDT", "1h")
    registry.champions.promote(v2, reason="gate")
    with pytest.raises(PromotionRefusedError, match="changed meanwhile"):
        registry.champions.rollback("BTC_USDT", "1h", to_version="v0")
    assert registry.champions.rollback("BTC_USDT", "1h", to_version=v2).new is False  # there already
    back = registry.champions.rollback("BTC_USDT", "1h", to_version=v1)
    assert (back.from_version, back.to_version, back.reason.value) == (v2, v1, "rollback")
    assert statuses(registry) == {v1: "champion", v2: "retired"}
    # The previous champion is now the one rolled back from: a second rollback undoes the first.
    previous = registry.champions.previous("BTC_USDT", "1h")
    assert previous is not None and previous.version == v2
    assert registry.champions.promote(v2, reason="rollback").to_version == v2


def test_promotion_times_increase_even_when_the_clock_does_not(
    db_url: str, versions: Callable[..., list[str]], registry: Registry
) -> None:
    ids = versions(3)
    frozen = datetime(2030, 1, 1, tzinfo=UTC)
    with Registry.open(db_url, clock=lambda: frozen) as stuck:
        times = [stuck.champions.promote(v, reason="manual").at for v in ids]
    assert times[0] == frozen and times[0] < times[1] < times[2]


def test_markets_are_independent(registry: Registry, versions: Callable[..., list[str]]) -> None:
    (b1,) = versions(1)
    (e1,) = versions(1, "ETH_USDT", "1h")
    (b5,) = versions(1, "BTC_USDT", "5m")
    for v in (b1, e1, b5):
        assert registry.champions.promote(v, reason="gate").from_version is None
    for sym, tf, v in (("BTC_USDT", "1h", b1), ("ETH_USDT", "1h", e1), ("BTC_USDT", "5m", b5)):
        champion = registry.champions.get(sym, tf)
        assert champion is not None and champion.version == v


def test_prunable_keeps_newest_champion_and_previous(
    registry: Registry, versions: Callable[..., list[str]]
) -> None:
    ids = versions(8)  # v1 (oldest) .. v8 (newest)
    registry.champions.promote("v2", reason="gate")
    registry.champions.promote("v3", reason="gate")  # champion v3, previous champion v2
    registry.champions.reject("v4", FAILED_REPORT)
    assert [v.version for v in registry.champions.prunable("BTC_USDT", "1h", keep=3)] == ["v5", "v4", "v1"]
    assert registry.champions.prunable("BTC_USDT", "1h", keep=8) == []
    assert {v.version for v in registry.champions.prunable("BTC_USDT", "1h", keep=0)} == set(ids) - {
        "v2",
        "v3",
    }

    marked = registry.champions.mark_pruned("BTC_USDT", "1h", keep=3)
    assert [v.version for v in marked] == ["v5", "v4", "v1"]
    assert all(v.pruned_at is not None for v in marked)
    after = {v.version: v for v in registry.versions.of_market("BTC_USDT", "1h")}
    # A pruned candidate can never be promoted (its pack is gone): retired. A rejection stays on record.
    assert (after["v5"].status, after["v4"].status, after["v1"].status) == (
        VersionStatus.RETIRED,
        VersionStatus.REJECTED,
        VersionStatus.RETIRED,
    )
    assert after["v6"].pruned_at is None and after["v3"].pruned_at is None
    assert registry.champions.mark_pruned("BTC_USDT", "1h", keep=3) == []  # nothing twice
    with pytest.raises(PromotionRefusedError, match="v5 was pruned"):
        registry.champions.promote("v5", reason="manual")


# --- concurrency --------------------------------------------------------------------------------------


def _check_consistent(registry: Registry, candidates: list[str], before: str | None) -> VersionRecord:
    champion = registry.champions.get("BTC_USDT", "1h")
    assert champion is not None and champion.version in candidates
    current = statuses(registry)
    assert list(current.values()).count("champion") == 1
    history = registry.champions.history("BTC_USDT", "1h")[: len(candidates)][
        ::-1
    ]  # this round, oldest first
    assert sorted(p.to_version for p in history) == sorted(candidates)
    # Serialised: each promotion replaced the champion the one before it made.
    assert [p.from_version for p in history] == [before] + [p.to_version for p in history[:-1]]
    assert history[-1].to_version == champion.version
    for p in history[:-1]:
        assert current[p.to_version] == "retired"
    return champion


def test_two_workers_promoting_at_once_leave_one_champion(
    db_url: str, registry: Registry, versions: Callable[..., list[str]]
) -> None:
    before: str | None = None
    for _ in range(5):  # a few rounds, so an unlucky interleaving has chances to show up
        candidates = versions(2)
        in_threads(
            2,
            lambda i, c=candidates: on_own_engine(db_url, lambda r: r.champions.promote(c[i], reason="gate")),
        )
        before = _check_consistent(registry, candidates, before).version


def test_many_workers_promoting_and_rolling_back_at_once(
    db_url: str, registry: Registry, versions: Callable[..., list[str]]
) -> None:
    first = versions(1)[0]
    registry.champions.promote(first, reason="gate")
    candidates = versions(4)
    in_threads(
        4, lambda i: on_own_engine(db_url, lambda reg: reg.champions.promote(candidates[i], reason="gate"))
    )
    champion = _check_consistent(registry, candidates, first)
    # Concurrent rollbacks to one target: the first wins, the rest find it champion already.
    target = registry.champions.previous("BTC_USDT", "1h")
    assert target is not None
    results = in_threads(
        3,
        lambda _: on_own_engine(
            db_url, lambda r: r.champions.rollback("BTC_USDT", "1h", to_version=target.version)
        ),
    )
    assert sum(r.new for r in results) == 1 and {r.to_version for r in results} == {target.version}
    previous = registry.champions.history("BTC_USDT", "1h")[0]
    assert (previous.reason.value, previous.from_version) == ("rollback", champion.version)
    assert list(statuses(registry).values()).count("champion") == 1
