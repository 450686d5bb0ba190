"""The replay's simulated clock and where a replay keeps its files.

A replay steps through retrain points ``t0 < t1 < ...`` in ``[start, end)``, ``cadence`` apart, on the
timeframe's grid: at ``t_i`` the bars closed by ``t_i`` are known and nothing after. The bars scored by
the model of ``t_i`` are those that close in ``(t_i, t_(i+1)]`` (the last point's run to ``end``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from trainfarm.shared.errors import ConfigError
from trainfarm.shared.timeframes import Timeframe, format_duration

#: Most retrain points one replay may have (task ids carry the index in four digits).
MAX_POINTS = 9999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def align(at: datetime, timeframe: Timeframe) -> datetime:
    """``at`` moved down to the timeframe's grid (UTC, bars open on multiples of their duration)."""
    if at.tzinfo is None:
        raise ConfigError(f"replay times must carry a time zone, got {at.isoformat()}")
    step = timeframe.duration
    return _EPOCH + ((at.astimezone(UTC) - _EPOCH) // step) * step


def retrain_points(
    start: datetime, end: datetime, cadence: timedelta, timeframe: Timeframe
) -> list[datetime]:
    """The retrain points in ``[start, end)``: ``start`` (on the grid), then every ``cadence``.

    Raises :class:`ConfigError` when the cadence is not a whole number of bars, the period is empty, or
    it holds more than :data:`MAX_POINTS` points.
    """
    if cadence <= timedelta(0) or cadence % timeframe.duration:
        raise ConfigError(
            f"the replay cadence {format_duration(cadence)} must be a whole number of {timeframe} bars"
        )
    first, last = align(start, timeframe), align(end, timeframe)
    if first >= last:
        raise ConfigError(f"the replay period [{first.isoformat()}, {last.isoformat()}) is empty")
    count = -(-(last - first) // cadence)
    if count > MAX_POINTS:
        raise ConfigError(
            f"{count} retrain points; a replay holds at most {MAX_POINTS}: lengthen the cadence"
        )
    return [first + i * cadence for i in range(count)]


def replay_dir(artifacts: Path, replay_id: str) -> Path:
    """The replay's own folder: its snapshots, packs, staging folders, scores and plot."""
    return artifacts / "replays" / replay_id


def point_id(replay_id: str, idx: int) -> str:
    """The id of one retrain point: the prefix of every task id of its training (the broker finds them)."""
    return f"{replay_id}-{idx:04d}"


__all__ = ["MAX_POINTS", "align", "point_id", "replay_dir", "retrain_points"]
