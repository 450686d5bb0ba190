"""Alert delivery against a local HTTP server and a local SMTP server (aiosmtpd), on a real Redis.

Time is passed in (``now``), so the backoff is checked without waiting for it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.services import free_port
from trainfarm.shared.champions.announce import record_event
from trainfarm.shared.config import AlertsConfig, EmailConfig, WebhookConfig
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.settings import FarmSettings
from trainfarm.workers.checks.alert_delivery import (
    DEAD_KEY,
    LOCK_KEY,
    OUTBOX_KEY,
    Channel,
    channels,
    run_alerts,
    webhook_label,
)
from trainfarm_client.contract import FAILED, HELD, PROMOTED, REJECTED, TRIGGERED, bot_key

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cr3t-T0KEN"


@dataclass
class Hook:
    """A local webhook receiver that fails its first ``fail_first`` requests with HTTP 500."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    fail_first: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{TOKEN}?key={TOKEN}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.paths.append(self.path)
            if state.fail_first > 0:
                state.fail_first -= 1
                self.send_response(500)
                self.end_headers()
                return
            state.received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _settings(settings: FarmSettings, **overrides: object) -> FarmSettings:
    return settings.model_copy(update=overrides)


def _webhook(settings: FarmSettings, hook: Hook, config: AlertsConfig) -> list[Channel]:
    from pydantic import SecretStr

    return channels(config, _settings(settings, alert_webhook_url=SecretStr(hook.url)))


def _events(rds: redis.Redis) -> None:
    market = {"symbol": "BTC_USDT", "timeframe": "1h"}
    record_event(rds, PROMOTED, market | {"version": "v2", "previous_version": "v1"})
    record_event(
        rds, REJECTED, market | {"version": "v3", "failed": ["sharpe"], "gate_report": {"checks": []}}
    )
    record_event(rds, FAILED, market | {"run_id": "abcdef123456", "model": "xgb_deep", "error": "boom"})
    record_event(rds, TRIGGERED, market | {"policy": "stale", "run_id": "1234abcd", "detail": "old"})
    record_event(rds, HELD, market | {"flag": "stale_data", "reason": "the newest bar closed 2h ago"})
    record_event(rds, "something_else", market)


def test_every_event_kind_reaches_the_webhook_once(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    config = AlertsConfig()
    targets = _webhook(settings, hook, config)
    _events(rds)
    report = run_alerts(rds, config, targets, T0)
    assert (report.queued, report.delivered, report.retried) == (5, 5, 0)
    assert [a["kind"] for a in hook.received] == ["promotion", "rejection", "failure", "trigger", "held"]
    assert "retrains held back (stale_data): the newest bar closed 2h ago" in hook.received[4]["title"]
    assert "v2 promoted (was v1)" in hook.received[0]["title"]
    assert "sharpe" in hook.received[1]["title"] and "gate_report" not in hook.received[1]["data"]
    assert "xgb_deep" in hook.received[2]["title"] and "stale" in hook.received[3]["title"]
    # Re-reading the stream (a crash before the cursor moved) sends nothing twice.
    rds.delete("farm:alerts:cursor")
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=1)).queued == 0
    assert len(hook.received) == 5 and rds.zcard(OUTBOX_KEY) == 0


def test_a_failing_webhook_is_retried_with_backoff_then_delivered(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    config = AlertsConfig(webhook=WebhookConfig(events=("failure",)))
    targets = _webhook(settings, hook, config)
    record_event(rds, FAILED, {"symbol": "ETH_USDT", "timeframe": "5m", "run_id": "r1", "error": "x"})
    hook.fail_first = 2
    assert run_alerts(rds, config, targets, T0).retried == 1  # next attempt in 5 s
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=4)).delivered == 0  # not due yet
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=5)).retried == 1  # next in 10 s
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=14)).delivered == 0
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=15)).delivered == 1
    assert [a["kind"] for a in hook.received] == ["failure"] and len(hook.paths) == 3


