"""Sections of a report that one benchmark writes and the others keep: ``<!-- bench NAME -->`` ...
``<!-- /bench NAME -->``.

docs/QUALITY.md is rewritten by ``bench quality`` and holds sections of ``bench gates``, ``gate-power`` and
``context``; docs/REPLAY.md is rewritten by ``bench replay`` and holds ``replay-context``'s. A benchmark
that writes a whole report appends :func:`kept_sections` of the old one; one that writes a section calls
:func:`write_section`.
"""

from __future__ import annotations

import re
from pathlib import Path

_ANY = re.compile(r"<!-- bench ([\w-]+) -->.*?<!-- /bench \1 -->\n?", re.DOTALL)


def _pattern(name: str) -> re.Pattern[str]:
    begin, end = f"<!-- bench {name} -->", f"<!-- /bench {name} -->"
    return re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace the section ``name`` of ``path`` with ``body`` (appended when absent)."""
    text = f"<!-- bench {name} -->\n{body.rstrip()}\n<!-- /bench {name} -->\n"
    current = path.read_text() if path.exists() else ""
    pattern = _pattern(name)
    if pattern.search(current):
        path.write_text(pattern.sub(lambda _: text, current))
    else:
        path.write_text(current.rstrip("\n") + "\n\n" + text)


def kept_sections(path: Path) -> str:
    """Every benchmark's section of ``path`` as it stands ("" when none or no file)."""
    current = path.read_text() if path.exists() else ""
    return "".join(m.group(0) for m in _ANY.finditer(current))
