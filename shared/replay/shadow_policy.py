"""The replay's ``shadow`` policy: promotions decided by the shadow test on the bars that follow.

At each retrain point whose candidate passed the gates (the ``gated`` policy's verdicts, each judged
against the gated champion of that moment), the shadow policy does what the farm does in shadow mode
(docs/ml.md#shadow-challengers): with no champion yet the candidate is promoted at once; with a
challenger being scored it waits (the newest waiting candidate takes the slot when it frees); otherwise it
becomes the challenger. From then on every bar the replay scores is scored by both, bar by bar, and the
pairs accumulate; the decision comes at the close of the bar that makes ``shadow_min_bars`` of them
labelled (a label is known ``label_horizon`` bars after its bar closed), with the farm's own
:func:`~trainfarm.shared.evaluation.shadow_test.shadow_verdict`, or at ``shadow_max_age`` without it. The
policy's champion changes at that moment, inside an interval, not at the next retrain point. Before its
first champion it scores as the prior does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.evaluation.shadow_test import ShadowVerdict, shadow_verdict, shadow_window
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.replay.decisions import TrainedPoint
from trainfarm.shared.timeframes import Timeframe, format_duration
from trainfarm_client.arrays import FloatArray


@dataclass(frozen=True)
class ShadowRule:
    """The shadow test's parameters for one replay (the timeframe's ``[promotion]``, its label, the fee)."""

    min_bars: int
    max_age: timedelta
    confidence: float
    samples: int
    seed: int
    horizon: int
    fee: float
    interval: timedelta

    @classmethod
    def of(cls, config: FarmConfig, timeframe: Timeframe) -> ShadowRule:
        """The rule the farm would apply to ``timeframe``'s challengers."""
        params = config.params(timeframe)
        promo = params.promotion
        return cls(
            min_bars=promo.shadow_min_bars,
            max_age=promo.shadow_max_age,
            confidence=promo.shadow_confidence,
            samples=promo.shadow_bootstrap_samples,
            seed=config.training.seed,
            horizon=params.label_horizon,
            fee=config.evaluation.fee,
            interval=timeframe.duration,
        )


@dataclass(frozen=True)
class ShadowEvent:
    """What the shadow policy did, and when: ``promoted`` (``direct`` before any champion), ``challenger``
    (scored from then on), ``retired``."""

    at: datetime
    event: str
    version: str
    reason: str
    verdict: ShadowVerdict | None = None


@dataclass(frozen=True)
class _Pair:
    champion_probabilities: tuple[float, float, float]
    challenger_probabilities: tuple[float, float, float]
    champion_signal: str | None
    challenger_signal: str | None


#: (pack) -> the loaded predictor (packs load once per replay).
Loader = Callable[[TrainedPoint], Predictor]


