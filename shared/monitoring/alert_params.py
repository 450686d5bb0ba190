"""``[alerts]``: how often beat delivers alerts, when a bot is stale, how a delivery is retried, and which
kinds each channel gets (the JSON webhook, e-mail, Apprise's services).

The alerts themselves: :mod:`trainfarm.shared.monitoring.alerts`; their delivery:
:mod:`trainfarm.workers.checks.alert_delivery`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from trainfarm.shared.config_table import ConfigTable
from trainfarm.shared.timeframes import Duration, PositiveDuration

#: The kinds of alert (:mod:`trainfarm.shared.monitoring.alerts` says what each is).
AlertKind = Literal["promotion", "rejection", "failure", "trigger", "stale_bot", "held", "challenger"]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "promotion",
    "rejection",
    "failure",
    "trigger",
    "stale_bot",
    "held",
    "challenger",
)


class WebhookConfig(ConfigTable):
    """The JSON webhook (POST); on when ``FARM_ALERT_WEBHOOK_URL`` is set."""

    events: tuple[AlertKind, ...] = Field(ALERT_KINDS, description="alert kinds the webhook gets")
    timeout: Duration = Field(timedelta(seconds=5), description="one POST may take this long")


class EmailConfig(ConfigTable):
    """E-mail over SMTP (sent through Apprise's e-mail plugin); on when ``to`` lists an address."""

    events: tuple[AlertKind, ...] = Field(
        ("promotion", "failure", "stale_bot"), description="alert kinds e-mail gets"
    )
    to: tuple[str, ...] = Field((), description="recipients; none = e-mail off")
    sender: str = Field("trainfarm@localhost", description="the From address")
    host: str = Field("127.0.0.1", description="SMTP server")
    port: int = Field(25, ge=1, le=65535, description="SMTP port")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before sending")
    user: str = Field(
        "", description="SMTP login, with FARM_SMTP_PASSWORD (login when both are set); empty = no login"
    )
    timeout: Duration = Field(timedelta(seconds=10), description="one SMTP conversation may take this long")


#: A URL's position in ``FARM_ALERT_URLS``, counted from 1.
UrlPosition = Annotated[int, Field(ge=1)]


class AppriseAlertsConfig(ConfigTable):
    """Chat and push services through Apprise (Telegram, Slack, Discord, Matrix, ntfy, ...): each URL of
    ``FARM_ALERT_URLS`` is a channel of its own, on when the setting lists it."""

    events: tuple[AlertKind, ...] = Field(
        ("promotion", "rejection", "failure", "stale_bot", "held"),
        description="alert kinds every Apprise URL gets (unless events_by_url names it)",
    )
    events_by_url: dict[UrlPosition, tuple[AlertKind, ...]] = Field(
        default_factory=dict,
        description="per URL, by its position in FARM_ALERT_URLS (from 1): the kinds it gets instead of "
        "events",
    )
    timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        description="connect and read timeout of one notification, for URLs that set no cto= or rto=",
    )

    def kinds(self, position: int) -> tuple[AlertKind, ...]:
        """The kinds the URL at ``position`` (from 1) gets."""
        return self.events_by_url.get(position, self.events)


class AlertsConfig(ConfigTable):
    """``[alerts]``: how often beat delivers, when a bot is stale, how deliveries are retried (the alerts
    themselves: :mod:`trainfarm.shared.monitoring.alerts`)."""

    check: Duration = Field(
        timedelta(seconds=10), description="how often beat reads new events and delivers due alerts"
    )
    stale_bot_after: Duration = Field(
        timedelta(minutes=1), description="a bot silent this long is alerted as stale, once"
    )
    max_attempts: int = Field(6, ge=1, le=20, description="deliveries of one alert before it is dropped")
    retry_base: Duration = Field(
        timedelta(seconds=5), description="wait before the first retry; doubled at each further one"
    )
    retry_max: Duration = Field(timedelta(minutes=10), description="longest wait between two attempts")
    webhook: WebhookConfig = WebhookConfig()
    email: EmailConfig = EmailConfig()
    apprise: AppriseAlertsConfig = AppriseAlertsConfig()

    def backoff_s(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): base x 2^(attempt-1), capped."""
        base = self.retry_base.total_seconds()
        return float(min(self.retry_max.total_seconds(), base * 2 ** max(0, attempt - 1)))


__all__ = [
    "ALERT_KINDS",
    "AlertKind",
    "AlertsConfig",
    "AppriseAlertsConfig",
    "EmailConfig",
    "UrlPosition",
    "WebhookConfig",
]
