"""The policies' champions over time: the gated decisions, taken in time order, and who scores each interval.

``gated`` gates each point's candidate against the champion it would have met (the last candidate that
passed before it), with the farm's own :func:`~trainfarm.shared.evaluation.gates.gate_candidate`, the
previous point's verdict standing for the market's previous judged candidate (``confirmed``);
``always`` makes every point's pack the champion; ``static`` keeps the first point's pack; ``prior``
scores the class shares of the moment's calibration split and never trades. Before its first promotion
the gated policy has no model either, and scores as the prior does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.evaluation.gates import ChampionStanding, Lineage, gate_candidate
from trainfarm.shared.evaluation.repeat_checks import PreviousJudgement
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.replay.candidates import CANDIDATE_FILE, load_candidate
from trainfarm.shared.replay.metrics import POLICIES
from trainfarm.shared.timeframes import Timeframe


@dataclass(frozen=True)
class TrainedPoint:
    """A retrain point whose pack is written: where it is and what it was trained at."""

    idx: int
    at: datetime
    version: str
    path: Path
    manifest_sha256: str

    @property
    def candidate_path(self) -> Path:
        """The candidate's gate inputs, kept beside the pack's folder by the replay's meta stage."""
        return candidate_path(self.path)


def candidate_path(pack: Path) -> Path:
    """Where the candidate of the pack at ``pack`` keeps its gate inputs (outside the pack itself)."""
    return pack.parent / f"{pack.name}.{CANDIDATE_FILE}"


@dataclass(frozen=True)
class Decision:
    """The gated policy at one point: whether its candidate passed, and the report that says why."""

    idx: int
    passed: bool
    champion_before: str | None  #: the version it was compared with (None: no champion yet)
    report: dict[str, object]


class GatedPolicy:
    """Feeds points in time order; each is gated against the champion chosen before it."""

    def __init__(self, config: FarmConfig, timeframe: Timeframe) -> None:
        self._config = config
        self._timeframe = timeframe
        self._champion: TrainedPoint | None = None
        self._loaded: Predictor | None = None
        self._previous: PreviousJudgement | None = None
        self.decisions: list[Decision] = []

    @property
    def champion(self) -> TrainedPoint | None:
        """The gated champion after the points fed so far."""
        return self._champion

    def feed(self, point: TrainedPoint) -> Decision:
        """Gate ``point``'s candidate against the current champion; promote it when every gate passes."""
        params = self._config.params(self._timeframe)
        candidate, x_test = load_candidate(point.candidate_path)
        before = self._champion
        report = gate_candidate(
            candidate,
            self._champion_model if before is not None else None,
            x_test,
            thresholds=params.gates,
            timeframe=self._timeframe,
            profile=self._config.gates.profile,
            seed=self._config.training.seed,
            # A replay has no live feed, so no live trigger: only age may excuse a missing comparison.
            standing=ChampionStanding(point.at - before.at, params.freshness_limit) if before else None,
            # Two passes in a row, as the farm asks (the replay's previous point is the market's previous
            # judged candidate).
            lineage=Lineage(f"replay {self._timeframe}", self._previous),
        ).to_json()
        self._previous = PreviousJudgement.of_report(point.version, report)
        decision = Decision(point.idx, bool(report["passed"]), before.version if before else None, report)
        if decision.passed:
            self._champion, self._loaded = point, None
        self.decisions.append(decision)
        return decision

    def _champion_model(self) -> Predictor:
        if self._loaded is None:
            assert self._champion is not None  # only called with a champion
            self._loaded = Predictor.load(
                self._champion.path, expected_manifest_sha256=self._champion.manifest_sha256
            )
        return self._loaded


def timeline(
    points: Sequence[TrainedPoint], decisions: Iterable[Decision]
) -> dict[str, list[TrainedPoint | None]]:
    """Per policy, the pack that scores each point's interval (None: the prior scores it).

    ``points`` in time order, every one decided by ``decisions``.
    """
    passed = {d.idx: d.passed for d in decisions}
    gated: list[TrainedPoint | None] = []
    champion: TrainedPoint | None = None
    for point in points:
        if passed[point.idx]:
            champion = point
        gated.append(champion)
    return {
        "gated": gated,
        "always": list(points),
        "static": [points[0]] * len(points) if points else [],
        "prior": [None] * len(points),
    }


def promotions(lines: dict[str, list[TrainedPoint | None]]) -> dict[str, list[TrainedPoint]]:
    """Per policy, the points where its champion changed to a new pack (the first model counts)."""
    out: dict[str, list[TrainedPoint]] = {}
    for policy, packs in lines.items():
        changes: list[TrainedPoint] = []
        last: TrainedPoint | None = None
        for pack in packs:
            if pack is not None and (last is None or pack.version != last.version):
                changes.append(pack)
            last = pack
        out[policy] = changes
    return out


__all__ = ["POLICIES", "Decision", "GatedPolicy", "TrainedPoint", "candidate_path", "promotions", "timeline"]
