"""`farm health <role>`: is this host's worker, beat, dashboard, Flower or pack server up? (Container
healthchecks call it; exit 0 when it answers, 1 naming what did not.)"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Annotated

import typer

from trainfarm.cli.output import console, fail
from trainfarm.shared.settings import get_settings


def _http_ok(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if 200 <= response.status < 300 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"


def _bot_problem(bot_id: str) -> str | None:
    """Why the bot ``bot_id`` is not healthy: no heartbeat, an old one, or an error it reports."""
    from datetime import UTC, datetime

    from trainfarm.shared.connections import redis_connection
    from trainfarm.workers.status import STALE_BOT_S
    from trainfarm_client.contract import bot_key

    with redis_connection(get_settings()) as client:
        fields = {str(k): str(v) for k, v in client.hgetall(bot_key(bot_id)).items()}
    if not fields.get("seen_at"):
        return f"bot {bot_id} has no heartbeat"
    age = (datetime.now(UTC) - datetime.fromisoformat(fields["seen_at"])).total_seconds()
    if age > STALE_BOT_S:
        return f"bot {bot_id}: last heartbeat {age:.0f} s ago"
    return None


def health(
    role: Annotated[str, typer.Argument(help="worker, beat, bot, web, flower or packs")],
    node: Annotated[
        str | None,
        typer.Option("--node", help="worker: its node name, e.g. cpu@$HOSTNAME; bot: its --bot-id"),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait for an answer")] = 5.0,
) -> None:
    """Exit 0 when this host's ROLE answers: a worker its ping, beat holding the schedule's lock, a bot a
    fresh heartbeat, the dashboard, Flower or the pack server their health URL on the loopback."""
    settings = get_settings()
    problem: str | None
    if role == "worker":
        if not node:
            raise typer.BadParameter("worker: --node is needed (the name it was started with, -n)")
        from trainfarm.workers.celery_app import app

        answers = app.control.ping(destination=[node], timeout=timeout)
        problem = None if answers else f"worker {node} did not answer a ping within {timeout:g} s"
    elif role == "beat":
        from trainfarm.beat.schedule import KEY_PREFIX
        from trainfarm.shared.connections import redis_connection

        with redis_connection(settings) as client:
            held = client.exists(KEY_PREFIX + ":lock")
        problem = None if held else "no beat holds the schedule's lock"
    elif role == "bot":
        if not node:
            raise typer.BadParameter("bot: --node is needed (its --bot-id)")
        problem = _bot_problem(node)
    elif role == "web":
        problem = _http_ok(f"http://127.0.0.1:{settings.web_port}/healthz", timeout)
    elif role == "flower":
        problem = _http_ok(f"http://127.0.0.1:{settings.flower_port}/healthcheck", timeout)
    elif role == "packs":
        problem = _http_ok(f"http://127.0.0.1:{settings.pack_server_port}/healthz", timeout)
    else:
        raise typer.BadParameter(f"unknown role {role!r}: worker, beat, bot, web, flower or packs")
    if problem:
        fail(problem)
        raise typer.Exit(1)
    console.print(f"{role}: ok")


def register(app: typer.Typer) -> None:
    """Add `health` to the main `farm` app."""
    app.command("health")(health)
