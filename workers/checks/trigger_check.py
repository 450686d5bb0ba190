"""The periodic trigger check: every market's policies evaluated, each firing one at most once per cooldown.

:func:`report` is what `farm triggers` shows (read-only); :func:`check` is what beat's ``check-triggers``
entry runs: for each policy that says "retrain", it sets the market's cooldown key for that policy in
Redis (``SET NX EX``: atomic, so two checkers never both fire) and submits the retrain, which merges into
a run already under way. A submit that fails (the broker is down) clears the key again, so the next check
retries. Celery-free: the caller passes the submit function.

A market whose retrains are held back (:mod:`trainfarm.workers.holds`: stale data, data that cannot
train) fires nothing: its report says why, and :func:`check` records one ``held`` event per hold.

Besides the registry, :func:`markets` reads the farm's bar store for the drift policies' live window
(:mod:`trainfarm.workers.checks.live_window`) and the bots' reported features for the skew flag
(:mod:`trainfarm.workers.checks.skew`); a market whose bars or pack cannot be read reports why in those
policies' detail and never stops the check of the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from trainfarm.shared.champions.announce import record_event
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.store import BarStore, open_store
from trainfarm.shared.errors import TransientError
from trainfarm.shared.monitoring.policies import Decision, Market, evaluate
from trainfarm.shared.registry import Registry
from trainfarm.workers.checks.live_window import PackLoader, drift_inputs, load_champion
from trainfarm.workers.checks.skew import skew_report
from trainfarm.workers.holds import Hold, hold_of, track
from trainfarm.workers.runs import Submitted
from trainfarm_client.contract import TRIGGERED

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
    held: Hold | None = None  #: why its retrains are held back (nothing fires while it holds)

    def to_json(self) -> dict[str, object]:
        """What `farm triggers --json` prints per market."""
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "held": self.held.line() if self.held else None,
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


def markets(
    registry: Registry,
    config: FarmConfig,
    now: datetime | None = None,
    *,
    store: BarStore | None = None,
    load: PackLoader = load_champion,
) -> list[Market]:
    """What the policies see of every (symbol, timeframe) of the universe.

    ``store`` is the farm's bar store (default: the settings'); ``load`` loads a champion's pack (default:
    verified and cached, :func:`trainfarm.workers.checks.live_window.load_champion`).
    """
    now = now or datetime.now(UTC)
    store = store or open_store()
    found = []
    for tf in config.universe.timeframes:
        params = config.params(tf)
        for symbol in config.universe.symbols:
            champion = registry.champions.get(symbol, tf)
            if champion is None:
                found.append(Market(symbol, tf, now))
                continue
            live = registry.outcomes.live_results(champion.symbol, tf.value, champion.version)
            drift = drift_inputs(champion, tf, params, store, load)
            skew, skew_problem = skew_report(registry, store, champion, tf, params, load)
            unavailable = dict(drift.unavailable)
            if skew_problem is not None:
                unavailable["train_serve_skew"] = skew_problem
            found.append(
                Market(
                    symbol,
                    tf,
                    now,
                    champion=champion.version,
                    champion_built_at=champion.created_at,
                    live=tuple(live),
                    live_bars=drift.live_bars,
                    feature_psi=drift.feature_psi,
                    labelled_bars=drift.labelled_bars,
                    calibration_gap=drift.calibration_gap,
                    skew=skew,
                    unavailable=unavailable,
                )
            )
    return found


def _key(market: Market, policy: str) -> str:
    return COOLDOWN_KEY.format(symbol=market.symbol, timeframe=market.timeframe.value, policy=policy)


def report(
    registry: Registry,
    config: FarmConfig,
    client: redis.Redis,
    now: datetime | None = None,
    *,
    store: BarStore | None = None,
    load: PackLoader = load_champion,
) -> list[MarketReport]:
    """Every market's decisions, cooldowns and hold, changing nothing."""
    now = now or datetime.now(UTC)
    store = store or open_store()
    out = []
    for market in markets(registry, config, now, store=store, load=load):
        decisions = evaluate(market, config.params(market.timeframe))
        cooling = {d.policy: max(0, int(client.ttl(_key(market, d.policy)))) for d in decisions}
        held = hold_of(registry, store, config, market.symbol, market.timeframe, now)
        out.append(MarketReport(market.symbol, market.timeframe.value, decisions, cooling, held))
    return out


def check(
    registry: Registry,
    config: FarmConfig,
    client: redis.Redis,
    submit: Submit,
    now: datetime | None = None,
    *,
    store: BarStore | None = None,
    load: PackLoader = load_champion,
) -> list[Fired]:
    """Fire every policy that says "retrain" and is not cooling down, on markets that are not held back;
    returns what fired."""
    now = now or datetime.now(UTC)
    store = store or open_store()
    fired = []
    held: dict[tuple[str, str], Hold | None] = {}
    for market in markets(registry, config, now, store=store, load=load):
        params = config.params(market.timeframe)
        hold = hold_of(registry, store, config, market.symbol, market.timeframe, now)
        held[(market.symbol, market.timeframe.value)] = hold
        if hold is not None:
            continue
        for decision in evaluate(market, params):
            if not decision.retrain:
                continue
            key = _key(market, decision.policy)
            cooldown = max(1, int(params.triggers.cooldown.total_seconds()))
            if not client.set(key, now.isoformat(), nx=True, ex=cooldown):
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
            event = {
                "symbol": market.symbol,
                "timeframe": market.timeframe.value,
                "policy": decision.policy,
                "value": decision.value,
                "threshold": decision.threshold,
                "detail": decision.detail,
                "run_id": submitted.run_id,
                "merged": submitted.merged,
            }
            # History (and the alerts): the run is submitted whether or not this append gets through.
            with contextlib.suppress(TransientError):
                record_event(client, TRIGGERED, event)
    with contextlib.suppress(TransientError):
        track(client, held)  # one held event (and alert) per hold; history only, like the triggered ones
    return fired


__all__ = ["COOLDOWN_KEY", "Fired", "MarketReport", "Submit", "check", "markets", "report"]
