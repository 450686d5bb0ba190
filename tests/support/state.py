"""Before/after snapshots of a farm's durable state, for tests that must prove a refusal changed nothing.

A farm's state is three things: the bar store (every file under ``store_dir``), the registry (every row of
every table) and the artifact root (every file under ``artifacts_dir``: packs, snapshots, run folders,
CHAMPION pointers). Files are recorded by relative path and sha256, folders by name, so a stray empty
folder counts too. The registry is dumped through SQLAlchemy, table by table, rows sorted, rather than
hashed as a file: SQLite's WAL and checkpoints change the file's bytes without changing its content, and
the same dump works on PostgreSQL.

A plain helper module (no fixtures): ``with unchanged(settings): ...`` fails with the paths, tables and
rows that differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from trainfarm.shared.settings import FarmSettings, get_settings

#: One part of the state: key (a relative path, or a table name) -> its content's digest or rows.
Part = dict[str, object]
State = dict[str, Part]


def tree_state(root: Path) -> Part:
    """Every entry under ``root``: files as their sha256, folders as "dir", links as their target."""
    if not root.exists():
        return {}
    state: Part = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[key] = f"link -> {path.readlink()}"
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def registry_state(url: str) -> Part:
    """Every table of the registry at ``url`` with its rows, each row as text, sorted (deterministic)."""
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        state: Part = {}
        with engine.connect() as conn:
            for name, table in sorted(metadata.tables.items()):
                rows = conn.execute(sa.select(table)).all()
                state[name] = sorted(repr(tuple(row)) for row in rows)
        return state
    finally:
        engine.dispose()


def farm_state(settings: FarmSettings | None = None) -> State:
    """The bar store, the registry and the artifact root of ``settings`` (default: the current ones)."""
    settings = settings or get_settings()
    return {
        "store": tree_state(settings.store_dir),
        "registry": registry_state(settings.database),
        "artifacts": tree_state(settings.artifacts_dir),
    }


def differences(before: State, after: State) -> list[str]:
    """What differs between two states, one line per changed file, folder or table."""
    lines = []
    for part in sorted(before.keys() | after.keys()):
        old, new = before.get(part, {}), after.get(part, {})
        for key in sorted(old.keys() | new.keys()):
            if key not in new:
                lines.append(f"{part}: {key} removed")
            elif key not in old:
                lines.append(f"{part}: {key} added")
            elif old[key] != new[key]:
                lines.append(f"{part}: {key} changed")
    return lines


@contextmanager
def unchanged(settings: FarmSettings | None = None) -> Iterator[State]:
    """Assert that the block leaves the farm's state as it found it.

    Yields the state taken before the block, so a test can also assert what the farm held. Checked when
    the block ends normally (refusals are caught inside it); an unexpected error fails the test anyway.
    """
    before = farm_state(settings)
    yield before
    changed = differences(before, farm_state(settings))
    assert not changed, "the refused input changed the farm:\n" + "\n".join(changed)
