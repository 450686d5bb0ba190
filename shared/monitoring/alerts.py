"""Alerts: which farm events become alerts, which channel gets which kind, and what an alert says.

The kinds are :data:`ALERT_KINDS`; every kind but ``stale_bot`` comes from an event of the farm's events
stream (``farm:events``), which the stages write already, and the delivery
(:mod:`trainfarm.workers.checks.alert_delivery`) reads it after a cursor, so no task ever waits on a
webhook, a chat service or a mail server. The config (``[alerts]``,
:class:`trainfarm.shared.monitoring.alert_params.AlertsConfig`) is the non-secret part; the webhook's URL,
the Apprise URLs (``FARM_ALERT_URLS``) and the SMTP password are settings, never in the config file,
`farm config` or a log. Kinds, channels and retries: docs/operations.md#watching-it; the settings:
docs/configuration.md#settings-farm_.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from trainfarm.shared.monitoring.alert_params import (
    ALERT_KINDS,
    AlertKind,
    AlertsConfig,
    AppriseAlertsConfig,
    EmailConfig,
    WebhookConfig,
)
from trainfarm_client.contract import CHALLENGER, FAILED, HELD, PROMOTED, REJECTED, ROLLBACK, TRIGGERED

#: The events stream's events and the alert kind each becomes.
EVENT_KINDS: dict[str, AlertKind] = {
    PROMOTED: "promotion",
    ROLLBACK: "promotion",
    REJECTED: "rejection",
    FAILED: "failure",
    TRIGGERED: "trigger",
    HELD: "held",
    CHALLENGER: "challenger",
}


@dataclass(frozen=True)
class Alert:
    """One alert: ``id`` is unique per event (its stream id, or the stale bot and its last heartbeat)."""

    id: str
    kind: AlertKind
    title: str
    data: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """What the webhook receives (and what the outbox stores)."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Alert:
        kind = str(raw["kind"])
        if kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {kind!r}")
        data = raw.get("data")
        return cls(str(raw["id"]), kind, str(raw["title"]), dict(data) if isinstance(data, Mapping) else {})

    def body(self) -> str:
        """The e-mail body: the title, then the data as indented JSON."""
        return f"{self.title}\n\n{json.dumps(self.data, indent=2, sort_keys=True, default=str)}\n"


def _market(data: Mapping[str, object]) -> str:
    return f"{data.get('symbol', '?')} {data.get('timeframe', '?')}"


def alert_from_event(entry_id: str, event: str, data: Mapping[str, object]) -> Alert | None:
    """The alert an events-stream entry becomes (None for events that alert nobody)."""
    kind = EVENT_KINDS.get(event)
    if kind is None:
        return None
    market = _market(data)
    if event == PROMOTED:
        title = f"{market}: {data.get('version')} promoted (was {data.get('previous_version') or 'none'})"
    elif event == ROLLBACK:
        title = f"{market}: rolled back to {data.get('version')} (from {data.get('previous_version')})"
    elif event == REJECTED:
        failed = data.get("failed")
        names = ", ".join(str(f) for f in failed) if isinstance(failed, list) else "?"
        title = f"{market}: candidate {data.get('version')} rejected by the gates ({names})"
        data = {k: v for k, v in data.items() if k != "gate_report"}  # the checks are named above
    elif event == FAILED:
        model = f" in {data.get('model')}" if data.get("model") else ""
        title = f"{market}: run {str(data.get('run_id'))[:8]} failed{model}: {str(data.get('error'))[:300]}"
    elif event == CHALLENGER:
        if data.get("active"):
            title = f"{market}: challenger {data.get('version')} scored live beside {data.get('champion')}"
        else:
            title = f"{market}: challenger {data.get('version')} {data.get('outcome')}: {data.get('reason')}"
    elif event == HELD:
        title = f"{market}: retrains held back ({data.get('flag')}): {str(data.get('reason'))[:300]}"
    else:
        run = str(data.get("run_id"))[:8]
        title = f"{market}: trigger {data.get('policy')} fired run {run}: {data.get('detail')}"
    return Alert(f"event:{entry_id}", kind, title, dict(data))


def stale_bot_alert(
    bot_id: str, symbol: str, timeframe: str, seen_at: str | None, silent_s: float | None
) -> Alert:
    """The alert for a bot whose heartbeat stopped (one per silence: the id holds its last heartbeat)."""
    silent = f"{silent_s:.0f} s" if silent_s is not None else "ever"
    title = f"bot {bot_id} ({symbol} {timeframe}) is stale: no heartbeat for {silent}"
    data: dict[str, object] = {"bot_id": bot_id, "symbol": symbol, "timeframe": timeframe, "seen_at": seen_at}
    return Alert(f"stale:{bot_id}:{seen_at}", "stale_bot", title, data)


__all__ = [
    "ALERT_KINDS",
    "EVENT_KINDS",
    "Alert",
    "AlertKind",
    "AlertsConfig",
    "AppriseAlertsConfig",
    "EmailConfig",
    "WebhookConfig",
    "alert_from_event",
    "stale_bot_alert",
]
