"""`farm serve-packs`: the artifact root's packs, read-only over HTTP, for bots on other machines.

Only complete packs are served: ``GET /<symbol>/<timeframe>/<version>/<file>`` answers a file of a pack
folder that holds a ``manifest.json`` (staging folders start with a dot and are never served), inside the
artifact root (a path that climbs out of the pack is a 404, whatever its spelling), and nothing else: no
listings, no dataset snapshots, no staging runs, no method but GET and HEAD. With a token configured
(``FARM_PACK_TOKEN``) every request but ``/healthz`` must carry ``Authorization: Bearer <token>``.

Serving is not trusting: bots check every file against the manifest, and the manifest against the sha256
in the champion key, which only the farm's Redis holds (:mod:`trainfarm_client.remote`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse

from trainfarm_client.errors import PackError
from trainfarm_client.pack import MANIFEST, path_inside

#: What a symbol, timeframe or version segment may look like (no dot first: staging folders are hidden).
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def create_pack_app(root: Path, *, token: str | None = None) -> FastAPI:
    """The pack server for the artifact ``root``."""
    root = root.absolute()
    app = FastAPI(title="trainfarm packs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def bearer(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("read-only", status_code=405)
        if token is None or request.url.path == "/healthz":
            return await call_next(request)
        header = request.headers.get("authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if secrets.compare_digest(given.encode(), token.encode()):
            return await call_next(request)
        return PlainTextResponse("token required", status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/{symbol}/{timeframe}/{version}/{file:path}")
    def pack_file(symbol: str, timeframe: str, version: str, file: str) -> Response:
        if not all(_SEGMENT.match(part) for part in (symbol, timeframe, version)):
            return PlainTextResponse("not a pack", status_code=404)
        pack = root / symbol / timeframe / version
        try:
            target = path_inside(pack, file)
        except PackError:
            return PlainTextResponse("outside the pack", status_code=404)
        if not (pack / MANIFEST).is_file() or not target.is_file():
            return PlainTextResponse("no such file", status_code=404)
        return FileResponse(target, media_type="application/octet-stream")

    return app


__all__ = ["create_pack_app"]