class ShadowPolicy:
    """Fed the points in time order (:meth:`at_point`) and each interval's scored bars (:meth:`score`)."""

    def __init__(self, rule: ShadowRule, passed: Mapping[int, bool]) -> None:
        """``passed``: each point's gate verdict (by point index)."""
        self._rule = rule
        self._passed = passed
        self._truth = pl.DataFrame()
        self._labelled: frozenset[datetime] = frozenset()  # the bars of ``_truth`` that have a label
        self._load: Loader | None = None
        self.champion: TrainedPoint | None = None
        self._challenger: TrainedPoint | None = None
        self._since: datetime | None = None
        self._waiting: TrainedPoint | None = None
        self._pairs: dict[datetime, _Pair] = {}
        self.events: list[ShadowEvent] = []
        #: The packs the policy made champion, in order (the first one included).
        self.promoted: list[TrainedPoint] = []

    def bind(self, truth: pl.DataFrame, load: Loader) -> None:
        """Give the policy every bar's ``date``, ``label`` and ``bar_return`` (the replay's realised
        outcomes) and the replay's pack loader; :func:`~trainfarm.shared.replay.scoring.score_bars` does."""
        self._truth, self._load = truth, load
        self._labelled = frozenset(truth.filter(pl.col("label").is_not_null())["date"])

    def at_point(self, point: TrainedPoint) -> None:
        """Point ``point`` was trained: its candidate is promoted, made challenger, waits, or was rejected."""
        if not self._passed.get(point.idx, False):
            return
        if self.champion is None:
            self.champion = point
            self.promoted.append(point)
            self.events.append(ShadowEvent(point.at, "promoted", point.version, "direct: no champion yet"))
        elif self._challenger is None:
            self._start(point, point.at)
        else:
            self._waiting = point  # the newest waiting candidate takes the slot when it frees

    def score(self, dates: list[datetime], x: FloatArray, end: datetime) -> list[TrainedPoint | None]:
        """Which pack scores each of ``dates`` (bars with features ``x``, before ``end``, the next point):
        the champion of the moment, the decisions taken bar by bar as their evidence comes in."""
        out: list[TrainedPoint | None] = []
        start = 0
        while start < len(dates):
            if self._challenger is None or self.champion is None:
                out += [self.champion] * (len(dates) - start)
                break
            self._pair(dates[start:], x[start:])
            decided = self._decision_time()
            if decided >= end:
                out += [self.champion] * (len(dates) - start)
                break
            # Bars closing by the decision are the old champion's; the rest are scored after it.
            cut = next(
                (j for j in range(start, len(dates)) if dates[j] + self._rule.interval > decided), len(dates)
            )
            out += [self.champion] * (cut - start)
            for date in dates[cut:]:
                self._pairs.pop(date, None)
            self._decide(decided)
            start = cut
        return out

    def _start(self, point: TrainedPoint, at: datetime) -> None:
        self._challenger, self._since, self._pairs = point, at, {}
        champion = self.champion.version if self.champion else None
        self.events.append(ShadowEvent(at, "challenger", point.version, f"scored beside {champion}"))

    def _pair(self, dates: list[datetime], x: FloatArray) -> None:
        assert self.champion is not None and self._challenger is not None and self._load is not None
        champion, challenger = self._load(self.champion), self._load(self._challenger)
        p_champion, p_challenger = champion.predict_features(x), challenger.predict_features(x)
        for date, a, b in zip(dates, p_champion, p_challenger, strict=True):
            self._pairs[date] = _Pair(
                (float(a[0]), float(a[1]), float(a[2])),
                (float(b[0]), float(b[1]), float(b[2])),
                champion.decide(a).signal,
                challenger.decide(b).signal,
            )

    def _known_at(self, date: datetime) -> datetime:
        """When the label of the bar opening at ``date`` is known: ``horizon`` bars after it closed."""
        return date + (self._rule.horizon + 1) * self._rule.interval

    def _decision_time(self) -> datetime:
        """When the challenger is decided, given the pairs so far: when its ``min_bars``-th labelled pair's
        label is known, or at its age limit, whichever comes first."""
        assert self._since is not None
        expiry = self._since + self._rule.max_age
        known = sorted(self._known_at(d) for d in self._pairs if d in self._labelled)
        if len(known) >= self._rule.min_bars:
            return min(expiry, known[self._rule.min_bars - 1])
        return expiry

    def _decide(self, at: datetime) -> None:
        assert self._challenger is not None and self._since is not None
        rule = self._rule
        # What the farm would know at ``at``: the bars from the first pair whose labels are known by then.
        truth = self._truth.filter(pl.col("date") >= min(self._pairs)) if self._pairs else self._truth.head(0)
        truth = truth.with_columns(
            pl.when(pl.col("date") + (rule.horizon + 1) * rule.interval <= at)
            .then(pl.col("label"))
            .alias("label")
        ).filter(pl.col("date") + rule.interval <= at)
        window = shadow_window(truth, self._pairs)
        verdict = shadow_verdict(
            window,
            min_bars=rule.min_bars,
            horizon=rule.horizon,
            fee=rule.fee,
            confidence=rule.confidence,
            samples=rule.samples,
            seed=rule.seed,
        )
        version = self._challenger.version
        if verdict.decision == "promote":
            self.champion = self._challenger
            self.promoted.append(self._challenger)
            self.events.append(ShadowEvent(at, "promoted", version, verdict.reason, verdict))
        elif verdict.decision == "retire":
            self.events.append(ShadowEvent(at, "retired", version, verdict.reason, verdict))
        else:
            why = f"no decision within {format_duration(rule.max_age)}: {verdict.reason}"
            self.events.append(ShadowEvent(at, "retired", version, why, verdict))
        self._challenger, self._since, self._pairs = None, None, {}
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._start(waiting, at)


__all__ = ["ShadowEvent", "ShadowPolicy", "ShadowRule"]