def test_an_alert_failing_every_time_is_dropped_and_no_log_shows_the_token(
    rds: redis.Redis, settings: FarmSettings, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    config = AlertsConfig(max_attempts=3, retry_base="1s")
    targets = _webhook(settings, hook, config)
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v9"})
    hook.fail_first = 100
    with caplog.at_level(logging.WARNING, logger="trainfarm.workers.checks.alert_delivery"):
        for second in range(0, 60, 1):  # bounded: three attempts fit well inside a minute of backoff
            run_alerts(rds, config, targets, T0 + timedelta(seconds=second))
    assert len(hook.paths) == 3 and rds.zcard(OUTBOX_KEY) == 0
    dead = [json.loads(d) for d in rds.lrange(DEAD_KEY, 0, -1)]
    assert len(dead) == 1 and dead[0]["attempts"] == 3 and dead[0]["alert"]["data"]["version"] == "v9"
    assert "dropped after 3 attempts" in caplog.text
    assert TOKEN not in caplog.text and "webhook http://127.0.0.1" in caplog.text
    assert webhook_label(hook.url) == "webhook http://127.0.0.1"


def test_a_stale_bot_is_alerted_once_per_silence(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    config = AlertsConfig(stale_bot_after="60s")
    targets = _webhook(settings, hook, config)

    def beat(at: datetime) -> None:
        rds.hset(bot_key("b1"), mapping={"symbol": "BTC_USDT", "timeframe": "1h", "seen_at": at.isoformat()})

    beat(T0)
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=30)).queued == 0  # fresh
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=90)).delivered == 1
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=200)).queued == 0  # the same silence
    beat(T0 + timedelta(seconds=300))
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=310)).queued == 0  # heard from again
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=400)).delivered == 1  # a new silence
    assert [a["kind"] for a in hook.received] == ["stale_bot", "stale_bot"]
    assert "b1" in hook.received[0]["title"] and "no heartbeat for 90 s" in hook.received[0]["title"]


def test_a_pass_does_nothing_while_another_holds_the_lock(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    config = AlertsConfig()
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    rds.set(LOCK_KEY, "other")
    assert run_alerts(rds, config, _webhook(settings, hook, config), T0).busy
    assert hook.received == [] and rds.get(LOCK_KEY) == "other"


def test_a_webhook_url_that_is_not_http_is_refused(settings: FarmSettings) -> None:
    from pydantic import SecretStr

    for url in ("file:///etc/passwd", "ftp://host/x", "http:///nohost"):
        with pytest.raises(ConfigError, match="FARM_ALERT_WEBHOOK_URL"):
            channels(AlertsConfig(), _settings(settings, alert_webhook_url=SecretStr(url)))
    assert channels(AlertsConfig(), settings) == []  # nothing configured: nothing sent


@dataclass
class Mailbox:
    port: int
    messages: list[bytes] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
            box.messages.append(envelope.original_content or envelope.content)
            return "250 OK"

    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            box.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=data.password == b"smtp-pw")
        return AuthResult(success=False)

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=box.port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def test_email_alerts_log_in_and_arrive(rds: redis.Redis, settings: FarmSettings, smtp: Mailbox) -> None:
    from pydantic import SecretStr

    email = EmailConfig(
        to=("ops@example.com",), port=smtp.port, user="alerts", events=("failure", "promotion")
    )
    config = AlertsConfig(email=email)
    targets = channels(config, _settings(settings, smtp_password=SecretStr("smtp-pw")))
    assert [c.name for c in targets] == ["email"] and targets[0].label == f"smtp 127.0.0.1:{smtp.port}"
    _events(rds)
    report = run_alerts(rds, config, targets, T0)
    assert report.delivered == 2  # the failure and the promotion; email does not take the others
    assert smtp.logins == [("alerts", "smtp-pw"), ("alerts", "smtp-pw")]
    subjects = [message_from_bytes(m)["Subject"] for m in smtp.messages]
    assert (
        subjects[0].startswith("[trainfarm] BTC_USDT 1h: v2 promoted") and "failed in xgb_deep" in subjects[1]
    )
    assert "ops@example.com" in message_from_bytes(smtp.messages[0])["To"]


def test_starttls_against_a_server_without_it_is_a_failed_attempt(
    rds: redis.Redis, settings: FarmSettings, smtp: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    email = EmailConfig(to=("ops@example.com",), port=smtp.port, starttls=True, events=("promotion",))
    config = AlertsConfig(email=email)
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    with caplog.at_level(logging.WARNING, logger="trainfarm.workers.checks.alert_delivery"):
        report = run_alerts(rds, config, channels(config, settings), T0)
    assert report.retried == 1 and smtp.messages == []
    assert "STARTTLS" in caplog.text or "starttls" in caplog.text.lower()
