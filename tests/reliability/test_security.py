"""Security (docs/RELIABILITY.md, "Security"): what the farm refuses, and the Redis set-ups it must work with.

Real servers only: the workers are real `celery worker` processes; the password, ACL and TLS Redis
servers are the machine's `redis-server` (7, built with TLS), started here on 127.0.0.1 and stopped
again; the certificates are made with the machine's `openssl`. Locally a missing binary skips a test;
under CI it fails (tests/support/services.py).
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection, Exchange, Producer
from typer.testing import CliRunner

from tests.support.services import REPO_ROOT, RedisServer, free_port, require
from tests.support.waiting import wait_until
from trainfarm.cli.processes import WorkerProcess
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import rebind
from trainfarm_client.models import MODEL_KINDS, load_base_model

PASSWORD = "s3cret-Redis-pw"
ACL_USER, ACL_PASSWORD = "farmer", "acl-Pass-77"


class _Creates:
    """Unpickling this creates ``path``: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _redis_server(tmp_path: Path, *args: str) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, "--appendonly", "no", *args).start()
    try:
        yield server
    finally:
        server.stop()


def _farm_env(home: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A farm home whose Redis is ``url``, for this process (rebound) and as a worker's environment."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "farm.toml").write_text('[universe]\nsymbols = ["BTC_USDT"]\ntimeframes = ["12h"]\n')
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    env = {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(home / "farm.toml"), "FARM_REDIS_URL": url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    rebind()
    return {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | env


def _a_task_round_trips(env: dict[str, str], logs: Path, secret: str) -> None:
    """A real worker on this Redis runs a task and returns its result; its log never shows ``secret``."""
    from trainfarm.workers.tasks import deliver_alerts

    worker = WorkerProcess(f"sec{uuid.uuid4().hex[:4]}", env, logs)
    worker.start()
    try:
        result = deliver_alerts.delay().get(timeout=60)
        assert result["busy"] is False
        assert secret not in worker.log()
    finally:
        worker.stop()


# --- pickle --------------------------------------------------------------------------------------------


@pytest.fixture
def embedded_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict[str, str], Path]]:
    from trainfarm.shared.connections import embedded_redis, redis_url

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("FARM_HOME", str(home))
    get_settings.cache_clear()
    url = redis_url()
    try:
        yield _farm_env(home, url, monkeypatch), home
    finally:
        embedded_redis().stop()
        get_settings.cache_clear()


def test_a_pickled_message_is_refused_by_the_workers(
    embedded_farm: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """A message serialised with pickle (what an attacker with queue access would send) is never
    unpickled: the worker refuses the content type, runs nothing, and keeps serving JSON tasks."""
    from trainfarm.shared.connections import celery_url

    env, _home = embedded_farm
    sentinel = tmp_path / "unpickled"
    worker = WorkerProcess("pickle", env, tmp_path)
    worker.start()
    try:
        body = pickle.dumps(((), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
        evil = pickle.dumps(_Creates(sentinel))
        with Connection(celery_url()) as conn:
            producer = Producer(
                conn.channel(), exchange=Exchange("control", type="direct"), routing_key="control"
            )
            for payload in (body, evil):
                producer.publish(
                    payload,
                    serializer=None,
                    content_type="application/x-python-serialize",
                    content_encoding="binary",
                    headers={"task": "farm.deliver_alerts", "id": uuid.uuid4().hex, "lang": "py"},
                    routing_key="control",
                    declare=[],
                )
        wait_until(
            lambda: worker.log().count("untrusted content") >= 2,
            60,
            "the refusals",
            process=worker,
            every=0.25,
        )
        assert not sentinel.exists()
        assert worker.alive()
        _a_task_round_trips(env, tmp_path / "after", secret="\x00")  # JSON tasks still run
    finally:
        worker.stop()
    assert not sentinel.exists()


def test_the_bot_client_never_unpickles() -> None:
    """No module of the bot client imports a pickle-based loader, and no np.load allows pickles."""
    banned = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    for path in (REPO_ROOT / "trainfarm_client").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned, path
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in banned, path
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, path


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_a_pickle_in_place_of_a_model_file_is_refused_unread(kind: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "unpickled"
    model = tmp_path / "model.bin"
    model.write_bytes(pickle.dumps(_Creates(sentinel)))
    with pytest.raises(Exception):  # noqa: B017 - each library's own parse error
        load_base_model("m", kind, model)
    assert not sentinel.exists()


# --- password, ACL user, wrong password --------------------------------------------------------------


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[int]:
    acl = f"user {ACL_USER} on >{ACL_PASSWORD} ~* &* +@all"
    (tmp_path / "users.acl").write_text(f"user default on >{PASSWORD} ~* &* +@all\n{acl}\n")
    for server in _redis_server(tmp_path, "--aclfile", str(tmp_path / "users.acl")):
        yield server.port


@pytest.mark.parametrize("who", ["requirepass", "acl-user"])
def test_a_password_protected_redis_works_through_the_url(
    who: str, password_redis: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainfarm.shared.connections import ping
    from trainfarm_client.contract import bot_key
    from trainfarm_client.live import LiveModel

    secret = PASSWORD if who == "requirepass" else ACL_PASSWORD
    user = "" if who == "requirepass" else ACL_USER
    url = f"redis://{user}:{secret}@127.0.0.1:{password_redis}/0"
    env = _farm_env(tmp_path / "home", url, monkeypatch)
    assert ping() > 0
    _a_task_round_trips(env, tmp_path / "logs", secret)
    bot = LiveModel("BTC_USDT", "12h", redis_url=url, heartbeat_interval=0.5)
    bot.start(background=False)
    try:
        client = redis.Redis.from_url(url)
        assert client.exists(bot_key(bot.bot_id)) == 1 and bot.version is None
        client.close()
    finally:
        bot.close()


def test_a_wrong_password_fails_clearly_and_never_shows_it(
    password_redis: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainfarm.cli.app import main

    url = f"redis://:not-{PASSWORD}@127.0.0.1:{password_redis}/0"
    _farm_env(tmp_path / "home", url, monkeypatch)
    monkeypatch.setattr("sys.argv", ["farm", "triggers"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "password" in err.lower() or "WRONGPASS" in err or "auth" in err.lower(), err
    assert f"not-{PASSWORD}" not in err
    from trainfarm.cli.app import app

    result = CliRunner().invoke(app, ["config"])
    assert f"not-{PASSWORD}" not in result.stdout


def test_farm_status_never_shows_the_redis_password(
    password_redis: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainfarm.cli.app import app

    _farm_env(tmp_path / "home", f"redis://:{PASSWORD}@127.0.0.1:{password_redis}/0", monkeypatch)
    for argv in (["status", "--json", "--timeout", "0.5"], ["status", "--timeout", "0.5"], ["config"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output, argv


# --- TLS ---------------------------------------------------------------------------------------------


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca.pem, server.pem, server.key)."""
    openssl = shutil.which("openssl")
    require(openssl is not None, "no openssl on PATH")
    assert openssl is not None
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "1", "-subj", "/CN=trainfarm test CA")  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


def test_rediss_urls_reach_celery_and_the_bot_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainfarm.shared.connections import ping
    from trainfarm_client.contract import bot_key
    from trainfarm_client.live import LiveModel

    ca, cert, key = _certificates(tmp_path / "tls")
    port = free_port()
    # "--port 0" after the helper's own --port: no plain listener at all, TLS only.
    tls = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no", "--requirepass", PASSWORD]
    tls += ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
    for _ in _redis_server(tmp_path, *tls):
        url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        env = _farm_env(tmp_path / "home", url, monkeypatch)
        assert ping() > 0
        _a_task_round_trips(env, tmp_path / "logs", PASSWORD)
        bot = LiveModel("BTC_USDT", "12h", redis_url=url, heartbeat_interval=0.5)
        bot.start(background=False)
        try:
            client = redis.Redis.from_url(url)
            assert client.exists(bot_key(bot.bot_id)) == 1
            client.close()
        finally:
            bot.close()
        # Without the CA the server's certificate is not trusted: refused, not silently accepted.
        untrusted = redis.Redis.from_url(f"rediss://:{PASSWORD}@127.0.0.1:{port}/0", socket_timeout=5)
        with pytest.raises(redis.ConnectionError, match=r"(?i)certificate"):
            untrusted.ping()
        untrusted.close()
