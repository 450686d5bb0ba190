"""Train/serve skew: the features bots computed live against the farm's own computation of the same bars.

Bots report, with each signal, the feature vector they scored (``features`` in the outcome stream,
:func:`trainfarm_client.contract.encode_features`). For one market, :func:`skew_report` takes the
champion's latest ``skew_rows`` reported rows that carry features, recomputes the features of those bars
from the farm's bar store with the same feature code and the pack's ``feature_params`` (over
``MIN_HISTORY_BARS`` of history, as bots are told to feed), and compares them within
:data:`trainfarm.shared.monitoring.drift.SKEW_ABS` + :data:`~trainfarm.shared.monitoring.drift.SKEW_REL` (see
there why).

A difference means the bot's feed or code is not what the model was trained on (another price source, a
missing or shifted bar, too short a history, a stale client): it is flagged in `farm triggers` and `farm
status` and never retrains, since a new model would be served through the same skew. A bar the farm's
store lacks (or holds incomplete) is "not checked", never a mismatch: the farm cannot tell who is wrong.
Celery-free.
"""

from __future__ import annotations

import logging

import polars as pl

from trainfarm.shared.config import TimeframeParams
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.errors import DataNotFoundError, FarmError
from trainfarm.shared.monitoring.drift import SkewReport, compare_features
from trainfarm.shared.registry import Registry
from trainfarm.shared.registry.models import VersionRecord
from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe
from trainfarm.workers.checks.live_window import PackLoader, feature_frame, feature_names_of, load_champion

log = logging.getLogger(__name__)


def skew_report(
    registry: Registry,
    store: BarStore,
    champion: VersionRecord,
    timeframe: Timeframe,
    params: TimeframeParams,
    load: PackLoader = load_champion,
) -> tuple[SkewReport | None, str | None]:
    """The skew of ``champion``'s latest reported features, or (None, why it could not be checked)."""
    if not params.triggers.train_serve_skew:
        return None, None
    try:
        reported = registry.outcomes.live_features(
            champion.symbol, timeframe.value, champion.version, limit=params.triggers.skew_rows
        )
        if not reported:
            return SkewReport(0, 0), None
        manifest = load(champion).manifest
        names = feature_names_of(manifest)
        try:
            frame = feature_frame(store, champion.symbol, timeframe, manifest, min(at for at, _ in reported))
        except DataNotFoundError:
            return SkewReport(0, 0, not_checked=len(reported)), None
        expected = max(1, timeframe.minutes // BASE_TIMEFRAME.minutes)
        bars = {at for at, _ in reported}
        rows = frame.filter(pl.col("date").is_in(list(bars)) & (pl.col("bars") >= expected))
        rows = rows.drop_nulls(names)
        recomputed = dict(zip(rows["date"].to_list(), rows.select(names).rows(), strict=True))
        return compare_features(reported, recomputed, names), None
    except FarmError as exc:  # a pack that does not load, damaged bars: said in the detail
        log.warning("skew check of %s %s: %s", champion.symbol, timeframe, exc)
        return None, f"not checked: {exc}"
    except Exception as exc:  # one market's failure must not stop the others' checks
        log.exception("skew check of %s %s failed", champion.symbol, timeframe)
        return None, f"not checked: {type(exc).__name__}: {exc}"


__all__ = ["skew_report"]
