"""Feature sets: every installed set is causal on real bars; sets are found (or refused) by entry point."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.support.services import SAMPLE_DIR
from trainfarm_client.features import segment_expr
from trainfarm_client.featuresets import (
    CORE,
    ENTRY_POINT_GROUP,
    ExpressionSet,
    FeatureSet,
    FeatureSetError,
    find_set,
    installed_sets,
    refresh_installed_sets,
)

FIVE_MIN = timedelta(minutes=5)
# Ten days of real 5m bars around the 16-bar outage of 2023-03-24 14:00 (a new segment starts there).
SLICE = (datetime(2023, 3, 20, tzinfo=UTC), datetime(2023, 3, 30, tzinfo=UTC))


@cache
def bars() -> pl.DataFrame:
    whole = pl.read_parquet(SAMPLE_DIR / "BTC_USDT-5m.parquet")
    return whole.filter(pl.col("date").is_between(*SLICE, closed="left"))


def computed(feature_set: FeatureSet, rows: pl.DataFrame) -> pl.DataFrame:
    framed = rows.with_columns(segment_expr(FIVE_MIN, 3))
    return feature_set.add(framed, interval=FIVE_MIN, max_gap_bars=3).select("date", *feature_set.names)


def test_the_example_set_is_installed_beside_core() -> None:
    # make installs examples/feature-set; the tests train and serve with it.
    assert {CORE, "trend_efficiency"} <= set(installed_sets())
    assert find_set("trend_efficiency", "1").names == ("ret_48", "efficiency_24", "up_share_24")


@pytest.mark.parametrize("name", sorted(installed_sets()))
@settings(deadline=None, max_examples=15)
@given(k=st.integers(min_value=1, max_value=2880))
def test_every_installed_set_is_causal_on_real_bars(name: str, k: int) -> None:
    # The farm's contract for every set, its users' included: appending bars never changes an earlier row.
    feature_set = installed_sets()[name]
    whole = computed(feature_set, bars())
    prefix = computed(feature_set, bars().head(k))
    assert_frame_equal(prefix, whole.head(k), check_exact=False, rel_tol=1e-12, abs_tol=0.0)


def test_the_property_sees_a_set_that_looks_ahead() -> None:
    leak = ExpressionSet(
        "leak",
        "1",
        ("next_close",),
        lambda _: [pl.col("close").shift(-1).over("segment").alias("next_close")],
    )
    whole, prefix = computed(leak, bars()), computed(leak, bars().head(100))
    assert not prefix.equals(whole.head(100))


@pytest.mark.parametrize("name", sorted(installed_sets()))
def test_every_installed_set_warms_up_within_its_warmup_and_is_finite_after(name: str) -> None:
    feature_set = installed_sets()[name]
    frame = computed(feature_set, bars()).with_columns(segment_expr(FIVE_MIN, 3))
    assert frame["segment"].n_unique() == 2  # the outage splits the slice
    for _, segment in frame.group_by("segment", maintain_order=True):
        warm = segment.slice(feature_set.warmup)
        assert warm.select(feature_set.names).null_count().sum_horizontal().item() == 0
        assert all(warm[n].is_finite().all() for n in feature_set.names)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path holding an installed distribution's metadata with broken entry points."""
    info = tmp_path / "broken_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "missing_module = no_such_module_anywhere:SET\n"
        "not_a_set = json:dumps\n"
        "core = json:dumps\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    refresh_installed_sets()
    yield tmp_path
    monkeypatch.undo()
    refresh_installed_sets()


def test_a_broken_plugin_is_left_out_with_its_reason_and_the_others_still_load(plugins: Path) -> None:
    sets = installed_sets()
    assert "trend_efficiency" in sets and sets[CORE] is find_set(CORE, "1")  # core is never replaced
    with pytest.raises(FeatureSetError, match="'missing_module' failed to load: ModuleNotFoundError"):
        find_set("missing_module", "1")
    with pytest.raises(FeatureSetError, match="is not a FeatureSet named 'not_a_set'"):
        find_set("not_a_set", "1")
    with pytest.raises(FeatureSetError, match="'absent' is not installed here"):
        find_set("absent", "1")
