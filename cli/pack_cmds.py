"""`farm serve-packs`: the artifact root's packs served read-only over HTTP, for bots on other machines."""

from __future__ import annotations

from typing import Annotated

import typer

from trainfarm.cli.output import console
from trainfarm.shared.settings import get_settings


def serve_packs(
    address: Annotated[
        str | None, typer.Option("--address", help="listen address (default FARM_PACK_SERVER_ADDRESS)")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="port (default FARM_PACK_SERVER_PORT: 8766)")
    ] = None,
) -> None:
    """Serve the artifact root's packs read-only over HTTP, for bots on other machines."""
    import uvicorn

    from trainfarm.web.packs import create_pack_app

    settings = get_settings()
    token = settings.pack_token.get_secret_value() if settings.pack_token else None
    address = address or settings.pack_server_address
    port = port or settings.pack_server_port
    console.print(
        f"serving the packs under {settings.artifacts_dir} read-only at http://{address}:{port} "
        f"({'bearer token required' if token else 'no token: anyone who reaches it may read the packs'}); "
        f"set FARM_PACK_BASE_URL so that the champion key names them there"
    )
    app = create_pack_app(settings.artifacts_dir, token=token)
    uvicorn.run(app, host=address, port=port, log_level="info", access_log=False)


def register(app: typer.Typer) -> None:
    """Add `serve-packs` to the main `farm` app."""
    app.command("serve-packs")(serve_packs)
