"""`python -m bench features`: how fast the feature pipeline runs on real bars.

:func:`add_features` over 400k real 5m bars (the farm's biggest input), over the bundled sample (105k 5m
bars, a bot's whole history) and over the sample resampled to 1h. The tests check the values; only this
measures how fast.
"""

from __future__ import annotations

import polars as pl

from bench.bars import rate_row, real_bars
from trainfarm.cli.demo_data import SAMPLE_DIR
from trainfarm.cli.output import console, print_table
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.features import add_features
from trainfarm.shared.timeframes import Timeframe

MAX_GAP_BARS = 3


def main() -> None:
    bars, source = real_bars()
    sample = read_bars(SAMPLE_DIR / "BTC_USDT-5m.parquet")
    hourly = resample(sample, Timeframe.H1)
    console.print(f"bench features: {bars.height} bars from {source}")
    rows = []
    for name, frame, tf in (
        ("400k real 5m", bars, Timeframe.M5),
        ("sample 5m", sample, Timeframe.M5),
        ("sample 1h", hourly, Timeframe.H1),
    ):

        def work(frame: pl.DataFrame = frame, tf: Timeframe = tf) -> None:
            add_features(frame, interval=tf.duration, max_gap_bars=MAX_GAP_BARS)

        rows.append(rate_row(name, frame.height, work))
    print_table("add_features on real bars", ["bars", "rows", "best ms", "median ms", "rows/s"], rows)


if __name__ == "__main__":
    main()
