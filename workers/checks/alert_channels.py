"""The alert channels: the farm's JSON webhook, e-mail and every service Apprise knows; Celery-free.

The channels: the farm's JSON webhook (``FARM_ALERT_WEBHOOK_URL``), e-mail (``[alerts.email]``) and each URL
of ``FARM_ALERT_URLS`` (Telegram, Slack, Discord, Matrix, ntfy and every other service Apprise knows). E-mail
and the URLs go through Apprise; the webhook stays a plain POST here, because its body is the farm's own
alert (``{"id", "kind", "title", "data"}``, which consumers parse) and Apprise's ``json://`` posts its own
shape (title and message only). A channel's sender raises on failure (:class:`AlertDeliveryError` for
Apprise's refusals), which the outbox (:mod:`trainfarm.workers.checks.alert_delivery`) retries.

Logs name a channel by its label: ``webhook <scheme>://<host>``, ``smtp <host>:<port>`` or ``apprise
<scheme>://<host>`` (the host only where it is a server's name: Telegram's, Slack's and Discord's URLs hold
a token there). Never a path, a query, a user or a password. Apprise's own log records stay out of the
farm's logs, and every secret the farm hands Apprise is masked in them before any handler sees one (some
quote a whole URL): a failed notification's reason, in the farm's log line and the dead list, comes from
the records Apprise kept for that notification.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import apprise
from apprise.plugins import url_to_dict

from trainfarm.shared.errors import AlertDeliveryError, ConfigError
from trainfarm.shared.monitoring.alert_params import AlertKind, AlertsConfig
from trainfarm.shared.monitoring.alerts import Alert
from trainfarm.shared.settings import FarmSettings

log = logging.getLogger(__name__)

#: How much of a failure's reason a log line and the dead list keep.
REASON_CHARS = 200

#: The Apprise notification type of each alert kind (services colour or tag messages by it).
NOTIFY_TYPES: dict[AlertKind, apprise.NotifyType] = {
    "promotion": apprise.NotifyType.SUCCESS,
    "rejection": apprise.NotifyType.WARNING,
    "failure": apprise.NotifyType.FAILURE,
    "trigger": apprise.NotifyType.INFO,
    "stale_bot": apprise.NotifyType.WARNING,
    "held": apprise.NotifyType.WARNING,
    "challenger": apprise.NotifyType.INFO,
}

Send = Callable[[Alert], None]


@dataclass(frozen=True)
class Channel:
    """A configured delivery channel: its name, the kinds it takes, how it sends, how logs may name it.

    The name is what the outbox and the dead list store: ``webhook``, ``email``, or
    ``apprise-<position>-<schema>`` (``apprise-2-tgram``); never a secret."""

    name: str
    kinds: tuple[AlertKind, ...]
    send: Send
    label: str


def webhook_label(url: str) -> str:
    """How logs name a webhook: scheme and host only (tokens live in the path and the query)."""
    parts = urlsplit(url)
    return f"webhook {parts.scheme}://{parts.hostname or '?'}"


def post_json(url: str, timeout_s: float) -> Send:
    """A sender that POSTs the alert's JSON to ``url``; any non-2xx answer is a failure."""

    def send(alert: Alert) -> None:
        body = json.dumps(alert.to_json(), sort_keys=True, default=str).encode()
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")

    return send


class _Masker:
    """Masks, in a text, every piece of a URL that could be a credential (user, password, host, each path
    segment, each query value) and every password, as written, percent-decoded and percent-encoded.

    Over-masking is the safe side: a masked room name or port costs a readable word, an unmasked token
    leaks it. URL pieces shorter than 4 characters stay (masking them would garble every word), passwords
    never do; the ``public`` names (hosts a label shows) stay readable."""

    def __init__(
        self, urls: Iterable[str] = (), passwords: Iterable[str] = (), public: Collection[str] = ()
    ) -> None:
        pieces: set[str] = set()
        always: set[str] = set(passwords)
        for url in urls:
            pieces.add(url)
            where, _, query = url.partition("://")[2].partition("?")
            userinfo = where.split("/", 1)[0].rpartition("@")[0]
            if ":" in userinfo:
                always.add(userinfo.split(":", 1)[1])
            pieces.update(re.split(r"[/@:#]+", where))
            pieces.update(pair.partition("=")[2] or pair for pair in re.split(r"[&;]", query))
        found = {form for p in pieces if len(p) >= 4 and p not in public for form in _forms(p)}
        found |= {form for p in always if p for form in _forms(p)}
        self._pieces = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for piece in self._pieces:
            text = text.replace(piece, "***")
        return text


def _forms(piece: str) -> set[str]:
    return {piece, unquote(piece), quote(piece, safe=""), quote(unquote(piece), safe="")}


