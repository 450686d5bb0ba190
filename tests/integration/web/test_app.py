"""The dashboard's version page and plots on the session's real pack."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.support.packs import PACK_SYMBOL, PACK_TF, Pack, register_pack
from tests.support.web import basic_auth
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import FarmSettings
from trainfarm.web.app import create_app


def test_a_version_page_shows_gates_stacker_metrics_and_the_packs_plot(
    pack: Pack, settings: FarmSettings, server: EmbeddedRedis
) -> None:
    """The session's real pack, registered in this farm's registry."""
    from trainfarm.shared.packs.artifacts import read_manifest

    manifest = read_manifest(pack.path, expected_sha256=pack.manifest_sha256)
    registry = Registry.open(settings.database)
    version = register_pack(registry, pack.path, pack.manifest_sha256, "test")
    with TestClient(create_app(settings)) as client:
        client.headers.update(basic_auth(settings))
        html = client.get(f"/versions/{version}").text
        checks = manifest["gate_report"]["checks"]  # type: ignore[index]
        assert all(c["name"] in html for c in checks)
        assert "pack:" not in html and manifest["stacker"]["chosen"] in html  # type: ignore[index]
        assert "prior (class shares)" in html and "best base model" in html
        for plot in manifest["plots"]:  # type: ignore[union-attr]
            assert f'src="/versions/{version}/{plot}"' in html
            image = client.get(f"/versions/{version}/{plot}")
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            assert image.content == (pack.path / plot).read_bytes()
        # Only the manifest's plots, only inside the pack.
        assert client.get(f"/versions/{version}/manifest.json").status_code == 404
        assert client.get(f"/versions/{version}/../../../etc/passwd").status_code == 404


def test_a_tampered_plot_is_not_served(pack: Pack, settings: FarmSettings, tmp_path: Path) -> None:
    import shutil

    from trainfarm.shared.packs.artifacts import read_manifest

    copy = tmp_path / "pack"
    shutil.copytree(pack.path, copy)
    manifest = read_manifest(copy)
    plot = manifest["plots"][0]  # type: ignore[index]
    (copy / plot).write_bytes(b"\x89PNG tampered")
    registry = Registry.open(settings.database)
    run = registry.runs.create(PACK_SYMBOL, PACK_TF, "test")
    registry.versions.add(
        "tampered",
        PACK_SYMBOL,
        PACK_TF.value,
        run.id,
        metrics={},
        path=str(copy),
        manifest_sha256=pack.manifest_sha256,
    )
    with TestClient(create_app(settings)) as client:
        client.headers.update(basic_auth(settings))
        assert client.get(f"/versions/tampered/{plot}").status_code == 404
        assert "pack:" in client.get("/versions/tampered").text
