"""Bots on other machines: the champion key names packs on `farm serve-packs`; bots fetch and verify them.

The farm (its own home: registry, artifact root, embedded Redis) promotes real packs with
``FARM_PACK_BASE_URL`` set, so the champion key's ``uri`` is an http:// URL. The bot runs in-process with
its own cache folder and never reads the farm's files: it reaches the farm through Redis and the pack
server only. The pack server is a real `farm serve-packs` process, stopped and started by the test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tests.support.packs import PACK_SYMBOL, PACK_TF, Version, build_versions, farm_settings
from tests.support.services import free_port, tcp_port_open
from tests.support.waiting import wait_until
from trainfarm.shared.champions.publish import promote_version
from trainfarm.shared.connections import embedded_redis, redis_url
from trainfarm.shared.registry import PromotionReason, Registry, dispose_engine
from trainfarm_client.errors import PackError
from trainfarm_client.live import LiveModel
from trainfarm_client.remote import PackDownloadError, fetch_pack

TOKEN = "pack-tok-42"


@dataclass
class PackServer:
    """A farm home's promoted packs and the `farm serve-packs` process serving them (started and stopped by
    the test)."""

    home: Path
    versions: list[Version]
    port: int
    env: dict[str, str]
    server: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_server(self, log: Path) -> None:
        with log.open("ab") as sink:
            self.server = subprocess.Popen(
                [sys.executable, "-c", "from trainfarm.cli.app import main; main()", "serve-packs"],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: tcp_port_open("127.0.0.1", self.port), 60, "farm serve-packs", every=0.25)

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)
        self.server = None


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[PackServer]:
    home = tmp_path_factory.mktemp("remote-farm") / "home"
    versions = build_versions(home, pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env |= {
        "FARM_HOME": str(home),
        "FARM_CONFIG_FILE": str(home / "farm.toml"),
        "FARM_PACK_SERVER_PORT": str(port),
        "FARM_PACK_TOKEN": TOKEN,
        "FARM_PACK_BASE_URL": f"http://127.0.0.1:{port}",
    }
    farm = PackServer(home, versions, port, env)
    with (
        farm_settings(home, (home / "farm.toml").read_text()) as settings,
        pytest.MonkeyPatch.context() as mp,
    ):
        for key in ("FARM_PACK_TOKEN", "FARM_PACK_BASE_URL"):
            mp.setenv(key, env[key])
        from trainfarm.shared.settings import get_settings

        get_settings.cache_clear()
        registry = Registry.open(get_settings().database)
        for i, v in enumerate(versions):
            run = registry.runs.create(PACK_SYMBOL, PACK_TF, f"remote test {i}")
            registry.versions.add(
                v.version,
                PACK_SYMBOL,
                PACK_TF.value,
                run.id,
                metrics={},
                path=str(v.path),
                manifest_sha256=v.manifest_sha256,
            )
        try:
            yield farm
        finally:
            farm.stop_server()
            embedded_redis(settings).stop()
            dispose_engine(settings.database)


def _bot(cache: Path, token: str | None = TOKEN) -> LiveModel:
    return LiveModel(
        PACK_SYMBOL,
        PACK_TF.value,
        redis_url=redis_url(),
        recheck_interval=0.3,
        heartbeat_interval=0.5,
        cache_dir=cache,
        pack_token=token,
    )


def test_a_remote_bot_follows_promotions_through_the_pack_server_and_survives_its_outage(
    remote: PackServer, tmp_path: Path
) -> None:
    v1, v2, v3 = remote.versions
    remote.start_server(tmp_path / "packs.log")
    promote_version(v1.version, PromotionReason.MANUAL)
    cache = tmp_path / "bot-home" / "cache"
    bot = _bot(cache).start()
    try:
        wait_until(lambda: bot.version == v1.version, 60, "the bot on v1", every=0.25)
        # It serves its own verified copy: the pack server's URL is all it was told.
        assert (
            bot.champion is not None and bot.champion.uri == f"{remote.base_url}/BTC_USDT/12h/{v1.version}/"
        )
        assert bot.predictor.path == cache / "BTC_USDT" / "12h" / v1.version
        assert not str(bot.predictor.path).startswith(str(remote.home))

        promote_version(v2.version, PromotionReason.MANUAL)
        wait_until(lambda: bot.version == v2.version, 60, "the bot on v2 through the pack server", every=0.25)

        # The pack server is down when v3 is promoted: the bot keeps serving v2 and says why...
        remote.stop_server()
        promote_version(v3.version, PromotionReason.MANUAL)
        wait_until(
            lambda: bot.last_error is not None and "could not fetch" in bot.last_error,
            30,
            "the failed fetch",
            every=0.25,
        )
        assert bot.version == v2.version
        assert not (cache / "BTC_USDT" / "12h" / v3.version).exists()
        # ... and once it is back, the delayed reload happens: nothing is lost.
        remote.start_server(tmp_path / "packs.log")
        wait_until(lambda: bot.version == v3.version, 90, "the bot on v3 after the outage", every=0.25)
        assert bot.last_error is None
        # The cache keeps the served and the previous version only (pruned just after the swap, so waited
        # for: a reader may see the new version a moment before the prune).
        kept = sorted([v2.version, v3.version])
        wait_until(
            lambda: sorted(p.name for p in (cache / "BTC_USDT" / "12h").iterdir()) == kept,
            30,
            "the cache pruned to the served and the previous version",
            every=0.25,
        )
    finally:
        bot.close()
        remote.stop_server()


def test_a_tampered_file_on_the_server_is_refused_until_it_is_repaired(
    remote: PackServer, tmp_path: Path
) -> None:
    v1, v2, _ = remote.versions
    remote.start_server(tmp_path / "packs.log")
    promote_version(v1.version, PromotionReason.MANUAL)
    bot = _bot(tmp_path / "cache").start()
    victim = v2.path / "calibrator.json"
    original = victim.read_bytes()
    try:
        wait_until(lambda: bot.version == v1.version, 60, "the bot on v1", every=0.25)
        remote.stop_server()  # promoted while nobody can fetch it, then tampered with on the server
        promote_version(v2.version, PromotionReason.MANUAL)
        victim.write_bytes(original.replace(b"1", b"2", 1))
        remote.start_server(tmp_path / "packs.log")
        wait_until(
            lambda: bot.last_error is not None and "tampered" in bot.last_error, 60, "the refusal", every=0.25
        )
        assert bot.version == v1.version  # still serving the verified v1
        assert not (tmp_path / "cache" / "BTC_USDT" / "12h" / v2.version).exists()  # nothing half-fetched
        victim.write_bytes(original)  # repaired: the bot's retries get it
        wait_until(lambda: bot.version == v2.version, 120, "the bot on v2 after the repair", every=0.25)
    finally:
        victim.write_bytes(original)
        bot.close()
        remote.stop_server()


def test_fetch_pack_checks_the_token_the_manifest_and_reuses_its_cache(
    remote: PackServer, tmp_path: Path
) -> None:
    v1 = remote.versions[0]
    remote.start_server(tmp_path / "packs.log")
    uri = f"{remote.base_url}/BTC_USDT/12h/{v1.version}/"
    try:
        with pytest.raises(PackDownloadError, match="HTTP 401"):
            fetch_pack(uri, v1.manifest_sha256, tmp_path / "c1")
        with pytest.raises(PackError, match="differs from the champion key"):
            fetch_pack(uri, "0" * 64, tmp_path / "c1", token=TOKEN)
        assert not (tmp_path / "c1" / "BTC_USDT").exists() or not any(
            (tmp_path / "c1" / "BTC_USDT" / "12h").iterdir()
        )
        folder = fetch_pack(uri, v1.manifest_sha256, tmp_path / "c1", token=TOKEN)
        assert hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest() == v1.manifest_sha256
        remote.stop_server()
        again = fetch_pack(uri, v1.manifest_sha256, tmp_path / "c1", token=TOKEN)  # from the cache
        assert again == folder
        with pytest.raises(PackDownloadError):
            fetch_pack(uri, v1.manifest_sha256, tmp_path / "c2", token=TOKEN)  # nothing cached, no server
        shutil.rmtree(folder / "plots")
        with pytest.raises(PackDownloadError):  # a damaged cache is fetched again (and the server is down)
            fetch_pack(uri, v1.manifest_sha256, tmp_path / "c1", token=TOKEN)
    finally:
        remote.stop_server()
