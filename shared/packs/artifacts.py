"""Artifact packs: one version of one (symbol, timeframe), written atomically, verified on every read.

A pack lives in ``<artifact root>/<S>/<T>/<version>/``; its files and the manifest's fields:
docs/bot-contract.md#artifact-packs. The manifest is built by
:func:`trainfarm.shared.training.meta_stage.build_version`; the ``CHAMPION`` pointer beside the packs
belongs to the promotion stage.

A pack is assembled in a hidden staging folder beside its final place, every file fsynced, then renamed
into place in one step: a reader sees no pack or a complete one. The manifest lists the sha256 of every
other file; its own sha256 identifies the version in the registry and on Redis.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trainfarm.shared.atomicio import fsync_dir, sha256_file
from trainfarm.shared.errors import ArtifactError
from trainfarm_client import pack as _client_pack
from trainfarm_client.errors import PackError
from trainfarm_client.pack import MANIFEST as MANIFEST  # noqa: PLC0414 - explicit re-export

#: The pack format this farm writes (the client reads it and every older one).
FORMAT_VERSION = _client_pack.PACK_FORMAT

#: Random bytes in a staging folder's name (``.staging-<version>-<hex>``).
_STAGING_SUFFIX_BYTES = 4
#: The errors of a full disk (or quota): a clear ArtifactError, not a bare OSError deep in a copy.
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def new_version_id(now: datetime, run_id: str) -> str:
    """Version ids sort by creation time: ``20261121T054700Z-<run id prefix>`` (the time in UTC)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"version time must carry a time zone, got naive {now.isoformat()}")
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S}Z-{run_id[:8]}"


def pack_dir(root: Path, symbol: str, timeframe: str, version: str) -> Path:
    """Final folder of a version's pack."""
    return root / symbol / timeframe / version


@dataclass(frozen=True)
class WrittenPack:
    """Where a pack landed and the sha256 of its manifest."""

    path: Path
    manifest_sha256: str


def write_pack(
    final: Path,
    files: Mapping[str, Path | bytes],
    manifest: Mapping[str, object],
) -> WrittenPack:
    """Write ``files`` (relative path -> source file or bytes) and the manifest as the pack at ``final``.

    The manifest gets a ``files`` entry mapping every relative path to its sha256. Raises
    :class:`ArtifactError` if ``final`` exists already (versions are immutable), and when the disk is full
    (its staging folder removed first). Staging folders of the same version that a crashed earlier
    attempt left behind are removed before this one starts.
    """
    if final.exists():
        raise ArtifactError(f"pack {final} exists already; versions are never overwritten")
    # Checked before anything is written: two names for one file, or a file the manifest would overwrite,
    # would publish a pack whose manifest lists a sha256 its own file does not have.
    seen: dict[Path, str] = {_inside(final, MANIFEST): MANIFEST}
    for rel in sorted(files):
        target = _inside(final, rel)
        if target in seen:
            raise ArtifactError(f"pack {final}: file {rel} collides with {seen[target]}")
        seen[target] = rel
    staging = final.parent / f".staging-{final.name}-{secrets.token_hex(_STAGING_SUFFIX_BYTES)}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(final)
        staging.mkdir()
        hashes: dict[str, str] = {}
        for rel, source in sorted(files.items()):
            target = _inside(staging, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                shutil.copyfile(source, target)
            _fsync_file(target)
            hashes[rel] = sha256_file(target)
        body = dict(manifest) | {"format_version": FORMAT_VERSION, "files": hashes}
        manifest_path = staging / MANIFEST
        manifest_path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        _fsync_file(manifest_path)
        for folder in {p.parent for p in staging.rglob("*")} | {staging}:
            fsync_dir(folder)
        os.replace(staging, final)  # noqa: PTH105 - the atomic rename that publishes the pack
        fsync_dir(final.parent)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and (error := _disk_full(final, exc)) is not None:
            raise error from exc
        raise
    return WrittenPack(final, sha256_file(final / MANIFEST))


def _remove_stale_staging(final: Path) -> None:
    """Delete staging folders of ``final``'s version that a crashed earlier attempt left behind.

    Version ids are deterministic per run, and the meta stage of a run has one live writer at a time
    (``claim_meta`` in trainfarm.workers.runs): a staging folder of this very version is a dead attempt's
    (killed before its ``except`` could remove it), never a concurrent writer's.
    """
    pattern = re.compile(re.escape(f".staging-{final.name}-") + f"[0-9a-f]{{{2 * _STAGING_SUFFIX_BYTES}}}")
    for entry in final.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)


def _disk_full(final: Path, exc: OSError) -> ArtifactError | None:
    """The error to raise for ``exc`` when it means the disk is full, else None."""
    if exc.errno not in _DISK_FULL_ERRNOS:
        return None
    return ArtifactError(
        f"pack {final} could not be written: no space left on device ({exc}); "
        "the partial pack was removed and nothing was published"
    )


def read_manifest(pack: Path, *, expected_sha256: str | None = None) -> dict[str, object]:
    """Read a pack's manifest and verify every file it lists (and the manifest itself when expected).

    The verification is the bot client's (:func:`trainfarm_client.pack.read_manifest`), so the farm
    accepts exactly the packs a bot accepts; its :class:`~trainfarm_client.errors.PackError` comes out as
    :class:`ArtifactError` (a subclass of it), the farm's own error.
    """
    try:
        return _client_pack.read_manifest(pack, expected_sha256=expected_sha256)
    except PackError as exc:
        raise ArtifactError(str(exc)) from exc


def _inside(root: Path, rel: str) -> Path:
    """``root / rel``, refusing paths that climb out of ``root`` (a manifest is input, too)."""
    try:
        return _client_pack.path_inside(root, rel)
    except PackError as exc:
        raise ArtifactError(str(exc)) from exc


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
