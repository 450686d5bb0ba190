"""Feature specs with context: causality on real bars, alignment in time, gaps, names, the manifest form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.support.services import SAMPLE_DIR
from trainfarm.shared.data.resample import resample
from trainfarm.shared.timeframes import Timeframe
from trainfarm_client.errors import BarsError
from trainfarm_client.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, add_features
from trainfarm_client.featuresets import CONTEXT_FEATURES, FeatureSetError
from trainfarm_client.featurespec import FeatureSpec, SetRef, bar_duration

H1, H12, D1 = Timeframe.H1, Timeframe.H12, Timeframe.D1
# Four months of the sample: long enough for the 24h context to warm up (48 daily bars), and holding the
# sample's real outage of 2023-03-24.
SPAN = (datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 7, 1, tzinfo=UTC))
SPEC = FeatureSpec(
    symbol="ETH_USDT",
    timeframe="1h",
    max_gap_bars=3,
    sets=(SetRef("core", FEATURE_SPEC_VERSION), SetRef("context", "1")),
    timeframes=("12h", "24h"),
    markets=("BTC_USDT",),
    context_gap_bars={"12h": 3, "24h": 3},
)


@cache
def five_minute(symbol: str) -> pl.DataFrame:
    bars = pl.read_parquet(SAMPLE_DIR / f"{symbol}-5m.parquet")
    return bars.filter(pl.col("date").is_between(*SPAN, closed="left"))


@cache
def series(symbol: str, timeframe: Timeframe) -> pl.DataFrame:
    return resample(five_minute(symbol), timeframe)


def inputs(cut: datetime | None = None) -> dict[tuple[str, str], pl.DataFrame]:
    """Every series the spec reads, with only the bars closed by ``cut`` (all of them without one)."""
    out = {}
    for key, tf in (("ETH_USDT", H1), ("ETH_USDT", H12), ("ETH_USDT", D1), ("BTC_USDT", H1)):
        bars = series(key, tf)
        if cut is not None:
            bars = bars.filter(pl.col("date") + tf.duration <= cut)
        out[(key, tf.value)] = bars
    return out


@cache
def full() -> pl.DataFrame:
    return SPEC.compute(inputs())


def test_names_and_requirements_say_what_the_pack_reads() -> None:
    names = SPEC.names()
    assert names[: len(FEATURE_NAMES)] == FEATURE_NAMES
    assert names[len(FEATURE_NAMES) :] == tuple(
        f"{prefix}.{n}" for prefix in ("12h", "24h", "BTC_USDT") for n in CONTEXT_FEATURES
    )
    assert [(r.symbol, r.timeframe) for r in SPEC.requirements()] == [
        ("ETH_USDT", "1h"),
        ("ETH_USDT", "12h"),
        ("ETH_USDT", "24h"),
        ("BTC_USDT", "1h"),
    ]
    assert FeatureSpec.from_json(SPEC.to_json()) == SPEC
    assert list(full().columns[-len(names) :]) == list(names)


@settings(deadline=None, max_examples=25)
@given(hours=st.integers(min_value=24 * 5, max_value=24 * 115))
def test_every_context_feature_is_causal(hours: int) -> None:
    # Whatever instant the bars stop at (every series cut there, as a bot or a replay point sees them),
    # the rows closed by then are exactly the rows computed from all the bars.
    cut = SPAN[0] + timedelta(hours=hours)
    rows = SPEC.compute(inputs(cut))
    expected = full().filter(pl.col("date") + H1.duration <= cut)
    assert rows.height == expected.height
    assert_frame_equal(rows, expected, check_exact=False, rel_tol=1e-12, abs_tol=0.0)


def _context_features(symbol: str, tf: Timeframe) -> pl.DataFrame:
    return add_features(series(symbol, tf), interval=tf.duration, max_gap_bars=3)


def test_a_row_sees_the_higher_bar_closed_by_its_own_close_never_the_forming_one() -> None:
    rows = full()
    twelve = _context_features("ETH_USDT", H12)
    day = datetime(2023, 5, 10, tzinfo=UTC)
    # The 1h bar of 11:00 closes at 12:00, with the 12h bar of 00:00: it sees that one.
    at_11 = rows.filter(pl.col("date") == day + timedelta(hours=11))["12h.ret_1"][0]
    assert at_11 == twelve.filter(pl.col("date") == day)["ret_1"][0]
    # The 1h bar of 10:00 closes before it: it still sees the 12h bar of the day before, 12:00.
    at_10 = rows.filter(pl.col("date") == day + timedelta(hours=10))["12h.ret_1"][0]
    assert at_10 == twelve.filter(pl.col("date") == day - timedelta(hours=12))["ret_1"][0]


def test_another_market_is_aligned_on_the_same_bar_and_a_missing_bar_stays_missing() -> None:
    btc = _context_features("BTC_USDT", H1)
    rows = full()
    moment = datetime(2023, 5, 10, 15, tzinfo=UTC)
    assert (
        rows.filter(pl.col("date") == moment)["BTC_USDT.ret_3"][0]
        == btc.filter(pl.col("date") == moment)["ret_3"][0]
    )
    # One BTC bar gone: that ETH row has no BTC features (never the bar before's); its neighbours do.
    holed = inputs()
    holed[("BTC_USDT", "1h")] = holed[("BTC_USDT", "1h")].filter(pl.col("date") != moment)
    near = SPEC.compute(holed).filter(
        pl.col("date").is_between(moment - timedelta(hours=1), moment + timedelta(hours=1))
    )
    assert near["BTC_USDT.ret_1"].is_null().to_list() == [False, True, False]
    assert near["ret_1"].null_count() == 0


def test_a_higher_bar_size_outage_is_not_carried_forward_past_its_gap_tolerance() -> None:
    # Five missing 12h bars (more than max_gap_bars = 3): once the last bar before them closed four 12h
    # intervals ago, the rows have no 12h context until the series is back and warm again.
    start = datetime(2023, 6, 1, tzinfo=UTC)
    holed = inputs()
    twelve = holed[("ETH_USDT", "12h")]
    holed[("ETH_USDT", "12h")] = twelve.filter(
        ~pl.col("date").is_between(start, start + timedelta(hours=12 * 4), closed="both")
    )
    rows = SPEC.compute(holed).select("date", "12h.ret_1")
    last_close = start  # the 12h bar of May 31 12:00 closes at June 1 00:00
    within = rows.filter(pl.col("date") + H1.duration < last_close + 4 * H12.duration)
    beyond = rows.filter(
        pl.col("date").is_between(
            last_close + 4 * H12.duration - H1.duration, datetime(2023, 6, 4, tzinfo=UTC)
        )
    )
    assert within.filter(pl.col("date") >= last_close)["12h.ret_1"].null_count() == 0
    assert beyond.height > 0 and beyond["12h.ret_1"].null_count() == beyond.height


def test_a_series_the_spec_reads_must_be_given() -> None:
    given_ = inputs()
    del given_[("BTC_USDT", "1h")]
    with pytest.raises(BarsError, match="no bars of BTC_USDT 1h"):
        SPEC.compute(given_)


def test_a_spec_is_refused_when_it_cannot_be_right() -> None:
    core = (SetRef("core", FEATURE_SPEC_VERSION),)
    with_context = (*core, SetRef("context", "1"))
    with pytest.raises(ValueError, match="need the 'context' set"):
        FeatureSpec("ETH_USDT", "1h", 3, core, markets=("BTC_USDT",))
    with pytest.raises(ValueError, match="not longer than"):
        FeatureSpec("ETH_USDT", "1h", 3, with_context, timeframes=("1h",), context_gap_bars={"1h": 3})
    with pytest.raises(ValueError, match="the market itself"):
        FeatureSpec("ETH_USDT", "1h", 3, with_context, markets=("ETH_USDT",))
    with pytest.raises(FeatureSetError, match="version '9' is needed"):
        FeatureSpec("ETH_USDT", "1h", 3, (SetRef("core", "9"),)).names()
    with pytest.raises(FeatureSetError, match="'nope' is not installed"):
        FeatureSpec("ETH_USDT", "1h", 3, (*core, SetRef("nope", "1"))).names()
    with pytest.raises(FeatureSetError, match="'context' version '2'"):
        FeatureSpec("ETH_USDT", "1h", 3, (*core, SetRef("context", "2")), markets=("BTC_USDT",)).names()


def test_bar_sizes_parse_and_nonsense_is_refused() -> None:
    assert bar_duration("5m") == timedelta(minutes=5)
    assert bar_duration("24h") == bar_duration("1d") == timedelta(days=1)
    for bad in ("0h", "1w", "h", "12"):
        with pytest.raises(ValueError, match="bar size"):
            bar_duration(bad)


def test_a_pack_from_before_feature_sets_reads_as_core_alone() -> None:
    manifest = {
        "symbol": "BTC_USDT",
        "timeframe": "1h",
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "feature_params": {"interval_minutes": 60, "max_gap_bars": 3},
    }
    spec = FeatureSpec.from_manifest(manifest)
    assert spec.core_only and spec.names() == FEATURE_NAMES
    assert [str(r) for r in spec.requirements()] == ["BTC_USDT 1h (500 bars)"]
