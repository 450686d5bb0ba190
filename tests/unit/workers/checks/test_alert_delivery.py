"""Alert delivery against a local HTTP server and a local SMTP server (aiosmtpd), on a real Redis: the
farm's JSON webhook, e-mail and Apprise URLs (``json://`` and ``mailto://`` to those receivers).

Time is passed in (``now``), so the backoff is checked without waiting for it. Channels are built afresh for
each pass, as the beat task does (Apprise spaces the sends of one service object: e-mail's by 5.5 s).
"""

from __future__ import annotations

import json
import logging
import socket
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
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.monitoring.alert_params import (
    AlertsConfig,
    AppriseAlertsConfig,
    EmailConfig,
    WebhookConfig,
)
from trainfarm.shared.monitoring.alerts import Alert
from trainfarm.shared.settings import FarmSettings
from trainfarm.workers.checks.alert_channels import Channel, channels, split_urls, webhook_label
from trainfarm.workers.checks.alert_delivery import (
    BOTS_KEY,
    DEAD_KEY,
    LOCK_KEY,
    OUTBOX_KEY,
    AlertsReport,
    run_alerts,
)
from trainfarm_client.contract import FAILED, HELD, PROMOTED, REJECTED, TRIGGERED, bot_key

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cr3t-T0KEN"
PASSWORD = "pw-S3cret-42"


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


def test_a_dead_bot_whose_heartbeat_expired_is_alerted_once(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    # The client's heartbeat hash expires 30 s after its last beat, before the 60 s silence limit: the
    # pass must judge a vanished bot by the last heartbeat it saw.
    config = AlertsConfig(stale_bot_after="60s")
    targets = _webhook(settings, hook, config)
    rds.hset(bot_key("b2"), mapping={"symbol": "ETH_USDT", "timeframe": "5m", "seen_at": T0.isoformat()})
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=20)).queued == 0  # alive
    rds.delete(bot_key("b2"))  # what the hash's expiry does
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=45)).queued == 0  # not silent long yet
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=75)).delivered == 1
    assert run_alerts(rds, config, targets, T0 + timedelta(seconds=300)).queued == 0  # once
    assert [a["kind"] for a in hook.received] == ["stale_bot"]
    assert "b2 (ETH_USDT 5m)" in hook.received[0]["title"] and "75 s" in hook.received[0]["title"]
    assert rds.hlen(BOTS_KEY) == 0  # forgotten once alerted
    # It comes back, then dies again: a new silence, a new alert.
    back = T0 + timedelta(seconds=400)
    rds.hset(bot_key("b2"), mapping={"symbol": "ETH_USDT", "timeframe": "5m", "seen_at": back.isoformat()})
    assert run_alerts(rds, config, targets, back + timedelta(seconds=5)).queued == 0
    rds.delete(bot_key("b2"))
    assert run_alerts(rds, config, targets, back + timedelta(seconds=90)).delivered == 1
    assert len(hook.received) == 2


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


def _pass(
    rds: redis.Redis, config: AlertsConfig, settings: FarmSettings, at: datetime, **kwargs: Any
) -> AlertsReport:
    """One pass with channels built for it, as the beat task builds them."""
    return run_alerts(rds, config, channels(config, settings), at, **kwargs)


def test_email_alerts_log_in_and_arrive(rds: redis.Redis, settings: FarmSettings, smtp: Mailbox) -> None:
    from pydantic import SecretStr

    email = EmailConfig(
        to=("ops@example.com",), port=smtp.port, user="alerts", events=("failure", "promotion")
    )
    config = AlertsConfig(email=email)
    settings = _settings(settings, smtp_password=SecretStr("smtp-pw"))
    targets = channels(config, settings)
    assert [c.name for c in targets] == ["email"] and targets[0].label == f"smtp 127.0.0.1:{smtp.port}"
    _events(rds)
    # No time budget: one delivery per pass, so the test never waits out Apprise's spacing of e-mails.
    first = _pass(rds, config, settings, T0, budget_s=0)
    assert (first.queued, first.delivered) == (2, 1)  # the failure and the promotion; not the others
    assert _pass(rds, config, settings, T0, budget_s=0).delivered == 1
    assert _pass(rds, config, settings, T0, budget_s=0).delivered == 0
    assert smtp.logins == [("alerts", "smtp-pw"), ("alerts", "smtp-pw")]
    mails = [message_from_bytes(m) for m in smtp.messages]
    subjects = [m["Subject"] for m in mails]
    assert (
        subjects[0].startswith("[trainfarm] BTC_USDT 1h: v2 promoted") and "failed in xgb_deep" in subjects[1]
    )
    assert "ops@example.com" in mails[0]["To"] and "trainfarm@localhost" in mails[0]["From"]
    body = mails[0].get_payload(decode=True).decode()
    assert "v2 promoted (was v1)" in body and '"previous_version": "v1"' in body


