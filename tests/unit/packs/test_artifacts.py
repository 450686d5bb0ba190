"""Artifact packs: atomic write, every file verified on read, nothing half-written left behind."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from trainfarm.shared.atomicio import sha256_file
from trainfarm.shared.errors import ArtifactError
from trainfarm.shared.packs.artifacts import (
    FORMAT_VERSION,
    MANIFEST,
    new_version_id,
    pack_dir,
    read_manifest,
    write_pack,
)

#: Relative paths of the files every test pack holds (bytes and copied source files, nested folders).
FILES = ("base/lgbm_gbdt.txt", "base/cat_symmetric.cbm", "meta/meta.txt", "calibrator.json")


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path | bytes]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.txt").write_text("tree\n" * 100)
    (src / "model.cbm").write_bytes(bytes(range(256)) * 4)
    return {
        FILES[0]: src / "model.txt",
        FILES[1]: src / "model.cbm",
        FILES[2]: b"meta model\n",
        FILES[3]: json.dumps({"thresholds": [0.1, 0.5]}).encode(),
    }


def _manifest() -> dict[str, object]:
    return {"version": "20260101T000000Z-abcdef12", "symbol": "BTC_USDT", "timeframe": "12h", "p_star": 0.4}


@pytest.fixture
def pack(tmp_path: Path, sources: dict[str, Path | bytes]) -> tuple[Path, str]:
    final = pack_dir(tmp_path / "artifacts", "BTC_USDT", "12h", "20260101T000000Z-abcdef12")
    written = write_pack(final, sources, _manifest())
    return written.path, written.manifest_sha256


def _leftovers(parent: Path) -> list[Path]:
    return sorted(parent.glob(".staging-*")) if parent.exists() else []


def test_write_then_read_verifies_every_file(
    tmp_path: Path, pack: tuple[Path, str], sources: dict[str, Path | bytes]
) -> None:
    path, manifest_sha = pack
    assert path == tmp_path / "artifacts" / "BTC_USDT" / "12h" / "20260101T000000Z-abcdef12"
    assert manifest_sha == sha256_file(path / MANIFEST)
    manifest = read_manifest(path, expected_sha256=manifest_sha)
    assert {k: manifest[k] for k in _manifest()} == _manifest()
    assert manifest["format_version"] == FORMAT_VERSION == 2
    files = manifest["files"]
    assert isinstance(files, dict) and sorted(files) == sorted(FILES)
    for rel, source in sources.items():
        content = source if isinstance(source, bytes) else source.read_bytes()
        assert (path / rel).read_bytes() == content
        assert files[rel] == sha256_file(path / rel)
    assert _leftovers(path.parent) == []
    assert read_manifest(path) == manifest  # without an expected sha256 the files are still checked


def test_refuses_an_existing_version_folder(pack: tuple[Path, str], sources: dict[str, Path | bytes]) -> None:
    path, manifest_sha = pack
    with pytest.raises(ArtifactError, match="exists already"):
        write_pack(path, {"meta/meta.txt": b"other"}, _manifest())
    assert sha256_file(path / MANIFEST) == manifest_sha  # the existing version is untouched
    empty = path.parent / "20260101T000001Z-abcdef12"
    empty.mkdir()  # even an empty folder: a version id is never reused
    with pytest.raises(ArtifactError, match="exists already"):
        write_pack(empty, sources, _manifest())
    assert _leftovers(path.parent) == []


@pytest.mark.parametrize("rel", FILES)
def test_a_flipped_byte_is_found_and_named(pack: tuple[Path, str], rel: str) -> None:
    path, _ = pack
    data = bytearray((path / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / rel).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=re.escape(rel)):
        read_manifest(path)


@pytest.mark.parametrize("rel", FILES)
def test_a_missing_file_is_found_and_named(pack: tuple[Path, str], rel: str) -> None:
    path, _ = pack
    (path / rel).unlink()
    with pytest.raises(ArtifactError, match=rf"{re.escape(rel)}.*missing"):
        read_manifest(path)


def test_a_manifest_other_than_the_registered_one_is_refused(pack: tuple[Path, str]) -> None:
    path, manifest_sha = pack
    with pytest.raises(ArtifactError, match=re.escape(MANIFEST)):
        read_manifest(path, expected_sha256="0" * 64)
    # An edit that keeps every listed file intact is still caught by the manifest's own sha256.
    body = json.loads((path / MANIFEST).read_text())
    body["p_star"] = 0.01
    (path / MANIFEST).write_text(json.dumps(body))
    read_manifest(path)  # the files themselves still verify ...
    with pytest.raises(ArtifactError, match=re.escape(MANIFEST)):
        read_manifest(path, expected_sha256=manifest_sha)  # ... but not the manifest


@pytest.mark.parametrize("escape", ["../x", "base/../../x", "/etc/hostname", "."])
def test_a_manifest_naming_a_path_outside_the_pack_is_refused(pack: tuple[Path, str], escape: str) -> None:
    path, _ = pack
    outside = path.parent / "x"
    outside.write_text("not part of the pack")
    body = json.loads((path / MANIFEST).read_text())
    body["files"][escape] = sha256_file(outside)
    (path / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(ArtifactError, match=re.escape(repr(escape))):
        read_manifest(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "not a JSON object"), ('{"files": {}}', "lists no files")],
)
def test_a_broken_manifest_is_refused(pack: tuple[Path, str], content: str, message: str) -> None:
    path, _ = pack
    (path / MANIFEST).write_text(content)
    with pytest.raises(ArtifactError, match=message):
        read_manifest(path)


def test_a_folder_without_a_manifest_is_not_a_pack(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(ArtifactError, match=MANIFEST):
        read_manifest(tmp_path / "half")


def test_a_failure_while_writing_leaves_nothing(tmp_path: Path, sources: dict[str, Path | bytes]) -> None:
    final = pack_dir(tmp_path / "artifacts", "BTC_USDT", "12h", "20260101T000000Z-deadbeef")
    broken = dict(sources) | {"plots/calibration.png": tmp_path / "no-such-file.png"}
    with pytest.raises(FileNotFoundError):
        write_pack(final, broken, _manifest())
    assert not final.exists()
    assert _leftovers(final.parent) == []
    # The same version can then be written in full.
    assert read_manifest(write_pack(final, sources, _manifest()).path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"../outside.txt": b"x"}, "escapes the pack"),
        ({MANIFEST: b"{}"}, "collides"),  # would be overwritten by the manifest itself
        ({"./calibrator.json": b"{}"}, "collides"),  # two names for one file
    ],
    ids=["escapes", "manifest-name", "two-names"],
)
def test_bad_file_names_are_refused_before_writing(
    tmp_path: Path, sources: dict[str, Path | bytes], extra: dict[str, bytes], message: str
) -> None:
    final = pack_dir(tmp_path / "artifacts", "BTC_USDT", "12h", "20260101T000000Z-deadbeef")
    with pytest.raises(ArtifactError, match=message):
        write_pack(final, dict(sources) | extra, _manifest())
    assert not final.exists()
    assert _leftovers(final.parent) == []
    assert not (final.parent / "outside.txt").exists()


def test_version_ids_sort_by_time() -> None:
    rng = random.Random(3)
    start = datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC)
    moments = [start + timedelta(seconds=rng.randrange(0, 3 * 366 * 86400)) for _ in range(200)]
    moments += [start, start + timedelta(seconds=1), start + timedelta(seconds=2)]  # across a new year
    # Run ids are random hex: a later version with a "smaller" run id still sorts after an earlier one.
    ids = {moment: new_version_id(moment, f"{rng.getrandbits(128):032x}") for moment in moments}
    assert [ids[m] for m in sorted(moments)] == sorted(ids.values())
    assert new_version_id(datetime(2026, 11, 21, 5, 47, tzinfo=UTC), "9f" * 16) == "20261121T054700Z-9f9f9f9f"


def test_version_ids_are_stamped_in_utc() -> None:
    utc = datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    plus_two = utc.astimezone(timezone(timedelta(hours=2)))
    assert (
        new_version_id(plus_two, "ab" * 16) == new_version_id(utc, "ab" * 16) == "20260101T013000Z-abababab"
    )
    with pytest.raises(ValueError, match="time zone"):
        new_version_id(datetime(2026, 1, 1), "ab" * 16)  # naive: no way to tell which instant it is
