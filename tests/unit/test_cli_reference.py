"""docs/cli.md is the `farm` command reference, generated from the Typer app: it must say what the app does.

The reference is rendered by Typer's own `typer ... utils docs` command (no hand-written renderer). Here
that same command runs in this process (Typer's CliRunner, no subprocess) into a temporary file, which
must equal the committed docs/cli.md byte for byte. The output does not depend on the terminal's width
(Typer renders help text without wrapping); COLUMNS is pinned anyway.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer.cli
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = REPO_ROOT / "docs" / "cli.md"
TITLE = "farm command reference (generated from the Typer app: do not edit)"
#: The arguments of `typer` that write the reference (what `make docs` runs, from the repository root).
DOCS_ARGS = ["--app", "app", "trainfarm.cli.app", "utils", "docs", "--name", "farm", "--title", TITLE]
#: The shell command, for the failure message.
REGENERATE = shlex.join([".venv/bin/typer", *DOCS_ARGS, "--output", "docs/cli.md"])


def test_cli_reference_matches_the_app(tmp_path: Path) -> None:
    generated = tmp_path / "cli.md"
    result = CliRunner().invoke(
        typer.cli.app, [*DOCS_ARGS, "--output", str(generated)], env={"COLUMNS": "80", "LINES": "24"}
    )
    assert result.exit_code == 0, f"typer utils docs failed: {result.output}"
    assert REFERENCE.is_file(), f"docs/cli.md is missing: regenerate it with `make docs` ({REGENERATE})"
    assert generated.read_bytes() == REFERENCE.read_bytes(), (
        f"docs/cli.md differs from the `farm` app's commands: regenerate it with `make docs` ({REGENERATE})"
    )
