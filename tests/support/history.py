"""A market's history written into a real registry: versions, gate verdicts, promotions, a rollback and the
bots' outcomes, for the dashboard's history page tests. A plain helper module (neither a test module nor a
conftest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trainfarm.shared.registry import PromotionReason, Registry, Signal

#: An operator's free-text retrain reason: the page must show it as text, never run it.
HOSTILE_REASON = "<script>alert('x')</script> retrain by hand"
START = datetime(2026, 3, 1, tzinfo=UTC)
#: Each champion period's mean return per signal, in the order of the moves.
DRIFTS = (0.0004, 0.0012, -0.0015, -0.0004, 0.0020, 0.0008)


class SetClock:
    """A registry clock that says whatever time it was last set to."""

    def __init__(self, at: datetime = START) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Seeded:
    """What :func:`seed_history` wrote, in order."""

    versions: list[str] = field(default_factory=list)
    failed: dict[str, list[str]] = field(default_factory=dict)  #: version -> its failed checks
    promoted: list[tuple[str, str]] = field(default_factory=list)  #: (version, reason), rollbacks too
    outcomes: dict[str, int] = field(default_factory=dict)  #: version -> outcomes with a return


def gate_report(failed: list[str]) -> dict[str, object]:
    """A stored gate report of three checks, ``failed`` (names among them) failing."""
    names = ["logloss_vs_prior", "sharpe", "signals"]
    checks = [
        {"name": n, "value": 0.1, "threshold": 0.0, "op": ">=", "passed": n not in failed} for n in names
    ]
    return {"profile": "default", "passed": not failed, "failed": failed, "checks": checks}


def metrics(meta: float, prior: float, base: float) -> dict[str, object]:
    """A version's metrics as the evaluation nests them (only what the history reads)."""
    return {
        "meta": {"logloss": meta},
        "prior": {"logloss": prior},
        "best_base": {"model": "lightgbm", "logloss": base},
    }


def seed_history(
    registry: Registry,
    clock: SetClock,
    symbol: str = "BTC_USDT",
    timeframe: str = "1h",
    start: datetime = START,
) -> Seeded:
    """Twelve daily versions of one market from ``start`` on: three fail their gates, five are promoted (one
    by hand), then one rollback; every champion period gets up to 40 hourly outcomes with a realised return
    (a fixed pattern around a drift of its own: each period's win rate and Sharpe differ)."""
    seeded = Seeded()
    fails = {2: ["sharpe"], 5: ["logloss_vs_prior", "signals"], 8: ["sharpe"]}
    promote = {0: "gate", 3: "gate", 6: "manual", 9: "gate", 11: "gate"}
    for day in range(12):
        clock.at = start + timedelta(days=day)
        reason = HOSTILE_REASON if day == 6 else ("trigger: stale" if day % 3 == 1 else "schedule")
        run = registry.runs.create(symbol, timeframe, reason)
        version = f"v{day + 1:02d}-{symbol}"
        wobble = ((day * 7) % 5 - 2) * 0.004
        failed = fails.get(day, [])
        registry.versions.add(
            version,
            symbol,
            timeframe,
            run.id,
            metrics=metrics(
                1.05 + wobble + (0.03 if failed else 0.0), 1.086 - day * 0.001, 1.062 + wobble / 2
            ),
            path=f"/p/{version}",
            manifest_sha256="0" * 64,
            gate_report=gate_report(failed),
        )
        seeded.versions.append(version)
        seeded.failed[version] = failed
        clock.at += timedelta(hours=2)
        if failed:
            registry.champions.reject(version, gate_report(failed))
        elif promote.get(day):
            registry.champions.promote(version, reason=PromotionReason(promote[day]))
            seeded.promoted.append((version, str(promote[day])))
        if day == 7:  # the manual champion of day 6 is rolled back the next day
            clock.at += timedelta(hours=1)
            back = registry.champions.rollback(symbol, timeframe)
            seeded.promoted.append((back.to_version, "rollback"))
    _outcomes(registry, symbol, timeframe, seeded)
    return seeded


def _outcomes(registry: Registry, symbol: str, timeframe: str, seeded: Seeded) -> None:
    history = list(reversed(registry.champions.history(symbol, timeframe)))
    signals = []
    for i, move in enumerate(history):
        until = history[i + 1].at if i + 1 < len(history) else move.at + timedelta(days=2)
        hours = min(int((until - move.at).total_seconds() // 3600) - 1, 40)
        for h in range(hours):
            # Noise in [-0.008, 0.008] from a fixed pattern, around the period's own drift.
            ret = DRIFTS[i % len(DRIFTS)] + 0.008 * (((h * 37 + i * 11) % 9) - 4) / 4
            at = (move.at + timedelta(hours=h + 1)).replace(minute=0, second=0, microsecond=0)
            signals.append(Signal(f"bot-{i}", symbol, timeframe, move.to_version, at, "up", 0.6, ret))
        seeded.outcomes[move.to_version] = seeded.outcomes.get(move.to_version, 0) + hours
    registry.outcomes.record(signals)


__all__ = ["HOSTILE_REASON", "START", "Seeded", "SetClock", "gate_report", "metrics", "seed_history"]
