"""`farm web`: the read-only farm dashboard and its Prometheus metrics (:mod:`trainfarm.web`)."""

from __future__ import annotations

from typing import Annotated

import typer

from trainfarm.cli.output import console
from trainfarm.shared.settings import get_settings
from trainfarm.shared.ui_auth import ui_credentials


def web(
    address: Annotated[
        str | None, typer.Option("--address", help="listen address (default FARM_WEB_ADDRESS: loopback)")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default FARM_WEB_PORT: 8765)")] = None,
) -> None:
    """Serve the dashboard (markets, runs, versions, bots) and /metrics behind the operator UIs' auth."""
    import uvicorn

    from trainfarm.web.app import create_app

    settings = get_settings()
    creds = ui_credentials(settings)
    address = address or settings.web_address
    port = port or settings.web_port
    console.print(
        f"dashboard at http://{address}:{port} (user {creds.user}; password from {creds.source}); "
        f"metrics at /metrics"
    )
    uvicorn.run(create_app(settings), host=address, port=port, log_level="info", access_log=False)


def register(app: typer.Typer) -> None:
    """Add `web` to the main `farm` app."""
    app.command("web")(web)