class _AppriseMask(logging.Filter):
    """Masks every secret the farm hands Apprise (URLs, the SMTP password) in each record Apprise logs,
    before any handler sees it: Apprise's own capture of a notification's records (a failure's reason is
    read from it) and whatever handlers a host process puts on Apprise's logger (pytest, for one, adds its
    own to every logger that does not propagate). A logger filter, so no handler ever gets the raw text."""

    def __init__(self) -> None:
        super().__init__()
        self._urls: set[str] = set()
        self._passwords: set[str] = set()
        self._public: set[str] = set()
        self._masker = _Masker()

    def add(
        self, *, urls: Iterable[str] = (), passwords: Iterable[str] = (), public: Iterable[str] = ()
    ) -> None:
        """Mask these from now on (``public``: hosts a label shows, left readable)."""
        urls, passwords, public = set(urls), {p for p in passwords if p}, {h for h in public if h}
        if urls <= self._urls and passwords <= self._passwords and public <= self._public:
            return
        self._urls |= urls
        self._passwords |= passwords
        self._public |= public
        self._masker = _Masker(sorted(self._urls), sorted(self._passwords), self._public)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record Apprise formatted wrongly: nothing of it is safe to keep
            text = "(an Apprise record that could not be formatted)"
        record.msg, record.args = self._masker(text), None
        return True


# Apprise's records never reach the farm's handlers: even masked they are noise at DEBUG. They are read
# only from a notification's result (its captured records): DEBUG so that the capture holds the failed
# connection's exception; TRACE (whole URLs, parsed) stays off.
_MASK = _AppriseMask()
_APPRISE_LOG = logging.getLogger(apprise.LOGGER_NAME)
_APPRISE_LOG.propagate = False
_APPRISE_LOG.setLevel(logging.DEBUG)
_APPRISE_LOG.addFilter(_MASK)


@contextmanager
def _apprise_notes() -> Iterator[list[str]]:
    """The warnings and errors Apprise logs inside the block (why it refused a service), masked."""
    notes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(record.getMessage())

    handler = Collect(logging.WARNING)
    _APPRISE_LOG.addHandler(handler)
    try:
        yield notes
    finally:
        _APPRISE_LOG.removeHandler(handler)


def _why(notes: Sequence[str]) -> str:
    """What Apprise said about a service it refused; "Could not load ...: <its input>" loses the input (a
    dict of fields, password and all, when the input was one: masked, but never worth showing)."""
    said = [note.split(":", 1)[0] if note.startswith("Could not load") else note for note in notes]
    return "; ".join(said)[:REASON_CHARS]


def split_urls(text: str) -> list[str]:
    """The URLs of ``FARM_ALERT_URLS``: separated by whitespace, or by commas or semicolons before the next
    ``scheme://`` (a comma inside a URL, as in ``?to=a@x,b@x``, stays in it)."""
    urls: list[str] = []
    for word in text.split():
        parts = re.split(r"[,;]+(?=[A-Za-z][A-Za-z0-9+.-]*://)", word)
        urls.extend(part.strip(",;") for part in parts if part.strip(",;"))
    return urls


def _public_host(plugin: apprise.NotifyBase, host: str) -> str:
    """``host`` when it is a server's name a log may show, else "": Apprise shows it unmasked in the
    plugin's private URL (so it is no token of the service's) and it looks like a DNS name or an address
    (Telegram's, Slack's and Discord's URLs put a token or an id where a host would be)."""
    if not host or not ("." in host or ":" in host or host == "localhost"):
        return ""
    try:
        shown = urlsplit(plugin.url(privacy=True)).hostname or ""
    except ValueError:
        return ""
    return host if shown.lower() == host.lower() else ""


def _apprise_channel(
    name: str,
    kinds: tuple[AlertKind, ...],
    source: str | dict[str, Any],
    fields: Mapping[str, Any],
    timeout_s: float,
) -> Channel | None:
    """The channel of one Apprise service, from a URL or the plugin's fields (``source``); ``fields`` are
    the parsed ones (as ``url_to_dict`` returns them). ``timeout_s`` is its connect and read timeout unless
    the fields set ``cto`` or ``rto``. None when Apprise refuses the service (the caller says which). Its
    secrets must be in :data:`_MASK` already."""
    # In the calling thread with no disk store; the service deadline (a plugin that ignores its socket
    # timeouts) well above the socket timeouts, so that a slow but working service is never abandoned.
    asset = apprise.AppriseAsset(
        app_id="trainfarm",
        app_desc="trainfarm alerts",
        async_mode=False,
        storage_mode=apprise.PersistentStoreMode.MEMORY,
        secure_logging=True,
        service_timeout=max(60.0, 6 * timeout_s),
    )
    # A URL is instantiated as written (a dict Apprise refuses is logged whole; a URL, masked by Apprise).
    plugin = apprise.Apprise.instantiate(source, asset=asset)
    if plugin is None:
        return None
    if "cto" not in fields:
        plugin.socket_connect_timeout = timeout_s
    if "rto" not in fields:
        plugin.socket_read_timeout = timeout_s
    schema = str(fields.get("schema", "?"))
    host = _public_host(plugin, str(fields.get("host") or ""))
    _MASK.add(public=[host])
    label = f"apprise {schema}://{host}" if host else f"apprise {schema}"
    return Channel(name, kinds, _notify(apprise.Apprise(plugin, asset=asset)), label)


