"""The pack server: complete packs only, inside the artifact root only, read-only, optional bearer token."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.packs import Pack
from trainfarm.web.packs import create_pack_app


@pytest.fixture
def root(pack: Pack, tmp_path: Path) -> Path:
    """An artifact root holding the session's pack, a staging folder, a snapshot and a stray file."""
    root = tmp_path / "artifacts"
    market = root / "BTC_USDT" / "12h"
    shutil.copytree(pack.path, market / pack.path.name)
    shutil.copytree(pack.path, market / ".staging-x")
    (market / "half").mkdir()
    (market / "half" / "calibrator.json").write_text("{}")  # no manifest: not a complete pack
    (root / "datasets").mkdir()
    (root / "datasets" / "snap.parquet").write_bytes(b"PAR1")
    (tmp_path / "secret.txt").write_text("outside the root")
    return root


def test_a_packs_files_are_served_and_nothing_else(root: Path, pack: Pack) -> None:
    version = pack.path.name
    with TestClient(create_pack_app(root)) as client:
        manifest = client.get(f"/BTC_USDT/12h/{version}/manifest.json")
        assert manifest.status_code == 200 and manifest.content == (pack.path / "manifest.json").read_bytes()
        plot = client.get(f"/BTC_USDT/12h/{version}/plots/calibration.png")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
        for path in (
            f"/BTC_USDT/12h/{version}/",
            f"/BTC_USDT/12h/{version}/nope.json",
            "/BTC_USDT/12h/.staging-x/manifest.json",
            "/BTC_USDT/12h/half/calibrator.json",
            "/datasets/snap.parquet",
            "/datasets/x/y/snap.parquet",
            f"/BTC_USDT/12h/{version}/../../../../secret.txt",
            f"/BTC_USDT/12h/{version}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
            f"/BTC_USDT/12h/{version}/..%2f..%2f..%2f..%2fsecret.txt",
            "/..%2f/12h/x/secret.txt",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert b"outside the root" not in response.content
        assert client.post(f"/BTC_USDT/12h/{version}/manifest.json").status_code == 405
        assert client.delete(f"/BTC_USDT/12h/{version}/manifest.json").status_code == 405


def test_a_symlink_out_of_the_pack_is_not_followed(root: Path, pack: Pack) -> None:
    pack_dir = root / "BTC_USDT" / "12h" / pack.path.name
    (pack_dir / "leak.txt").symlink_to(root.parent / "secret.txt")
    with TestClient(create_pack_app(root)) as client:
        assert client.get(f"/BTC_USDT/12h/{pack.path.name}/leak.txt").status_code == 404


def test_with_a_token_every_request_but_healthz_needs_it(root: Path, pack: Pack) -> None:
    url = f"/BTC_USDT/12h/{pack.path.name}/manifest.json"
    with TestClient(create_pack_app(root, token="tok-123")) as client:
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(url, headers={"Authorization": "Basic tok-123"}).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer tok-123"}).status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}
