"""Delivering alerts: events stream -> outbox -> channels, retried with backoff; Celery-free.

The channels (the farm's JSON webhook, e-mail, and the chat and push services of ``FARM_ALERT_URLS``
through Apprise) and how logs name them: :mod:`trainfarm.workers.checks.alert_channels`.

:func:`run_alerts` is what beat's ``deliver-alerts`` entry runs (the task ``farm.deliver_alerts``), one
pass at a time: redis-py's :class:`redis.lock.Lock` (a unique token per pass, released only by its holder,
atomically), so two passes never deliver the same alert twice at once. What becomes an alert, the channels
and the retry settings: docs/operations.md#watching-it. The mechanics:

1. **Collect.** Events after the cursor ``farm:alerts:cursor`` become alerts
   (:func:`trainfarm.shared.monitoring.alerts.alert_from_event`), as do silent bots. Each alert goes into
   the outbox once per channel that takes its kind (a sorted set ``farm:alerts:outbox`` scored by the next
   attempt's time, the alert and its attempt count in the hash ``farm:alerts:pending``), once: a ``SET NX``
   marker per (channel, alert) kept for a week makes re-read events harmless. The cursor moves only after.
2. **Deliver** what is due. A failure schedules the next attempt after ``retry_base x 2^(n-1)`` (capped at
   ``retry_max``); ``farm:alerts:dead`` keeps the newest 1,000 dropped alerts. Every attempt is bounded by
   the channel's timeout, and a pass delivers at most ``MAX_PER_PASS`` and starts no delivery after half
   its lock's time (Apprise spaces the sends to one service: 5.5 s apart for e-mail and ntfy): a
   dead mail server delays alerts, never a task, and the lock never expires under a pass.

"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import LockError

from trainfarm.shared.errors import AlertDeliveryError
from trainfarm.shared.monitoring.alert_params import AlertsConfig
from trainfarm.shared.monitoring.alerts import Alert, alert_from_event, stale_bot_alert
from trainfarm.workers.checks.alert_channels import REASON_CHARS, Channel
from trainfarm_client.contract import BOT_KEY_PATTERN, EVENTS_STREAM

log = logging.getLogger(__name__)

CURSOR_KEY = "farm:alerts:cursor"
OUTBOX_KEY = "farm:alerts:outbox"
PENDING_KEY = "farm:alerts:pending"
DEAD_KEY = "farm:alerts:dead"
LOCK_KEY = "farm:alerts:lock"
STALE_KEY = "farm:alerts:stale:{bot}"
#: The last heartbeat each pass saw of each bot: a dead bot's own hash expires before it looks silent.
BOTS_KEY = "farm:alerts:bots"
SEEN_KEY = "farm:alerts:seen:{member}"
SEEN_TTL_S = 7 * 86400
DEAD_KEEP = 1000
#: Events read per pass, and deliveries attempted per pass (the next pass continues).
READ_PER_PASS = 1000
MAX_PER_PASS = 200


@dataclass(frozen=True)
class AlertsReport:
    """What one pass did."""

    queued: int = 0
    delivered: int = 0
    retried: int = 0
    dropped: int = 0
    busy: bool = False  #: another pass held the lock: this one did nothing


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _queue(client: redis.Redis, alert: Alert, targets: Sequence[Channel], now: float) -> int:
    queued = 0
    for channel in targets:
        if alert.kind not in channel.kinds:
            continue
        member = f"{channel.name}|{alert.id}"
        # Once per (channel, alert) for a week, delivered or not: re-read events are no new alerts.
        if not client.set(SEEN_KEY.format(member=member), 1, nx=True, ex=SEEN_TTL_S):
            continue
        record = json.dumps({"alert": alert.to_json(), "attempts": 0}, sort_keys=True, default=str)
        client.hset(PENDING_KEY, member, record)
        client.zadd(OUTBOX_KEY, {member: now}, nx=True)
        queued += 1
    return queued


def collect(client: redis.Redis, targets: Sequence[Channel], config: AlertsConfig, now: datetime) -> int:
    """Queue the alerts of new events and of newly stale bots; returns how many deliveries were queued."""
    cursor = _text(client.get(CURSOR_KEY) or "0-0")
    answer: Any = client.xread({EVENTS_STREAM: cursor}, count=READ_PER_PASS)
    entries = (next(iter(answer.values())) if isinstance(answer, dict) else answer[0][1]) if answer else []
    queued = 0
    stamp = now.timestamp()
    for entry_id, fields in entries:
        decoded = {_text(k): _text(v) for k, v in (fields or {}).items()}
        try:
            data = json.loads(decoded.get("data", "{}"))
        except ValueError:
            data = {}
        alert = alert_from_event(
            _text(entry_id), decoded.get("event", ""), data if isinstance(data, dict) else {}
        )
        if alert is not None:
            queued += _queue(client, alert, targets, stamp)
    if entries:
        client.set(CURSOR_KEY, _text(entries[-1][0]))
    return queued + _collect_stale_bots(client, targets, config, now)


def _collect_stale_bots(
    client: redis.Redis, targets: Sequence[Channel], config: AlertsConfig, now: datetime
) -> int:
    """Alert each bot silent for ``stale_bot_after``, once per silence.

    A bot's heartbeat hash expires soon after its last beat (30 s by the client's default, under the
    default ``stale_bot_after``): a dead bot's hash is gone before it could look silent. So each pass
    remembers the heartbeats it sees (``farm:alerts:bots``) and judges a bot whose hash is gone by the last
    one remembered; a bot alerted with its hash gone is forgotten (its marker keeps the alert once).
    """
    limit = config.stale_bot_after.total_seconds()
    live: dict[str, dict[str, str]] = {}
    for key in client.scan_iter(match=BOT_KEY_PATTERN, count=500):
        fields = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        if fields:
            live[_text(key).split(":", 2)[-1]] = fields
    if live:
        remembered = {
            bot: json.dumps({k: f.get(k, "") for k in ("symbol", "timeframe", "seen_at")}, sort_keys=True)
            for bot, f in live.items()
        }
        client.hset(BOTS_KEY, mapping=remembered)  # type: ignore[arg-type]
    known: dict[str, dict[str, str]] = {}
    for raw_bot, raw in client.hgetall(BOTS_KEY).items():
        try:
            known[_text(raw_bot)] = {str(k): str(v) for k, v in json.loads(_text(raw)).items()}
        except (ValueError, AttributeError):
            client.hdel(BOTS_KEY, raw_bot)  # not one this module wrote: nothing to judge it by
    queued = 0
    for bot, fields in sorted((known | live).items()):
        seen_at = fields.get("seen_at") or None
        try:
            silent = (now - datetime.fromisoformat(seen_at)).total_seconds() if seen_at else None
        except ValueError:
            silent = None
        marker = STALE_KEY.format(bot=bot)
        if silent is not None and silent <= limit:
            client.delete(marker)  # heard from again: its next silence alerts again
            continue
        if client.set(marker, seen_at or "never", nx=True, ex=SEEN_TTL_S):
            alert = stale_bot_alert(
                bot, fields.get("symbol", "?"), fields.get("timeframe", "?"), seen_at, silent
            )
            queued += _queue(client, alert, targets, now.timestamp())
        if bot not in live:
            client.hdel(BOTS_KEY, bot)  # gone and alerted: a bot that comes back is remembered anew
    return queued


def deliver_due(
    client: redis.Redis,
    targets: Sequence[Channel],
    config: AlertsConfig,
    now: datetime,
    *,
    budget_s: float | None = None,
) -> AlertsReport:
    """Attempt every queued delivery that is due (at most ``MAX_PER_PASS``); with ``budget_s``, start no
    delivery after that many seconds but the first (what is left stays due for the next pass)."""
    by_name: Mapping[str, Channel] = {c.name: c for c in targets}
    delivered = retried = dropped = 0
    started = time.monotonic()
    due = client.zrangebyscore(OUTBOX_KEY, "-inf", now.timestamp(), start=0, num=MAX_PER_PASS)
    for raw_member in due:
        attempted = delivered + retried + dropped
        if budget_s is not None and attempted and time.monotonic() - started > budget_s:
            break
        member = _text(raw_member)
        name = member.split("|", 1)[0]
        record_raw = client.hget(PENDING_KEY, member)
        channel = by_name.get(name)
        if record_raw is None or channel is None:  # unconfigured since it was queued: nothing to send it with
            client.zrem(OUTBOX_KEY, member)
            client.hdel(PENDING_KEY, member)
            continue
        record = json.loads(_text(record_raw))
        alert = Alert.from_json(record["alert"])
        attempts = int(record["attempts"]) + 1
        try:
            channel.send(alert)
        except (AlertDeliveryError, OSError, urllib.error.URLError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {str(exc)[:REASON_CHARS]}"
            if attempts >= config.max_attempts:
                log.error(
                    "alert %s to %s dropped after %d attempts: %s", alert.id, channel.label, attempts, problem
                )
                client.zrem(OUTBOX_KEY, member)
                client.hdel(PENDING_KEY, member)
                dead = {"channel": name, "alert": alert.to_json(), "attempts": attempts, "error": problem}
                client.lpush(DEAD_KEY, json.dumps(dead, sort_keys=True, default=str))
                client.ltrim(DEAD_KEY, 0, DEAD_KEEP - 1)
                dropped += 1
            else:
                wait = config.backoff_s(attempts)
                log.warning(
                    "alert %s to %s failed (attempt %d), next in %.0f s: %s",
                    alert.id,
                    channel.label,
                    attempts,
                    wait,
                    problem,
                )
                again = {"alert": alert.to_json(), "attempts": attempts}
                client.hset(PENDING_KEY, member, json.dumps(again, sort_keys=True, default=str))
                client.zadd(OUTBOX_KEY, {member: now.timestamp() + wait})
                retried += 1
            continue
        client.zrem(OUTBOX_KEY, member)
        client.hdel(PENDING_KEY, member)
        delivered += 1
    return AlertsReport(delivered=delivered, retried=retried, dropped=dropped)


def run_alerts(
    client: redis.Redis,
    config: AlertsConfig,
    targets: Sequence[Channel],
    now: datetime | None = None,
    *,
    lock_s: int = 300,
    budget_s: float | None = None,
) -> AlertsReport:
    """One pass: collect, then deliver what is due; does nothing while another pass holds the lock.

    The lock expires after ``lock_s`` (a pass that died never blocks the next for longer); the pass starts
    no delivery after ``budget_s`` (default: half of ``lock_s``), so it ends before its lock does."""
    now = now or datetime.now(UTC)
    lock = client.lock(LOCK_KEY, timeout=lock_s, blocking=False)
    if not lock.acquire():
        return AlertsReport(busy=True)
    try:
        queued = collect(client, targets, config, now)
        budget = lock_s / 2 if budget_s is None else budget_s
        report = deliver_due(client, targets, config, now, budget_s=budget)
        return AlertsReport(queued, report.delivered, report.retried, report.dropped)
    finally:
        try:
            lock.release()  # atomic: deletes the key only while it still holds this pass's token
        except LockError as exc:
            # It expired under the pass (another may hold it now, and keeps it). The pass's writes are safe
            # to repeat; an alert may have been sent twice.
            log.warning("alert pass outlived its %d s lock: %s", lock_s, exc)


__all__ = [
    "BOTS_KEY",
    "CURSOR_KEY",
    "DEAD_KEY",
    "LOCK_KEY",
    "OUTBOX_KEY",
    "PENDING_KEY",
    "AlertsReport",
    "collect",
    "deliver_due",
    "run_alerts",
]
