"""Integration fixtures: a farm home with real worker processes on a real Redis (tests/support/farm.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import Farm, start_farm


@pytest.fixture(params=["embedded", "system"])
def farm(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path
) -> Iterator[Farm]:
    yield from start_farm(tmp_path, monkeypatch, sample_dir, request.param)


@pytest.fixture
def failing_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    extra = '[training.model_params.xgb_shallow]\nobjective = "no-such-objective"\n'
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", extra)