def test_starttls_against_a_server_without_it_is_a_failed_attempt(
    rds: redis.Redis, settings: FarmSettings, smtp: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    email = EmailConfig(to=("ops@example.com",), port=smtp.port, starttls=True, events=("promotion",))
    config = AlertsConfig(email=email)
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    with caplog.at_level(logging.WARNING, logger="trainfarm.workers.checks.alert_delivery"):
        report = run_alerts(rds, config, channels(config, settings), T0)
    assert report.retried == 1 and smtp.messages == []
    assert "STARTTLS" in caplog.text and f"smtp 127.0.0.1:{smtp.port}" in caplog.text


def test_an_email_config_apprise_refuses_is_a_config_error(settings: FarmSettings) -> None:
    for email in (EmailConfig(to=("not-an-address",)), EmailConfig(to=("ops@example.com",), timeout="0s")):
        with pytest.raises(ConfigError, match=r"\[alerts\.email\]"):
            channels(AlertsConfig(email=email), settings)


# --- Apprise URLs (FARM_ALERT_URLS) ----------------------------------------------------------------------


def _urls(settings: FarmSettings, *urls: str) -> FarmSettings:
    from pydantic import SecretStr

    return _settings(settings, alert_urls=SecretStr(" ".join(urls)))


def test_apprise_json_urls_reach_a_local_receiver_each_with_its_kinds(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    base = f"json://127.0.0.1:{hook.port}"
    settings = _urls(settings, f"{base}/all/{TOKEN}", f"{base}/failures/{TOKEN}?rto=3")
    config = AlertsConfig(apprise=AppriseAlertsConfig(events_by_url={2: ("failure",)}))
    targets = channels(config, settings)
    assert [(c.name, c.label) for c in targets] == [
        ("apprise-1-json", "apprise json://127.0.0.1"),
        ("apprise-2-json", "apprise json://127.0.0.1"),
    ]
    _events(rds)
    report = _pass(rds, config, settings, T0)
    # URL 1 takes the default kinds (promotion, rejection, failure, held; no trigger), URL 2 failures only.
    assert (report.queued, report.delivered, report.retried) == (5, 5, 0)
    by_path = {p: [m for q, m in zip(hook.paths, hook.received, strict=True) if q == p] for p in hook.paths}
    assert [m["type"] for m in by_path[f"/all/{TOKEN}"]] == ["success", "warning", "failure", "warning"]
    (failure,) = by_path[f"/failures/{TOKEN}"]
    assert failure["title"].startswith("[trainfarm] BTC_USDT 1h: run abcdef12 failed in xgb_deep: boom")
    assert failure["message"].startswith(failure["title"].removeprefix("[trainfarm] "))
    assert '"model": "xgb_deep"' in failure["message"]


def test_a_failing_apprise_url_is_retried_then_delivered(
    rds: redis.Redis, settings: FarmSettings, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _urls(settings, f"json://127.0.0.1:{hook.port}/hooks/{TOKEN}")
    config = AlertsConfig()
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    hook.fail_first = 1
    with caplog.at_level(logging.WARNING, logger="trainfarm.workers.checks.alert_delivery"):
        assert _pass(rds, config, settings, T0).retried == 1
    assert "apprise json://127.0.0.1" in caplog.text and "500" in caplog.text  # Apprise's reason
    assert _pass(rds, config, settings, T0 + timedelta(seconds=5)).delivered == 1
    assert len(hook.paths) == 2 and len(hook.received) == 1


def test_a_refused_apprise_url_goes_to_the_dead_list_and_no_secret_shows_anywhere(
    rds: redis.Redis,
    settings: FarmSettings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"json://farm:{PASSWORD}@127.0.0.1:{free_port()}/hooks/{TOKEN}?key={TOKEN}"  # nothing listens
    settings = _urls(settings, url)
    config = AlertsConfig(max_attempts=3, retry_base="1s")
    record_event(rds, FAILED, {"symbol": "ETH_USDT", "timeframe": "5m", "run_id": "r1", "error": "x"})
    caplog.set_level(logging.DEBUG)  # every logger, every level: Apprise's own records must not be among them
    reports = [_pass(rds, config, settings, T0 + timedelta(seconds=second)) for second in range(10)]
    # Attempt 1 at 0 s, 2 at 1 s (1 s later), 3 at 3 s (2 s later): dropped.
    assert [(r.retried, r.dropped) for r in reports[:4]] == [(1, 0), (1, 0), (0, 0), (0, 1)]
    assert sum(r.retried + r.dropped for r in reports[4:]) == 0 and rds.zcard(OUTBOX_KEY) == 0
    (dead,) = [json.loads(d) for d in rds.lrange(DEAD_KEY, 0, -1)]
    assert dead["channel"] == "apprise-1-json" and dead["attempts"] == 3
    assert "AlertDeliveryError: failure" in dead["error"] and "Connection" in dead["error"]
    assert "dropped after 3 attempts" in caplog.text and "apprise json://127.0.0.1" in caplog.text
    shown = caplog.text + json.dumps(dead) + "".join(capsys.readouterr())
    assert TOKEN not in shown and PASSWORD not in shown


def test_mailto_urls_reach_a_local_smtp_server(
    rds: redis.Redis, settings: FarmSettings, smtp: Mailbox
) -> None:
    to = "ops@example.com,dev@example.com"  # one URL: its comma is no separator
    url = f"mailto://alerts:smtp-pw@127.0.0.1:{smtp.port}?from=farm@example.com&to={to}"
    settings = _urls(settings, url)
    config = AlertsConfig(apprise=AppriseAlertsConfig(events=("promotion",)))
    ((name, label),) = [(c.name, c.label) for c in channels(config, settings)]
    assert (name, label) == ("apprise-1-mailto", "apprise mailto://127.0.0.1")
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    assert _pass(rds, config, settings, T0).delivered == 1
    assert smtp.logins and set(smtp.logins) == {("alerts", "smtp-pw")}
    recipients = {message_from_bytes(m)["To"] for m in smtp.messages}
    assert any("ops@example.com" in r for r in recipients) and any("dev@example.com" in r for r in recipients)
    assert all(
        message_from_bytes(m)["Subject"].startswith("[trainfarm] BTC_USDT 1h: v2") for m in smtp.messages
    )


def test_labels_show_a_server_never_a_token(settings: FarmSettings) -> None:
    settings = _urls(
        settings,
        "tgram://123456789:AAHsecretTOKENabcdefghijklmnopqrstuv/987654,"
        "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js;"
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general",
        f"ntfys://farm:{PASSWORD}@ntfy.example.com/{TOKEN}",
        "ntfy://farm-alerts-topic",
        f"matrixs://bot:{PASSWORD}@matrix.example.org/#ops",
    )
    assert [(c.name, c.label) for c in channels(AlertsConfig(), settings)] == [
        ("apprise-1-tgram", "apprise tgram"),
        ("apprise-2-discord", "apprise discord"),
        ("apprise-3-slack", "apprise slack"),
        ("apprise-4-ntfys", "apprise ntfys://ntfy.example.com"),
        ("apprise-5-ntfy", "apprise ntfy"),
        ("apprise-6-matrixs", "apprise matrixs://matrix.example.org"),
    ]


def test_the_urls_split_on_spaces_and_on_commas_before_a_scheme() -> None:
    text = " mailto://h?to=a@example.com,b@example.com, json://h/x;ntfy://t\n tgram://b/c "
    assert split_urls(text) == [
        "mailto://h?to=a@example.com,b@example.com",
        "json://h/x",
        "ntfy://t",
        "tgram://b/c",
    ]


def test_a_url_apprise_cannot_use_is_named_by_position_never_shown(settings: FarmSettings) -> None:
    for bad in (f"tgram://{TOKEN}", f"nosuchservice://{TOKEN}/x", f"{TOKEN}", f"json://{TOKEN}@"):
        with pytest.raises(ConfigError, match=r"FARM_ALERT_URLS: URL #2 ") as caught:
            channels(AlertsConfig(), _urls(settings, "json://127.0.0.1/ok", bad))
        assert TOKEN not in str(caught.value)
    config = AlertsConfig(apprise=AppriseAlertsConfig(events_by_url={3: ("failure",)}))
    with pytest.raises(ConfigError, match=r"names URL #3, but FARM_ALERT_URLS lists 2"):
        channels(config, _urls(settings, "json://127.0.0.1/a", "json://127.0.0.1/b"))


def test_apprise_connects_only_to_the_configured_servers(
    rds: redis.Redis, settings: FarmSettings, hook: Hook, smtp: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[object] = []
    connect = socket.socket.connect

    def recording(self: socket.socket, address: Any) -> None:
        reached.append(address)
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    settings = _urls(
        settings,
        f"json://127.0.0.1:{hook.port}/hooks/{TOKEN}",
        f"mailto://127.0.0.1:{smtp.port}?from=farm@example.com&to=ops@example.com",
    )
    config = AlertsConfig(apprise=AppriseAlertsConfig(events=("promotion",)))
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    assert _pass(rds, config, settings, T0).delivered == 2
    assert len(hook.received) == 1 and len(smtp.messages) == 1
    tcp = [a for a in reached if isinstance(a, tuple)]
    assert {a[1] for a in tcp} <= {hook.port, smtp.port, rds.connection_pool.connection_kwargs.get("port")}
    assert {a[0] for a in tcp} <= {"127.0.0.1"}


# --- the lock --------------------------------------------------------------------------------------------


def _probe(send: Any) -> list[Channel]:
    """A channel whose send runs ``send`` (what happens while a pass holds the lock), then succeeds."""
    return [Channel("probe", ("promotion",), send, "probe")]


def test_a_second_pass_is_busy_while_the_first_holds_the_lock(rds: redis.Redis) -> None:
    config = AlertsConfig()
    inner: list[AlertsReport] = []
    seen: list[tuple[str, int]] = []

    def send(alert: Alert) -> None:
        seen.append((str(rds.get(LOCK_KEY)), int(rds.pttl(LOCK_KEY))))
        inner.append(run_alerts(rds, config, targets, T0, lock_s=60))

    targets = _probe(send)
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    assert run_alerts(rds, config, targets, T0, lock_s=60).delivered == 1
    assert inner == [AlertsReport(busy=True)] and rds.get(LOCK_KEY) is None  # released after the pass
    ((token, ttl_ms),) = seen
    assert len(token) == 32 and 0 < ttl_ms <= 60_000  # redis-py's uuid token; it expires if the pass dies
    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v3"})
    assert run_alerts(rds, config, targets, T0, lock_s=60).delivered == 1
    assert seen[1][0] != token  # every pass its own token


def test_a_pass_never_releases_a_lock_it_lost(rds: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    def send(alert: Alert) -> None:
        rds.set(LOCK_KEY, "other")  # the pass's lock expired and another pass took it

    record_event(rds, PROMOTED, {"symbol": "BTC_USDT", "timeframe": "1h", "version": "v2"})
    with caplog.at_level(logging.WARNING, logger="trainfarm.workers.checks.alert_delivery"):
        assert run_alerts(rds, AlertsConfig(), _probe(send), T0).delivered == 1
    assert rds.get(LOCK_KEY) == "other" and "outlived its 300 s lock" in caplog.text


def test_a_pass_past_its_time_budget_leaves_the_rest_to_the_next(
    rds: redis.Redis, settings: FarmSettings, hook: Hook
) -> None:
    config = AlertsConfig()
    targets = _webhook(settings, hook, config)
    _events(rds)
    reports = [run_alerts(rds, config, targets, T0, budget_s=0) for _ in range(6)]
    assert [r.delivered for r in reports] == [1, 1, 1, 1, 1, 0] and len(hook.received) == 5
