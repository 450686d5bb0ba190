"""The composition root of the `farm` command line: every command group is attached here, and only here.

Every command exits 0 on success and non-zero on any error; farm errors, and Redis errors from the client
library, print one line naming the problem on stderr (no traceback), because they are about the input or
the set-up, not the program.
"""

from __future__ import annotations

import redis
import typer

from trainfarm.cli import (
    bot_cmds,
    data_cmds,
    dataset_cmds,
    demo,
    flower_cmds,
    health_cmds,
    pack_cmds,
    process_cmds,
    promotion_cmds,
    redis_cmds,
    registry_cmds,
    replay_cmds,
    retrain_cmds,
    schedule_cmds,
    shadow_cmds,
    status_cmds,
    trigger_cmds,
    up,
    web_cmds,
)
from trainfarm.cli.output import fail, print_json
from trainfarm.shared.connections import redact_url, redis_url
from trainfarm.shared.errors import FarmError
from trainfarm.shared.settings import get_settings


def config() -> None:
    """Print the settings and the validated config in force as JSON (defaults filled in)."""
    settings = get_settings()
    cfg = settings.load_config()
    print_json(
        {
            "settings": settings.model_dump(mode="json", exclude={"redis_url", "database_url"})
            | {
                "redis": "url" if settings.redis_url else "embedded",
                "database": redact_url(settings.database),
            },
            "config_file": str(settings.config_path() or ""),
            "config_hash": cfg.config_hash(),
            "config": cfg.model_dump(mode="json"),
        }
    )


def build_app() -> typer.Typer:
    """The `farm` app with every command group attached."""
    app = typer.Typer(
        name="farm",
        help="trainfarm: a distributed retraining farm for trading models.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    app.add_typer(data_cmds.app, name="data")
    app.add_typer(dataset_cmds.app, name="dataset")
    app.add_typer(redis_cmds.app, name="redis")
    registry_cmds.register(app)
    promotion_cmds.register(app)
    shadow_cmds.register(app)
    bot_cmds.register(app)
    retrain_cmds.register(app)
    process_cmds.register(app)
    demo.register(app)
    up.register(app)
    trigger_cmds.register(app)
    schedule_cmds.register(app)
    status_cmds.register(app)
    flower_cmds.register(app)
    web_cmds.register(app)
    pack_cmds.register(app)
    replay_cmds.register(app)
    health_cmds.register(app)
    app.command("config")(config)
    return app


#: The composed app (what `farm` runs; tests drive it with Typer's CliRunner).
app = build_app()


def main() -> None:
    """Console-script entry point (`farm`): run the app, turning expected errors into one line, exit 1."""
    try:
        app()
    except FarmError as exc:
        fail(str(exc))
        raise SystemExit(1) from None
    except redis.RedisError as exc:
        fail(f"Redis at {_redis_where()}: {type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


def _redis_where() -> str:
    try:
        return redact_url(redis_url())
    except FarmError:
        return "(unknown address)"
