"""Benchmark results as JSON: ``docs/performance.json``, one entry per benchmark, with the machine it ran on.

Each benchmark's ``main()`` returns a JSON-safe dict of its figures; :func:`record` stores it under the
benchmark's name (replacing that benchmark's previous entry, keeping the others), with when it ran and on
what machine, so docs/PERFORMANCE.md can cite figures and where they came from.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

from trainfarm.shared.atomicio import atomic_write_text
from trainfarm.shared.zoo.threads import available_cores

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "performance.json"
_LIBRARIES = ("celery", "redis", "lightgbm", "xgboost", "catboost", "scikit-learn", "polars", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    libraries = {}
    for name in _LIBRARIES:
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            libraries[name] = "absent"
    return {
        "cpu": _cpu_model(),
        "cores_available": available_cores(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "libraries": libraries,
    }


def record(name: str, figures: dict[str, object], path: Path = RESULTS) -> None:
    """Store ``figures`` as benchmark ``name``'s latest result in ``path`` (atomically)."""
    try:
        results = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        results = {}
    results[name] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
    }
    atomic_write_text(path, json.dumps(results, indent=2, sort_keys=True) + "\n")
