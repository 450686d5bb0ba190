"""Prometheus metrics of the farm, computed from the registry and Redis at each scrape.

The registry is the farm's memory, so the metrics are read from it (and from Redis for queues and bots)
when Prometheus scrapes, by a custom collector: every dashboard process exports the same numbers, none
is lost when one restarts, and no task has to report anything. The families (all prefixed
``trainfarm_``; the histograms cover the newest :data:`RECENT_RUNS` runs): docs/operations.md#watching-it.
Beside the farm's state, the config's limits that alert rules compare it with are exported too (cadences,
``stale_bot_after``), so that infra/prometheus/rules.yml follows farm.toml instead of copying its numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.registry import Registry, RunKind, RunStatus
from trainfarm.shared.settings import get_settings
from trainfarm.web.history import gate_verdict
from trainfarm.workers.checks.live_window import load_champion
from trainfarm.workers.runs import queue_depths
from trainfarm.workers.status import BotInfo, MarketInfo, bot_infos, champions_of, market_infos

#: Finished runs the duration histograms are computed from.
RECENT_RUNS = 500
#: Histogram buckets (seconds): from a meta-only refit to an hours-long 5m run.
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


def _histogram(
    name: str, doc: str, labels: Sequence[str], samples: dict[tuple[str, ...], list[float]]
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for key, values in sorted(samples.items()):
        counts = [sum(v <= b for v in values) for b in BUCKETS]
        buckets = [(str(b), float(c)) for b, c in zip(BUCKETS, counts, strict=True)]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric(list(key), buckets, sum_value=float(sum(values)))
    return family


class FarmCollector(Collector):
    """Collects every family above from the settings' registry and Redis at each scrape."""

    def collect(self) -> Iterable[Metric]:
        settings = get_settings()
        config = settings.load_config()
        registry = Registry.open(settings.database)
        now = datetime.now(UTC)
        yield from self._runs(registry, config, now)
        yield from self._limits(config)
        markets = market_infos(registry, config, now, None, load_champion)
        age = GaugeMetricFamily(
            "trainfarm_champion_age_seconds", "age of each market's champion", labels=["symbol", "timeframe"]
        )
        limit = GaugeMetricFamily(
            "trainfarm_freshness_limit_seconds", "freshness limit per market", labels=["symbol", "timeframe"]
        )
        for m in markets:
            limit.add_metric([m.symbol, m.timeframe], m.freshness_limit_h * 3600.0)
            if m.age_h is not None:
                age.add_metric([m.symbol, m.timeframe], m.age_h * 3600.0)
        yield age
        yield limit
        yield from self._data(markets, now)
        yield self._gate_failures(registry, [(m.symbol, m.timeframe) for m in markets])
        with redis_connection(settings) as client:
            depth = GaugeMetricFamily("trainfarm_queue_depth", "messages waiting per queue", labels=["queue"])
            for queue, n in queue_depths(client).items():
                depth.add_metric([queue], float(n))
            yield depth
            yield from self._bots(bot_infos(client, champions_of(registry, markets), now))

    @staticmethod
    def _data(markets: Sequence[MarketInfo], now: datetime) -> Iterator[Metric]:
        """Each symbol's newest bar (close time and age) and each market's holds."""
        newest = GaugeMetricFamily(
            "trainfarm_data_newest_bar_close_timestamp_seconds",
            "when each symbol's newest stored bar closed (Unix time)",
            labels=["symbol"],
        )
        age = GaugeMetricFamily(
            "trainfarm_data_age_seconds", "age of each symbol's newest stored bar", labels=["symbol"]
        )
        stale = GaugeMetricFamily(
            "trainfarm_data_stale", "1 when a synced symbol's bars are stale (stale_data)", labels=["symbol"]
        )
        held = GaugeMetricFamily(
            "trainfarm_market_held",
            "1 when a market's retrains are held back, by flag (stale_data, cannot_train)",
            labels=["symbol", "timeframe", "flag"],
        )
        seen = set()
        for m in markets:
            if m.symbol not in seen and m.data_newest is not None and m.data_age_s is not None:
                newest.add_metric([m.symbol], m.data_newest.timestamp())
                age.add_metric([m.symbol], m.data_age_s)
            if m.symbol not in seen:
                stale.add_metric([m.symbol], 1.0 if m.data_stale else 0.0)
            seen.add(m.symbol)
            for flag in ("stale_data", "cannot_train"):
                on = m.held is not None and m.held.startswith(f"{flag}:")
                held.add_metric([m.symbol, m.timeframe, flag], 1.0 if on else 0.0)
        yield from (newest, age, stale, held)

    @staticmethod
    def _limits(config: FarmConfig) -> Iterator[Metric]:
        """The config's cadences and bot silence limit: the thresholds of the alert rules."""
        cadence = GaugeMetricFamily(
            "trainfarm_cadence_seconds",
            "how often beat starts a retrain of each timeframe, by kind (full; meta when not off)",
            labels=["timeframe", "kind"],
        )
        for tf in config.universe.timeframes:
            params = config.params(tf)
            cadence.add_metric([tf.value, RunKind.FULL.value], params.cadence.total_seconds())
            if params.meta_cadence is not None:
                cadence.add_metric([tf.value, RunKind.META.value], params.meta_cadence.total_seconds())
        yield cadence
        yield GaugeMetricFamily(
            "trainfarm_stale_bot_after_seconds",
            "a bot silent this long is stale ([alerts] stale_bot_after)",
            value=config.alerts.stale_bot_after.total_seconds(),
        )

    @staticmethod
    def _runs(registry: Registry, config: FarmConfig, now: datetime) -> Iterator[Metric]:
        """Run counts, the runs under way, each market's newest run, and the duration histograms."""
        runs = GaugeMetricFamily(
            "trainfarm_runs", "runs in the registry", labels=["timeframe", "kind", "status"]
        )
        # Every status of every universe timeframe has a series from the start (0 until a run gets there):
        # a series that appears at 1 has no earlier sample, and delta() over it would miss that first run.
        every = [
            (tf.value, status.value, kind.value)
            for tf in config.universe.timeframes
            for status in RunStatus
            for kind in RunKind
        ]
        counts = dict.fromkeys(every, 0) | registry.runs.counts()
        for (tf, status, kind), n in sorted(counts.items()):
            runs.add_metric([tf, kind, status], float(n))
        yield runs
        per_run = ["symbol", "timeframe", "kind"]
        active = GaugeMetricFamily(
            "trainfarm_active_run_age_seconds", "age of each run under way (queued to meta)", labels=per_run
        )
        for run in registry.runs.all_active():
            age = max(0.0, (now - run.created_at).total_seconds())
            active.add_metric([run.symbol, run.timeframe, run.kind.value], age)
        yield active
        newest = GaugeMetricFamily(
            "trainfarm_last_run_timestamp_seconds",
            "when each universe market's newest run of each kind was created (Unix time)",
            labels=per_run,
        )
        universe = {
            (symbol, tf.value) for symbol in config.universe.symbols for tf in config.universe.timeframes
        }
        for (symbol, tf, kind), at in sorted(registry.runs.newest_created().items()):
            if (symbol, tf) in universe:
                newest.add_metric([symbol, tf, kind], at.timestamp())
        yield newest
        durations: dict[tuple[str, ...], list[float]] = {}
        waits: dict[tuple[str, ...], list[float]] = {}
        models: dict[tuple[str, ...], list[float]] = {}
        for run in registry.runs.newest(limit=RECENT_RUNS):
            if run.seconds is not None:
                durations.setdefault((run.timeframe, run.kind.value), []).append(run.seconds)
            if run.started_at is not None:
                wait = (run.started_at - run.created_at).total_seconds()
                waits.setdefault((run.timeframe, run.kind.value), []).append(max(0.0, wait))
        for model, seconds in registry.runs.recent_base_seconds(8 * RECENT_RUNS):
            models.setdefault((model,), []).append(seconds)
        labels = ("timeframe", "kind")
        yield _histogram("trainfarm_run_duration_seconds", "finished runs' wall time", labels, durations)
        yield _histogram(
            "trainfarm_queue_wait_seconds", "time runs waited for their first stage", labels, waits
        )
        yield _histogram("trainfarm_base_model_seconds", "base models' training time", ("model",), models)

    @staticmethod
    def _gate_failures(registry: Registry, markets: Sequence[tuple[str, str]]) -> Metric:
        failures: Counter[tuple[str, str]] = Counter()
        for symbol, tf in markets:
            for version in registry.versions.of_market(symbol, tf):
                # Read as the history page reads a report (one rule: a check not marked passed failed).
                for name in gate_verdict(version.gate_report)[1]:
                    failures[(tf, name)] += 1
        family = GaugeMetricFamily(
            "trainfarm_gate_failures", "versions failing each gate check", labels=["timeframe", "check"]
        )
        for (tf, name), n in sorted(failures.items()):
            family.add_metric([tf, name], float(n))
        return family

    @staticmethod
    def _bots(bots: Sequence[BotInfo]) -> Iterator[Metric]:
        fleet: Counter[tuple[str, str, str]] = Counter()
        per_bot = ["bot_id", "symbol", "timeframe"]
        lag = GaugeMetricFamily(
            "trainfarm_bot_lag_seconds", "how long a bot has not served its champion", labels=per_bot
        )
        seen = GaugeMetricFamily(
            "trainfarm_bot_heartbeat_age_seconds", "seconds since each bot's heartbeat", labels=per_bot
        )
        for bot in bots:
            fleet[(bot.symbol, bot.timeframe, bot.version or "")] += 1
            if bot.lag_s is not None:
                lag.add_metric([bot.bot_id, bot.symbol, bot.timeframe], bot.lag_s)
            if bot.seen_s_ago is not None:
                seen.add_metric([bot.bot_id, bot.symbol, bot.timeframe], bot.seen_s_ago)
        family = GaugeMetricFamily(
            "trainfarm_bots", "bots by the version they serve", labels=["symbol", "timeframe", "version"]
        )
        for key, n in sorted(fleet.items()):
            family.add_metric(list(key), float(n))
        yield family
        yield lag
        yield seen


__all__ = ["BUCKETS", "RECENT_RUNS", "FarmCollector"]
