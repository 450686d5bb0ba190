"""The layering rule (docs/architecture.md, "Layers"): what each folder may import, read from the sources.

shared/ is the domain and its storage: no Celery, no CLI, no process management (the one exception is the
embedded Redis server in shared/connections.py, which every farm process shares). workers/ is what runs
inside Celery and the periodic checks; beat/ is the schedule; web/ the dashboard; cli/ is the top: commands
and the processes they start. The bot client (trainfarm_client) is its own distribution and imports no farm
module at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Folder -> module prefixes it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "shared": (
        "celery", "kombu", "redbeat", "flower", "subprocess", "signal", "multiprocessing",
        "trainfarm.workers", "trainfarm.beat", "trainfarm.cli", "trainfarm.web",
    ),
    "workers": ("subprocess", "trainfarm.beat", "trainfarm.cli", "trainfarm.web"),
    "beat": ("subprocess", "trainfarm.cli", "trainfarm.web"),
    "web": ("subprocess", "trainfarm.beat", "trainfarm.cli"),
    "trainfarm_client": ("trainfarm.", "celery", "sqlalchemy"),
}  # fmt: skip

#: Files allowed one forbidden import, and why.
EXCEPTIONS: dict[str, set[str]] = {
    # The embedded Redis server is started (and stopped) by whichever farm process needs it first.
    "shared/connections.py": {"subprocess", "signal"},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (``from x import y`` counts as ``x`` and ``x.y``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(folder: str) -> list[str]:
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        allowed = EXCEPTIONS.get(rel, set())
        for name in sorted(imported_modules(path)):
            for prefix in FORBIDDEN[folder]:
                hit = name == prefix.rstrip(".") or name.startswith(prefix.rstrip(".") + ".")
                if hit and prefix not in allowed:
                    found.append(f"{rel} imports {name}")
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_only_what_its_layer_may(folder: str) -> None:
    assert violations(folder) == []


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The scanner itself: a Celery import and a CLI import are both caught, relative imports are not names.
    source = tmp_path / "m.py"
    source.write_text("import celery.app\nfrom trainfarm.cli import app\nfrom . import sibling\n")
    assert imported_modules(source) == {"celery.app", "trainfarm.cli", "trainfarm.cli.app"}


def test_no_two_modules_share_a_name_across_the_domain_and_the_workers() -> None:
    # A same-name pair (shared/x.py beside workers/x.py) cannot be told apart from an import line.
    def stems(folder: str) -> set[str]:
        return {p.stem for p in (REPO / folder).rglob("*.py") if p.stem != "__init__"}

    assert stems("shared") & stems("workers") == set()
