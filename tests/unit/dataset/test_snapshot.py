"""Dataset snapshots on real bars: deterministic hash, purged splits, integrity on read."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.dataset.snapshot import (
    build_frame,
    build_snapshot,
    content_hash,
    list_snapshots,
    load_snapshot,
)
from trainfarm.shared.errors import DataError, DatasetError
from trainfarm.shared.timeframes import Timeframe


@pytest.fixture(scope="module")
def btc(sample_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")


def test_identical_inputs_give_identical_hash_and_bytes(btc: pl.DataFrame, tmp_path: Path) -> None:
    cfg = FarmConfig()
    a = build_snapshot(btc, symbol="BTC_USDT", timeframe=Timeframe.H1, config=cfg, root=tmp_path / "a")
    b = build_snapshot(
        btc.clone(), symbol="BTC_USDT", timeframe=Timeframe.H1, config=cfg, root=tmp_path / "b"
    )
    assert a.content_hash == b.content_hash
    assert a.file_sha256 == b.file_sha256
    assert Path(a.path).name == f"{a.content_hash}.parquet"
    # Rebuilding into the same root reuses the snapshot.
    again = build_snapshot(btc, symbol="BTC_USDT", timeframe=Timeframe.H1, config=cfg, root=tmp_path / "a")
    assert again == a
    assert [s.content_hash for s in list_snapshots(tmp_path / "a")] == [a.content_hash]


def test_changed_inputs_change_the_hash(btc: pl.DataFrame, tmp_path: Path) -> None:
    cfg = FarmConfig()
    base = build_snapshot(btc, symbol="BTC_USDT", timeframe=Timeframe.H12, config=cfg, root=tmp_path)
    tweaked_cfg = FarmConfig.model_validate({"timeframes": {"12h": {"label_threshold": 0.7}}})
    tweaked = build_snapshot(
        btc, symbol="BTC_USDT", timeframe=Timeframe.H12, config=tweaked_cfg, root=tmp_path
    )
    assert tweaked.content_hash != base.content_hash
    one_bar_less = build_snapshot(
        btc.head(btc.height - 288), symbol="BTC_USDT", timeframe=Timeframe.H12, config=cfg, root=tmp_path
    )
    assert one_bar_less.content_hash != base.content_hash


def test_hash_is_over_values_not_column_order_of_equal_frames() -> None:
    df = pl.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]})
    assert content_hash(df, {"r": 1}) == content_hash(df.clone(), {"r": 1})
    assert content_hash(df, {"r": 1}) != content_hash(df, {"r": 2})
    assert content_hash(df, {}) != content_hash(df.with_columns(a=pl.Series([1.0, 2.5])), {})


def test_frame_has_features_labels_and_purged_splits(btc: pl.DataFrame) -> None:
    cfg = FarmConfig()
    frame = build_frame(btc, Timeframe.H1, cfg)
    assert frame.select(FEATURE_NAMES).null_count().sum_horizontal().item() == 0
    assert set(frame["label"].unique().to_list()) == {0, 1, 2}
    assert frame["date"].is_sorted()
    parts = {s: frame.filter(pl.col("split") == s) for s in ("train", "calibration", "test")}
    assert all(p.height > 0 for p in parts.values())
    # Purge: no training label reaches the calibration split, no calibration label reaches test.
    assert parts["train"]["label_end"].max() < parts["calibration"]["date"].min()  # type: ignore[operator]
    assert parts["calibration"]["label_end"].max() < parts["test"]["date"].min()  # type: ignore[operator]
    horizon = cfg.params(Timeframe.H1).label_horizon * Timeframe.H1.duration
    assert parts["calibration"]["date"].min() - parts["train"]["date"].max() >= horizon  # type: ignore[operator]


def test_training_window_limits_history(btc: pl.DataFrame) -> None:
    cfg = FarmConfig.model_validate({"timeframes": {"1h": {"training_window": "30d"}}})
    frame = build_frame(btc, Timeframe.H1, cfg)
    span = frame["date"].max() - frame["date"].min()  # type: ignore[operator]
    assert span.days <= 30


def test_tampered_snapshot_is_refused(btc: pl.DataFrame, tmp_path: Path) -> None:
    snap = build_snapshot(btc, symbol="BTC_USDT", timeframe=Timeframe.D1, config=FarmConfig(), root=tmp_path)
    assert snap.frame().height == snap.rows
    path = Path(snap.path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="snapshot file changed"):
        snap.frame()
    meta = path.with_suffix(".json")
    assert load_snapshot(meta).content_hash == snap.content_hash


def test_too_little_data_is_a_dataset_error(btc: pl.DataFrame) -> None:
    with pytest.raises(DatasetError):
        build_frame(btc.head(288 * 20), Timeframe.D1, FarmConfig())


def test_no_label_comes_from_a_bucket_with_missing_5m_bars(sample_dir: Path) -> None:
    """An hour with 5m bars missing inside it is neither labelled nor the end of another row's label."""
    from trainfarm.shared.config import FarmConfig
    from trainfarm.shared.data.resample import resample
    from trainfarm.shared.dataset.snapshot import build_frame
    from trainfarm.shared.timeframes import parse_timeframe

    bars = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    tf, config = parse_timeframe("1h"), FarmConfig()
    hour = resample(bars, tf)["date"][-400]
    hole = (pl.col("date") >= hour + timedelta(minutes=20)) & (pl.col("date") < hour + timedelta(minutes=30))
    holed = bars.filter(~hole)
    assert resample(holed, tf).filter(pl.col("date") == hour)["bars"].item() == 10
    frame = build_frame(holed, tf, config)
    assert hour not in frame["date"].to_list()  # its own label is gone
    assert hour not in frame["label_end"].to_list()  # and no label ends on it
    whole = build_frame(bars, tf, config)
    assert hour in whole["date"].to_list() and hour in whole["label_end"].to_list()
