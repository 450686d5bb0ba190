"""Alerts: which farm events become alerts, which channel gets which kind, and what an alert says.

Kinds (``ALERT_KINDS``):

``promotion``   a market's champion changed (the gates promoted a candidate, or a rollback)
``rejection``   the gates refused a candidate (the failed checks are named)
``failure``     a run failed (the model and the error)
``trigger``     a trigger policy fired a retrain (the policy, its value and threshold)
``stale_bot``   a bot's heartbeat is older than ``[alerts] stale_bot_after``

The first four come from the farm's events stream (``farm:events``), which the stages write already; the
delivery (:mod:`trainfarm.workers.alerts`) reads it after a cursor, so no task ever waits on a webhook or a
mail server. The config here is the non-secret part (``[alerts]`` in farm.toml); the webhook's URL (it
often carries a token) and the SMTP password are settings (``FARM_ALERT_WEBHOOK_URL``,
``FARM_SMTP_PASSWORD``), never in the config file, `farm config` or a log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainfarm.shared.timeframes import parse_duration
from trainfarm_client.contract import FAILED, PROMOTED, REJECTED, ROLLBACK, TRIGGERED

AlertKind = Literal["promotion", "rejection", "failure", "trigger", "stale_bot"]
ALERT_KINDS: tuple[AlertKind, ...] = ("promotion", "rejection", "failure", "trigger", "stale_bot")
#: The events stream's events and the alert kind each becomes.
EVENT_KINDS: dict[str, AlertKind] = {
    PROMOTED: "promotion",
    ROLLBACK: "promotion",
    REJECTED: "rejection",
    FAILED: "failure",
    TRIGGERED: "trigger",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


class WebhookConfig(_Strict):
    """The JSON webhook (POST); on when ``FARM_ALERT_WEBHOOK_URL`` is set."""

    events: tuple[AlertKind, ...] = Field(ALERT_KINDS, description="alert kinds the webhook gets")
    timeout: str = Field("5s", description="one POST may take this long")

    _timeout = field_validator("timeout")(_duration)


class EmailConfig(_Strict):
    """E-mail over SMTP; on when ``to`` lists an address."""

    events: tuple[AlertKind, ...] = Field(
        ("promotion", "failure", "stale_bot"), description="alert kinds e-mail gets"
    )
    to: tuple[str, ...] = Field((), description="recipients; none = e-mail off")
    sender: str = Field("trainfarm@localhost", description="the From address")
    host: str = Field("127.0.0.1", description="SMTP server")
    port: int = Field(25, ge=1, le=65535, description="SMTP port")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before sending")
    user: str = Field("", description="SMTP login (its password: FARM_SMTP_PASSWORD); empty = no login")
    timeout: str = Field("10s", description="one SMTP conversation may take this long")

    _timeout = field_validator("timeout")(_duration)


class AlertsConfig(_Strict):
    """``[alerts]``: how often beat delivers, when a bot is stale, how deliveries are retried."""

    check: str = Field("10s", description="how often beat reads new events and delivers due alerts")
    stale_bot_after: str = Field("60s", description="a bot silent this long is alerted as stale, once")
    max_attempts: int = Field(6, ge=1, le=20, description="deliveries of one alert before it is dropped")
    retry_base: str = Field("5s", description="wait before the first retry; doubled at each further one")
    retry_max: str = Field("10m", description="longest wait between two attempts")
    webhook: WebhookConfig = WebhookConfig()
    email: EmailConfig = EmailConfig()

    _durations = field_validator("check", "stale_bot_after", "retry_base", "retry_max")(_duration)

    def td(self, name: Literal["check", "stale_bot_after", "retry_base", "retry_max"]) -> timedelta:
        """One of the durations as a timedelta."""
        return parse_duration(getattr(self, name))

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): base x 2^(attempt-1), capped."""
        base = self.td("retry_base").total_seconds()
        return float(min(self.td("retry_max").total_seconds(), base * 2 ** max(0, attempt - 1)))


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
    "EmailConfig",
    "WebhookConfig",
    "alert_from_event",
    "stale_bot_alert",
]
