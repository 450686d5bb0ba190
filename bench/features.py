"""`python -m bench features`: how fast the feature pipeline runs on real bars, and against pandas.

Two measurements:

* :func:`add_features` over 400k real 5m bars (the farm's biggest input), over the bundled sample (105k 5m
  bars, a bot's whole history) and over the sample resampled to 1h;
* the whole feature and label pipeline (:func:`add_features` then :func:`add_labels`, with the 5m label
  parameters of the default config) on the 400k bars against :mod:`bench.pandas_features`, the same
  features and labels written with plain pandas: bars per second of each and their ratio, against the
  target of :data:`TARGET_RATIO` (docs/PERFORMANCE.md). Before timing, the two outputs are compared on
  every feature and label column (nulls in the same places, floats within 1e-9, segments, labels and label
  ends exactly); a difference stops the benchmark, naming the column. Each side starts from a frame of its own
  library: converting the bars to pandas is not timed.

The tests check the values; only this measures how fast.
"""

from __future__ import annotations

from importlib.metadata import version

import pandas as pd
import polars as pl

from bench import pandas_features
from bench.bars import rate_row, real_bars, timed
from trainfarm.cli.demo.sample_data import SAMPLE_DIR
from trainfarm.cli.output import console, print_table
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset.features import add_features
from trainfarm.shared.dataset.labels import add_labels
from trainfarm.shared.timeframes import Timeframe

MAX_GAP_BARS = 3
#: The target (docs/PERFORMANCE.md): the polars pipeline processes bars this many times faster than pandas.
TARGET_RATIO = 5.0

_RATE_COLUMNS = ("bars", "rows", "best ms", "median ms", "rows/s")


def _add_features_rates(bars: pl.DataFrame) -> list[dict[str, object]]:
    """The add_features table (400k real 5m bars, the sample at 5m and at 1h), printed and returned."""
    sample = read_bars(SAMPLE_DIR / "BTC_USDT-5m.parquet")
    hourly = resample(sample, Timeframe.H1)
    rows = []
    for name, frame, tf in (
        ("400k real 5m", bars, Timeframe.M5),
        ("sample 5m", sample, Timeframe.M5),
        ("sample 1h", hourly, Timeframe.H1),
    ):

        def work(frame: pl.DataFrame = frame, tf: Timeframe = tf) -> None:
            add_features(frame, interval=tf.duration, max_gap_bars=MAX_GAP_BARS)

        rows.append(rate_row(name, frame.height, work))
    print_table("add_features on real bars", _RATE_COLUMNS, rows)
    return [dict(zip(("bars", "rows", "best_ms", "median_ms", "rows_per_s"), r, strict=True)) for r in rows]


def _rate(rows: int, best: float, median: float) -> dict[str, float]:
    return {"best_s": round(best, 4), "median_s": round(median, 4), "bars_per_s": round(rows / best)}


def compare_with_pandas(bars: pl.DataFrame) -> dict[str, object]:
    """Check the pandas reference equals the polars pipeline on ``bars``, then time both; print and return.

    Raises :class:`RuntimeError` naming every column where the two differ (then nothing is timed: a
    speed-up over a reference that computes something else means nothing).
    """
    params = FarmConfig().params(Timeframe.M5)
    interval = Timeframe.M5.duration
    pandas_bars = bars.to_pandas()
    n = bars.height

    def run_polars() -> pl.DataFrame:
        frame = add_features(bars, interval=interval, max_gap_bars=params.max_gap_bars)
        return add_labels(
            frame,
            horizon=params.label_horizon,
            threshold=params.label_threshold,
            vol_window=params.vol_window,
        )

    def run_pandas() -> pd.DataFrame:
        return pandas_features.pipeline(
            pandas_bars,
            interval=interval,
            max_gap_bars=params.max_gap_bars,
            horizon=params.label_horizon,
            threshold=params.label_threshold,
            vol_window=params.vol_window,
        )

    expected, found = run_polars(), run_pandas()
    problems = pandas_features.mismatches(expected, found)
    if problems:
        lines = "\n".join(f"  {column}: {problem}" for column, problem in problems.items())
        raise RuntimeError(f"the pandas reference differs from the polars pipeline; not timed:\n{lines}")
    largest = max(pandas_features.max_abs_difference(expected, found).values())
    checked = [c for c in pandas_features.COMPARED_COLUMNS if c in expected.columns]
    console.print(
        f"{n} real 5m bars: the pandas reference equals the polars pipeline on {len(checked)} columns "
        f"(largest float difference {largest:.1e})"
    )

    polars_best, polars_median = timed(run_polars)
    pandas_best, pandas_median = timed(run_pandas)
    ratio = pandas_best / polars_best
    met = ratio >= TARGET_RATIO
    threads = pl.thread_pool_size()  # pandas uses one core; polars as many as this
    print_table(
        "features + labels: polars against plain pandas",
        ["pipeline", "best ms", "median ms", "bars/s"],
        [
            [name, round(best * 1000, 1), round(median * 1000, 1), round(n / best)]
            for name, best, median in (
                (
                    f"polars {version('polars')} ({threads} thread{'s' * (threads != 1)})",
                    polars_best,
                    polars_median,
                ),
                (f"pandas {version('pandas')}", pandas_best, pandas_median),
            )
        ],
    )
    ratio_median = pandas_median / polars_median
    console.print(
        f"polars / pandas: {ratio:.1f}x on the best runs, {ratio_median:.1f}x on the medians "
        f"(target >= {TARGET_RATIO:g}x: {'met' if met else 'NOT met'})"
    )
    return {
        "bars": n,
        "columns_checked": len(checked),
        "max_abs_difference": largest,
        "polars": _rate(n, polars_best, polars_median),
        "pandas": _rate(n, pandas_best, pandas_median),
        "ratio": round(ratio, 2),
        "ratio_median": round(ratio_median, 2),
        "target_ratio": TARGET_RATIO,
        "target_met": met,
        "polars_threads": threads,
        "pandas_version": version("pandas"),
    }


def main() -> dict[str, object]:
    """Print the add_features rates and the comparison with pandas; return their figures."""
    bars, source = real_bars()
    console.print(f"bench features: {bars.height} bars from {source}")
    return {
        "bars": bars.height,
        "source": source,
        "add_features": _add_features_rates(bars),
        "vs_pandas": compare_with_pandas(bars),
    }


if __name__ == "__main__":
    main()
