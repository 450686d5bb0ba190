"""Pack verification on the bot's side: PackError for anything wrong; the farm's ArtifactError is one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.packs import Pack
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.packs.artifacts import read_manifest as farm_read_manifest
from trainfarm.shared.packs.predictor import Predictor as FarmPredictor
from trainfarm_client.errors import PackError
from trainfarm_client.pack import read_manifest
from trainfarm_client.predictor import Predictor


def test_an_intact_pack_verifies(pack: Pack) -> None:
    manifest = read_manifest(pack.path, expected_sha256=pack.manifest_sha256)
    assert manifest == farm_read_manifest(pack.path, expected_sha256=pack.manifest_sha256)
    assert "calibrator.json" in manifest["files"]
    assert sum(1 for f in manifest["files"] if f.startswith("base/")) == 8


def test_a_tampered_file_is_a_pack_error_naming_it(copied: Path, pack: Pack) -> None:
    target = copied / "calibrator.json"
    target.write_bytes(target.read_bytes() + b" ")
    with pytest.raises(PackError, match=re.escape("calibrator.json")) as raised:
        read_manifest(copied)
    assert type(raised.value) is PackError  # the client raises its own error, not the farm's
    with pytest.raises(PackError, match=re.escape("calibrator.json")) as raised:
        Predictor.load(copied)
    assert type(raised.value) is PackError
    # The farm's loader says the same as its own error, which a bot's handler catches as well.
    with pytest.raises(ArtifactError, match=re.escape("calibrator.json")):
        FarmPredictor.load(copied)
    with pytest.raises(PackError):
        FarmPredictor.load(copied)


def test_a_wrong_manifest_sha256_and_escaping_paths_are_refused(copied: Path, pack: Pack) -> None:
    with pytest.raises(PackError, match="registered"):
        read_manifest(copied, expected_sha256="0" * 64)
    body = json.loads((copied / "manifest.json").read_text())
    body["files"]["../outside.txt"] = "0" * 64
    (copied / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(PackError, match="escapes the pack"):
        read_manifest(copied)
    (copied / "manifest.json").unlink()
    with pytest.raises(PackError, match=re.escape("no manifest.json")):
        read_manifest(copied)


def test_a_sample_mismatch_is_a_pack_error(copied: Path) -> None:
    """self_check is the last line of defence: files that verify but compute something else."""
    body = json.loads((copied / "manifest.json").read_text())
    body["sample_rows"]["expected"][0] = [1.0, 0.0, 0.0]
    (copied / "manifest.json").write_text(json.dumps(body))
    predictor = Predictor.load(copied)
    with pytest.raises(PackError, match="do not reproduce"):
        predictor.self_check()
    with pytest.raises(ArtifactError, match="do not reproduce"):
        FarmPredictor.load(copied).self_check()
