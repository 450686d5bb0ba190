"""The config file: defaults live in one place, the shipped farm.toml documents exactly them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from trainfarm.shared.config import FarmConfig, load_config
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.timeframes import Timeframe

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_shipped_farm_toml_equals_the_defaults() -> None:
    assert load_config(REPO_ROOT / "farm.toml") == FarmConfig()


def test_defaults_cover_every_timeframe_with_a_positive_horizon() -> None:
    cfg = FarmConfig()
    assert set(cfg.timeframes) == set(Timeframe)
    for tf in Timeframe:
        params = cfg.params(tf)
        assert params.label_horizon >= 1
        assert params.training_window > params.freshness_limit


def test_partial_override_keeps_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text(
        '[universe]\nsymbols = ["btc/usdt", "SOL-USDT"]\n[timeframes.1d]\nlabel_horizon = 3\n'
        "[timeframes.1h.gates]\nmin_direction_improvement = 0.02\n"
    )
    cfg = load_config(path)
    assert cfg.universe.symbols == ("BTC_USDT", "SOL_USDT")
    assert cfg.params(Timeframe.D1).label_horizon == 3  # "1d" is the 24h timeframe
    assert cfg.params(Timeframe.D1).training_window == FarmConfig().params(Timeframe.D1).training_window
    assert cfg.params(Timeframe.H1).gates.min_direction_improvement == 0.02
    assert cfg.params(Timeframe.H1).gates.min_sharpe_fraction == 0.8
    assert cfg.config_hash() != FarmConfig().config_hash()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[timeframes.2h]\nlabel_horizon = 1\n", "unknown timeframe '2h'"),
        ("[timeframes.1h]\nlabel_horizon = 0\n", "timeframes.1h.label_horizon"),
        ('[timeframes.1h]\ntraining_window = "ninety days"\n', "bad duration 'ninety days'"),
        ("[timeframes.1h]\nlabel_horizn = 3\n", "label_horizn"),
        ('[universe]\nsymbols = ["../etc"]\n', "invalid symbol '../etc'"),
        ("[splits]\ncalibration_fraction = 0.5\ntest_fraction = 0.4\n", "at least 20%"),
        ("[universe\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r".*") as err:
        load_config(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_task_time_limit_leaves_room_for_the_soft_limit(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text('[training]\ntask_time_limit = "3s"\n')
    with pytest.raises(ConfigError, match="at least 10s"):
        load_config(path)


def test_durations_are_timedeltas_written_back_as_text() -> None:
    cfg = FarmConfig()
    assert cfg.params(Timeframe.H1).training_window == timedelta(days=365)
    assert cfg.params(Timeframe.H12).meta_cadence is None
    dumped = cfg.model_dump(mode="json")  # what `farm config` prints and the config hash covers
    assert dumped["timeframes"]["1h"]["training_window"] == "365d"
    assert dumped["timeframes"]["12h"]["meta_cadence"] == "off"
    assert dumped["training"]["visibility_timeout"] is None
    assert dumped["alerts"]["stale_bot_after"] == "1m"
    assert FarmConfig.model_validate(dumped) == cfg


def test_a_duration_key_outside_the_timeframes_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text('[alerts.webhook]\ntimeout = "soon"\n')
    with pytest.raises(ConfigError, match=r"alerts\.webhook\.timeout: bad duration 'soon'"):
        load_config(path)
