"""Reading an artifact pack's manifest and verifying every file it lists, before anything is loaded.

A pack (one version of one symbol and timeframe) is a folder::

    manifest.json        everything needed to rebuild and check the predictor, plus ``files``:
                         the sha256 of every other file, by path relative to the pack
    base/<model>.<ext>   each base model in its library's own format
    stacker/booster.txt  the 55-feature LightGBM stacker, when the run chose it (format 2; format 1
                         packs have meta/meta.txt, the LightGBM meta-learner)
    calibrator.json      the calibrator (format 2: temperature and shrinkage; format 1: isotonic)

The farm writes it into a staging folder and renames it into place in one step, so a reader sees no pack
or a complete one; the manifest's own sha256 is what the registry and the Redis champion key carry. A bot
trusts nothing it has not hashed: :func:`read_manifest` checks the manifest against the expected sha256
(when given) and every listed file against the manifest, and refuses paths that leave the pack folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from trainfarm_client.errors import PackError

MANIFEST = "manifest.json"
#: The newest pack format (the manifest's ``format_version``) this client reads; it reads every older one.
#: 2: the run's chosen stacker (``stacker``) and a temperature/shrinkage calibrator. 1: a LightGBM
#: meta-learner (``meta``) and per-class isotonic calibration.
PACK_FORMAT = 2
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def path_inside(root: Path, rel: str) -> Path:
    """``root / rel``, refusing (:class:`PackError`) paths that climb out of ``root``: a manifest is input."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()) or target == root.resolve():
        raise PackError(f"{root}: file path {rel!r} escapes the pack")
    return target


def read_manifest(pack: Path, *, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read a pack's manifest and verify every file it lists (and the manifest itself when expected).

    ``expected_sha256`` is the manifest's sha256 as registered (the champion key's ``sha256``). Raises
    :class:`PackError` naming the file for a missing manifest or file, a changed sha256, a manifest that
    is not a JSON object or lists no files, and a listed path outside the pack.
    """
    path = pack / MANIFEST
    if not path.is_file():
        raise PackError(f"{pack}: no {MANIFEST} (not a pack, or not completely written)")
    # Hash and parse the same bytes: reading the file twice would let a change in between go unseen.
    raw = path.read_bytes()
    if expected_sha256 is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_sha256:
            raise PackError(
                f"{path}: sha256 {actual[:12]}... differs from the registered {expected_sha256[:12]}..."
            )
    try:
        loaded = json.loads(raw)
    except ValueError as exc:
        raise PackError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(loaded, dict):
        raise PackError(f"{path}: not a JSON object")
    manifest: dict[str, Any] = loaded
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise PackError(f"{path}: lists no files")
    for rel, digest in files.items():
        target = path_inside(pack, str(rel))
        if not target.is_file():
            raise PackError(f"{pack}: file {rel} listed in the manifest is missing")
        actual = sha256_file(target)
        if actual != digest:
            raise PackError(
                f"{pack}: file {rel} has sha256 {actual[:12]}..., manifest says {str(digest)[:12]}..."
            )
    return manifest
