"""The periodic trigger check: every market's policies evaluated, each firing one at most once per cooldown.

:func:`report` is what `farm triggers` shows (read-only); :func:`check` is what beat's ``check-triggers``
entry runs: for each policy that says "retrain", it sets the market's cooldown key for that policy in
Redis (``SET NX EX``: atomic, so two checkers never both fire) and submits the retrain, which merges into
a run already under way. A submit that fails (the broker is down) clears the key again, so the next check
retries. Celery-free: the caller passes the submit function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.registry import Registry
from trainfarm.shared.triggers import Decision, Market, evaluate
from trainfarm.workers.runs import Submitted

#: Redis key holding one market's cooldown for one policy (its TTL is the time left).
COOLDOWN_KEY = "farm:triggers:cooldown:{symbol}:{timeframe}:{policy}"

Submit = Callable[[str, str, str], Submitted]


@dataclass(frozen=True)
class MarketReport:
    """One market's decisions, and for each policy the seconds its cooldown still runs (0: none)."""

    symbol: str
    timeframe: str
    decisions: list[Decision]
    cooldown_s: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """What `farm triggers --json` prints per market."""
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "policies": [
                d.to_json() | {"cooldown_s": self.cooldown_s.get(d.policy, 0)} for d in self.decisions
            ],
        }


@dataclass(frozen=True)
class Fired:
    """A policy that fired, and the run it submitted (or merged into)."""

    symbol: str
    timeframe: str
    policy: str
    run_id: str
    merged: bool


def markets(registry: Registry, config: FarmConfig, now: datetime | None = None) -> list[Market]:
    """What the policies see of every (symbol, timeframe) of the universe."""
    now = now or datetime.now(UTC)
    found = []
    for tf in config.universe.timeframes:
        for symbol in config.universe.symbols:
            champion = registry.get_champion(symbol, tf)
            live = registry.live_results(champion.symbol, tf.value, champion.version) if champion else []
            found.append(
                Market(
                    symbol,
                    tf,
                    now,
                    champion=champion.version if champion else None,
                    champion_built_at=champion.created_at if champion else None,
                    live=tuple(live),
                )
            )
    return found


def _key(market: Market, policy: str) -> str:
    return COOLDOWN_KEY.format(symbol=market.symbol, timeframe=market.timeframe.value, policy=policy)


def report(
    registry: Registry, config: FarmConfig, client: redis.Redis, now: datetime | None = None
) -> list[MarketReport]:
    """Every market's decisions and cooldowns, changing nothing."""
    out = []
    for market in markets(registry, config, now):
        decisions = evaluate(market, config.params(market.timeframe))
        cooling = {d.policy: max(0, int(client.ttl(_key(market, d.policy)))) for d in decisions}
        out.append(MarketReport(market.symbol, market.timeframe.value, decisions, cooling))
    return out


def check(
    registry: Registry,
    config: FarmConfig,
    client: redis.Redis,
    submit: Submit,
    now: datetime | None = None,
) -> list[Fired]:
    """Fire every policy that says "retrain" and is not cooling down; returns what fired."""
    fired = []
    for market in markets(registry, config, now):
        params = config.params(market.timeframe)
        for decision in evaluate(market, params):
            if not decision.retrain:
                continue
            key = _key(market, decision.policy)
            cooldown = max(1, int(params.triggers.cooldown_td.total_seconds()))
            if not client.set(key, (now or datetime.now(UTC)).isoformat(), nx=True, ex=cooldown):
                continue  # fired within the cooldown (by this checker or another)
            try:
                submitted = submit(market.symbol, market.timeframe.value, f"trigger:{decision.policy}")
            except Exception:
                client.delete(key)  # not submitted: the next check tries again
                raise
            fired.append(
                Fired(
                    market.symbol, market.timeframe.value, decision.policy, submitted.run_id, submitted.merged
                )
            )
    return fired


__all__ = ["COOLDOWN_KEY", "Fired", "MarketReport", "Submit", "check", "markets", "report"]
