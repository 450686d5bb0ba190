"""Atomic file writes and content hashes.

Anything another process reads (bar store files, dataset snapshots, artifacts, pointers) is written to a
temporary file in the same folder, fsynced, then moved over the target with ``os.replace``, and the folder
is fsynced so the rename itself survives a crash. Readers therefore see the old file or the new one,
never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# Packs are verified by bots with the client's hashing; one implementation keeps every sha256 comparable.
from trainfarm_client.pack import sha256_file as sha256_file  # noqa: PLC0414 - explicit re-export


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, write: Callable[[Path], None], *, mode: int = 0o644) -> None:
    """Call ``write(tmp_path)`` to produce the file, then atomically move it to ``target``.

    ``write`` receives a path in ``target``'s folder; whatever it leaves there replaces ``target`` in one
    step. On any exception the temporary file is removed and ``target`` is untouched. The file gets
    ``mode`` before it appears under its name (0o600 for a secret: never readable by others, not even
    for a moment).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp makes 0600 files; artifacts and the store are read by bots running as other users.
        tmp.chmod(mode)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)  # noqa: PTH105 - the atomic rename, spelled as the design names it
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Atomically replace ``target`` with ``data`` (file mode ``mode``)."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(target, write, mode=mode)


def atomic_write_text(target: Path, text: str, *, mode: int = 0o644) -> None:
    """Atomically replace ``target`` with UTF-8 ``text`` (file mode ``mode``)."""
    atomic_write_bytes(target, text.encode("utf-8"), mode=mode)