def _notify(client: apprise.Apprise) -> Send:
    """A sender through one Apprise service: a notification Apprise reports failed (it returns False, never
    raises) raises :class:`AlertDeliveryError` with Apprise's reason (masked), so that the outbox retries."""

    def send(alert: Alert) -> None:
        with client.notify(
            body=alert.body(),
            title=f"[trainfarm] {alert.title}"[:200],
            notify_type=NOTIFY_TYPES[alert.kind],
            body_format=apprise.NotifyFormat.TEXT,
            log_level=logging.DEBUG,
        ) as result:
            if result:
                return
            notes = [
                entry.message
                for entry in result.logs()
                if entry.level not in ("DEBUG", "INFO", "TRACE")
                or entry.message.startswith("Socket Exception")  # the failed connection's own words
            ]
            status = result.status.name.lower()
        raise AlertDeliveryError(f"{status}: {'; '.join(notes)[:REASON_CHARS] or 'no reason given'}")

    return send


def email_channel(config: AlertsConfig, password: str | None) -> Channel:
    """E-mail to ``[alerts.email] to`` through Apprise's e-mail plugin: plain SMTP, or STARTTLS when
    ``starttls``; a login when ``user`` and the password are both set."""
    mail = config.email
    fields: dict[str, Any] = {
        "schema": "mailtos" if mail.starttls else "mailto",
        "secure": mail.starttls,
        "secure_mode": "starttls" if mail.starttls else "insecure",
        "host": mail.host,
        "port": mail.port,
        "smtp_host": mail.host,  # as configured: no provider defaults guessed from the addresses
        "user": mail.user or None,
        "password": password if mail.user else None,
        "from_addr": mail.sender,
        "targets": list(mail.to),
        "format": "text",
        "cto": mail.timeout.total_seconds(),
        "rto": mail.timeout.total_seconds(),
    }
    _MASK.add(passwords=[password] if password else [])
    with _apprise_notes() as notes:
        channel = _apprise_channel("email", mail.events, fields, fields, 0.0)
    # Built from the config: any field Apprise warns about (an address it drops, a zero timeout) is wrong.
    if channel is None or notes:
        raise ConfigError(f"[alerts.email]: Apprise's e-mail plugin refuses it: {_why(notes) or 'refused'}")
    return Channel("email", mail.events, channel.send, f"smtp {mail.host}:{mail.port}")


def apprise_channels(config: AlertsConfig, text: str) -> list[Channel]:
    """One channel per URL of ``FARM_ALERT_URLS`` (``text``), named ``apprise-<position>-<schema>``.

    A URL Apprise cannot use is a :class:`ConfigError` naming its position, never the URL."""
    urls = split_urls(text)
    beyond = sorted(p for p in config.apprise.events_by_url if p > len(urls))
    if beyond:
        raise ConfigError(
            f"[alerts.apprise] events_by_url names URL #{beyond[0]}, but FARM_ALERT_URLS lists {len(urls)}"
        )
    _MASK.add(urls=urls)
    timeout = config.apprise.timeout.total_seconds()
    found = []
    for position, url in enumerate(urls, start=1):
        channel = None
        with _apprise_notes() as notes:
            fields = url_to_dict(url) if "://" in url else None
            if fields:
                name = f"apprise-{position}-{fields.get('schema', '')}"
                channel = _apprise_channel(name, config.apprise.kinds(position), url, fields, timeout)
        if channel is None:
            why = _why(notes) or "not a URL (scheme://...)"
            raise ConfigError(f"FARM_ALERT_URLS: URL #{position} is not one Apprise can use: {why}")
        found.append(channel)
    return found


def channels(config: AlertsConfig, settings: FarmSettings) -> list[Channel]:
    """The channels the settings and the config turn on (none: alerts are collected, not sent)."""
    found = []
    if settings.alert_webhook_url is not None:
        url = settings.alert_webhook_url.get_secret_value()
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError("FARM_ALERT_WEBHOOK_URL must be an http:// or https:// URL with a host")
        timeout = config.webhook.timeout.total_seconds()
        found.append(Channel("webhook", config.webhook.events, post_json(url, timeout), webhook_label(url)))
    if config.email.to:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        found.append(email_channel(config, password))
    if settings.alert_urls is not None:
        found.extend(apprise_channels(config, settings.alert_urls.get_secret_value()))
    return found


__all__ = [
    "NOTIFY_TYPES",
    "REASON_CHARS",
    "Channel",
    "Send",
    "apprise_channels",
    "channels",
    "email_channel",
    "post_json",
    "split_urls",
    "webhook_label",
]
