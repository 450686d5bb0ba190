"""Fixtures for the unit tests: the settings' registry and small packs registered in it (``registry``,
``make_version``: promotion and reconciliation). The session's real pack (``pack``) is in
``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.clock import StepClock
from trainfarm.shared.packs.artifacts import pack_dir, write_pack
from trainfarm.shared.registry import Registry, dispose_engine
from trainfarm.shared.settings import FarmSettings


@pytest.fixture
def registry(settings: FarmSettings) -> Iterator[Registry]:
    """The settings' registry (SQLite under the farm home), with a clock stepping one second per read."""
    with Registry.open(settings.database, clock=StepClock()) as reg:
        yield reg
    dispose_engine(settings.database)


@pytest.fixture
def make_version(registry: Registry, settings: FarmSettings) -> Callable[..., str]:
    """Write a small real pack and register it as a candidate; ids ``v01``, ``v02``, ... (oldest first)."""
    count = 0

    def make(symbol: str = "BTC_USDT", timeframe: str = "1h") -> str:
        nonlocal count
        count += 1
        vid = f"v{count:02d}"
        manifest = {"version": vid, "symbol": symbol, "timeframe": timeframe, "p_star": 0.4}
        files: dict[str, Path | bytes] = {
            "meta/meta.txt": f"model {vid}\n".encode(),
            "calibrator.json": b"{}",
        }
        pack = write_pack(pack_dir(settings.artifacts_dir, symbol, timeframe, vid), files, manifest)
        run = registry.runs.create(symbol, timeframe, "test").id
        registry.versions.add(
            vid, symbol, timeframe, run, metrics={}, path=str(pack.path), manifest_sha256=pack.manifest_sha256
        )
        return vid

    return make
