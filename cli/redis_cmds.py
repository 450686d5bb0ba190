"""`farm redis ...`: the Redis every farm process shares (embedded unless FARM_REDIS_URL is set)."""

from __future__ import annotations

from typing import Annotated

import typer

from trainfarm.cli.output import console, print_json
from trainfarm.shared.connections import embedded_redis, ping, redact_url, redis_url
from trainfarm.shared.settings import get_settings

app = typer.Typer(help="Start, stop and inspect the farm's Redis.", no_args_is_help=True)


@app.command("start")
def start() -> None:
    """Start the embedded Redis (no-op when running, or when FARM_REDIS_URL points elsewhere)."""
    url = redis_url()
    console.print(f"redis ready at {redact_url(url)} (round trip {ping() * 1000:.2f} ms)")


@app.command("stop")
def stop() -> None:
    """Stop the embedded Redis of this home folder."""
    if get_settings().redis_url:
        console.print("FARM_REDIS_URL is set: that server is not the farm's to stop")
        return
    stopped = embedded_redis().stop()
    console.print("embedded redis stopped" if stopped else "embedded redis was not running")


@app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Which Redis the farm uses and whether it answers."""
    settings = get_settings()
    server = embedded_redis(settings)
    embedded = not settings.redis_url
    running = server.is_running() if embedded else True
    info: dict[str, object] = {
        "mode": "embedded" if embedded else "url",
        "url": redact_url(settings.redis_url) if settings.redis_url else server.url,
        "running": running,
        "pid": server.pid() if embedded else None,
    }
    if running:
        info["ping_ms"] = round(ping(settings) * 1000, 3)
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        console.print(f"{key:>8}: {value}")


@app.command("url")
def url() -> None:
    """Print the Redis URL (starting the embedded server if needed); for redis-cli -u or bots."""
    print(redis_url())
