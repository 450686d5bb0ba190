"""Fetching a pack over HTTP(S) into a local cache, verified before anything loads it.

When the champion key's ``uri`` is an ``http(s)://`` URL (the farm runs `farm serve-packs` and sets
``FARM_PACK_BASE_URL``), a bot on another machine calls :func:`fetch_pack`:

1. ``GET <uri>manifest.json``; its sha256 must equal the champion key's ``sha256``. Only the farm's Redis
   holds that, so a pack server (or anyone between) cannot swap the manifest unnoticed;
2. every file the manifest lists is fetched and must match the sha256 the manifest gives it;
3. only then does the folder appear in the cache, in one rename (``<cache>/<S>/<T>/<version>/``).

A failure anywhere leaves no folder behind and raises: :class:`PackDownloadError` when the server could not
be reached or answered an error (worth retrying soon), :class:`~trainfarm_client.errors.PackError` when
what came back is not what the champion key names (tampered, or a server that serves another farm).
:class:`~trainfarm_client.live.LiveModel` keeps serving its loaded version either way and retries with
backoff. A pack already in the cache is reused after the same verification, never fetched twice. Nothing
is unpickled: the cache holds each library's own model files and JSON, as the pack does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from trainfarm_client.errors import PackError
from trainfarm_client.pack import MANIFEST, path_inside, read_manifest

#: Largest file a pack server may send (a pack's biggest model files are a few MB).
MAX_FILE_BYTES = 512 * 1024 * 1024


class PackDownloadError(PackError):
    """The pack server could not be reached or answered with an error.

    Handled by: :class:`~trainfarm_client.live.LiveModel`, which keeps serving its loaded version and
    tries again after a backoff (the server may be restarting).
    """


def is_remote(uri: str) -> bool:
    """True for the ``http://`` and ``https://`` pack URIs that :func:`fetch_pack` serves."""
    return urlsplit(uri).scheme in ("http", "https")


def cache_folder(cache_root: Path, uri: str) -> Path:
    """Where the pack at ``uri`` (``.../<S>/<T>/<version>/``) lives in the cache."""
    parts = [p for p in urlsplit(uri).path.split("/") if p]
    if len(parts) < 3 or any(p in (".", "..") or p.startswith(".") for p in parts[-3:]):
        raise PackError(f"pack URI {uri!r} does not end in <symbol>/<timeframe>/<version>/")
    return cache_root.joinpath(*parts[-3:])


def _get(url: str, token: str | None, timeout_s: float) -> bytes:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data: bytes = response.read(MAX_FILE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise PackDownloadError(f"{_where(url)}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PackDownloadError(f"{_where(url)}: {reason}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PackError(f"{_where(url)}: larger than {MAX_FILE_BYTES} bytes")
    return data


def _where(url: str) -> str:
    """A URL as errors show it: no query (a token could hide there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def fetch_pack(
    uri: str,
    expected_manifest_sha256: str,
    cache_root: Path,
    *,
    token: str | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """The verified local copy of the pack at ``uri`` (fetched now unless the cache holds it already)."""
    if not is_remote(uri):
        raise PackError(f"not an http(s) pack URI: {uri!r}")
    base = uri if uri.endswith("/") else uri + "/"
    final = cache_folder(cache_root, base)
    if (final / MANIFEST).is_file():
        try:
            read_manifest(final, expected_sha256=expected_manifest_sha256)
            return final
        except PackError:
            shutil.rmtree(final, ignore_errors=True)  # a damaged or other copy: fetch it again
    raw = _get(base + MANIFEST, token, timeout_s)
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_manifest_sha256:
        raise PackError(
            f"{_where(base + MANIFEST)}: sha256 {actual[:12]}... differs from the champion key's "
            f"{expected_manifest_sha256[:12]}... (tampered, or not this farm's pack)"
        )
    try:
        manifest: Any = json.loads(raw)
    except ValueError as exc:
        raise PackError(f"{_where(base + MANIFEST)}: not valid JSON ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise PackError(f"{_where(base + MANIFEST)}: lists no files")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".fetch-{final.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for rel, digest in files.items():
            target = path_inside(staging, str(rel))
            data = _get(base + quote(str(rel)), token, timeout_s)
            if hashlib.sha256(data).hexdigest() != digest:
                raise PackError(f"{_where(base + str(rel))}: sha256 differs from the manifest's (tampered)")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (staging / MANIFEST).write_bytes(raw)
        try:
            staging.replace(final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a peer that got there first: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def prune_cache(cache_root: Path, uri: str, keep: set[str]) -> None:
    """Remove the cached versions of ``uri``'s market other than ``keep`` (the served and previous ones)."""
    market = cache_folder(cache_root, uri).parent
    if not market.is_dir():
        return
    for entry in market.iterdir():
        if entry.name not in keep and not entry.name.startswith(".fetch-"):
            shutil.rmtree(entry, ignore_errors=True)


__all__ = ["MAX_FILE_BYTES", "PackDownloadError", "cache_folder", "fetch_pack", "is_remote", "prune_cache"]
