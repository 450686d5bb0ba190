"""How the CLI prints: Rich tables for people, plain JSON arrays for programs, errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (CI logs, `| less`) has no terminal width; 150 columns keeps tables on one line each.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 150)


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(payload: object) -> None:
    """Write ``payload`` as JSON to stdout, unstyled, so `| jq` and json.loads work."""
    sys.stdout.write(json.dumps(payload, default=_default, indent=2) + "\n")
    sys.stdout.flush()


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A Rich table; numbers right-aligned."""
    table = Table(title=title, title_justify="left")
    materialised = [list(r) for r in rows]
    for i, name in enumerate(columns):
        numeric = bool(materialised) and all(isinstance(r[i], int | float) for r in materialised)
        table.add_column(name, justify="right" if numeric else "left")
    for row in materialised:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def fail(message: str) -> None:
    """Print an error line on stderr (the caller exits non-zero)."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
