"""Replay fixtures: one farm (a real worker on the embedded Redis) with two synthetic markets, and the
replay of each, shared by the package's tests (a replay trains a dozen runs: it is built once).

The planted market's daily cycle flips sign halfway (day 65 of 130); the 1h training window is 30 days
(the test config's), so that retrained models can learn the new regime within the replay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.support.farm import Farm, start_farm
from trainfarm.cli.app import app
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import random_walk_bars, regime_flip_bars

START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 130
FLIP_DAY = 65
FLIP, WALK = "FLIP_USDT", "WALK_USDT"
TF = "1h"
CADENCE = "8d"
#: The flip market's replay: 12 retrain points from day 35 (the first model has a whole 30-day window of the
#: first regime), the flip between the 4th and the 5th.
FLIP_PERIOD = (START + timedelta(days=35), START + timedelta(days=DAYS - 2))
#: The random walk's: 4 retrain points.
WALK_DAYS = 54
WALK_PERIOD = (START + timedelta(days=20), START + timedelta(days=WALK_DAYS - 2))
CONFIG = '[timeframes.1h]\ntraining_window = "30d"\n'


@dataclass(frozen=True)
class Replayed:
    """A finished replay as `farm replay ... --json` printed it."""

    out: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.out["id"])

    @property
    def policies(self) -> dict[str, dict[str, Any]]:
        return dict(self.out["policies"])

    def scores(self) -> pl.DataFrame:
        return pl.read_parquet(self.out["scores"])


def replay_args(symbol: str, period: tuple[datetime, datetime]) -> list[str]:
    start, end = (at.strftime("%Y-%m-%dT%H:%M") for at in period)
    return [symbol, "-t", TF, "--start", start, "--end", end, "--cadence", CADENCE]


def run_replay(symbol: str, period: tuple[datetime, datetime]) -> Replayed:
    result = CliRunner().invoke(app, ["replay", *replay_args(symbol, period), "--json"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return Replayed(json.loads(result.stdout))


def import_bars(frame: pl.DataFrame, symbol: str, folder: Path) -> None:
    path = folder / f"{symbol}.parquet"
    frame.write_parquet(path)
    open_store().import_file(path, symbol)


@pytest.fixture(scope="package")
def replay_farm(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("replay")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for farm in start_farm(tmp, monkeypatch, sample_dir, "embedded", CONFIG):
            flip = regime_flip_bars(DAYS * 288, 11, strength=0.25, flip_at=FLIP_DAY / DAYS, start=START)
            import_bars(flip, FLIP, tmp)
            import_bars(random_walk_bars(WALK_DAYS * 288, 12, start=START), WALK, tmp)
            yield farm


@pytest.fixture(scope="package")
def flip_replay(replay_farm: Farm) -> Replayed:
    return run_replay(FLIP, FLIP_PERIOD)


@pytest.fixture(scope="package")
def walk_replay(replay_farm: Farm) -> Replayed:
    return run_replay(WALK, WALK_PERIOD)
