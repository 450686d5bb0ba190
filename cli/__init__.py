"""The `farm` command line (Typer + Rich).

Every command exits 0 on success and non-zero on any error; farm errors print one line naming the
problem on stderr (no traceback), because they are about the input, not the program.
"""

from __future__ import annotations

import typer

from trainfarm.cli import bot_cmds, data_cmds, dataset_cmds, promotion_cmds, redis_cmds, registry_cmds
from trainfarm.cli.output import fail, print_json
from trainfarm.shared.connections import redact_url
from trainfarm.shared.errors import FarmError
from trainfarm.shared.settings import get_settings

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
bot_cmds.register(app)


@app.command("config")
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


def run_app() -> None:
    """Run the app, turning farm errors into one line and exit status 1."""
    try:
        app()
    except FarmError as exc:
        fail(str(exc))
        raise SystemExit(1) from None


def main() -> None:
    """Entry point of the Celery-free CLI (`python -m trainfarm.cli`); `farm` adds the Celery commands."""
    run_app()
