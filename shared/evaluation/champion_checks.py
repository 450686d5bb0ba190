"""The gates' champion checks: is the candidate not worse than the champion, on rows new to both?

The champion is scored on the candidate's test rows at or after its own data's end (its
``fitted_until``): on older rows it would win by memory, not skill. Where enough such rows exist
(``min_champion_rows``, and ``min_bound_blocks`` label windows for a t bound), the candidate must not be
significantly worse in log-loss or Brier score and keep most of the champion's book Sharpe.

Where too few exist (a daily 1h retrain leaves about 18, a weekly 24h one 7), nothing says the candidate
is better, and the champion stays: a candidate that passed the prior checks by luck must not replace a
good champion. It is replaced without a comparison only when it is past its freshness limit or a live
trigger (its outcomes or its inputs on the live feed) asked for the retrain: :class:`ChampionStanding`
carries both facts, and the ``champion_replaceable`` check says which held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from trainfarm.shared.evaluation.bounds import block_mean_bound
from trainfarm.shared.evaluation.gate_params import GateThresholds
from trainfarm.shared.evaluation.gate_report import Check, finite_or_none, numeric_check
from trainfarm.shared.evaluation.scored import ScoredPredictions
from trainfarm_client.arrays import FloatArray

#: Trigger policies whose firing is live evidence against the champion (trainfarm.shared.monitoring.policies).
LIVE_TRIGGERS: tuple[str, ...] = ("live_win_rate", "live_sharpe", "feature_drift", "calibration_drift")


@dataclass(frozen=True)
class ChampionStanding:
    """What may justify replacing a champion that cannot be compared: its age, and live triggers.

    ``age`` is the champion's age when the candidate is judged (since its version was built);
    ``freshness_limit`` the timeframe's; ``live_triggers`` the live trigger policies (of
    :data:`LIVE_TRIGGERS`) that asked for this retrain.
    """

    age: timedelta
    freshness_limit: timedelta
    live_triggers: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        """Whether the champion is past its freshness limit."""
        return self.age > self.freshness_limit

    @classmethod
    def from_reasons(cls, age: timedelta, freshness_limit: timedelta, reasons: list[str]) -> ChampionStanding:
        """The standing of a run asked for by ``reasons`` (``trigger:<policy>`` names a trigger)."""
        policies = (r.removeprefix("trigger:") for r in reasons if r.startswith("trigger:"))
        return cls(age, freshness_limit, tuple(p for p in policies if p in LIVE_TRIGGERS))


def comparable_floor(th: GateThresholds, label_horizon: int) -> int:
    """Fewest unseen rows for a champion comparison: ``min_champion_rows``, and enough for the bound."""
    return max(th.min_champion_rows, th.min_bound_blocks * label_horizon)


def replaceable_check(rows: int, floor: int, standing: ChampionStanding | None, detail: str) -> Check:
    """``champion_replaceable``: too few rows to compare; passes only when the champion is stale or a live
    trigger fired, and says which held."""
    why = f"{detail}: {rows} rows after the champion's data, fewer than the {floor} a comparison needs"
    if standing is None:
        passed, verdict = False, "its age is unknown, so it stays"
    else:
        age, limit = _days(standing.age), _days(standing.freshness_limit)
        passed = bool(standing.live_triggers) or standing.stale
        if standing.live_triggers:
            verdict = f"replaceable: live trigger {', '.join(standing.live_triggers)} fired"
        elif standing.stale:
            verdict = f"replaceable: the champion is {age} old, past its {limit} freshness limit"
        else:
            verdict = (
                f"the champion is {age} old, within its {limit} freshness limit, and no live trigger "
                "fired: it stays"
            )
    return Check("champion_replaceable", float(rows), float(floor), ">=", passed, f"{why}; {verdict}")


def _days(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"


def _row_brier(s: ScoredPredictions) -> FloatArray:
    out: FloatArray = np.sum((s.probs - np.eye(s.probs.shape[1])[s.y]) ** 2, axis=1)
    return out


def champion_checks(
    cand: ScoredPredictions, champ: ScoredPredictions, th: GateThresholds, where: str
) -> list[Check]:
    """Log-loss and Brier not significantly worse, and the Sharpe kept, on the same (unseen) rows."""
    checks = [Check("champion_scored", float(cand.rows), None, "ok", True, f"{champ.name} on {where}")]
    pct = round(100 * th.confidence)
    scores: tuple[tuple[str, Callable[[ScoredPredictions], FloatArray]], ...] = (
        ("logloss", lambda s: s.row_logloss()),
        ("brier", _row_brier),
    )
    for metric, rows in scores:
        mine, theirs = rows(cand), rows(champ)
        base = float(theirs.mean())
        bound = block_mean_bound(mine - theirs, label_horizon=cand.label_horizon)
        point = bound.mean / base * 100.0 if base > 0 else 0.0
        lower = bound.lower(th.confidence) / base * 100.0 if base > 0 else 0.0
        checks.append(
            numeric_check(
                f"{metric}_vs_champion",
                lower,
                "<=",
                th.max_regression_pct,
                f"{pct}% lower bound of how much worse (%) the candidate's {metric} is than the champion's "
                f"(paired per-row difference, {bound.describe()}); point estimate {point:+.2f}% "
                f"({float(mine.mean()):.4f} vs {base:.4f})",
            )
        )
    mine_sr, theirs_sr = cand.trading().sharpe, champ.trading().sharpe
    if theirs_sr > 0:
        checks.append(
            numeric_check(
                "sharpe_vs_champion",
                mine_sr,
                ">=",
                th.min_sharpe_fraction * theirs_sr,
                f"{th.min_sharpe_fraction:g} x the champion's book Sharpe {theirs_sr:.3f} (at its own p*)",
            )
        )
    else:
        checks.append(
            Check(
                "sharpe_vs_champion",
                finite_or_none(mine_sr),
                None,
                ">=",
                True,
                f"champion book Sharpe {theirs_sr:.3f} <= 0 on these rows: no edge to keep (the sharpe "
                "floor still applies)",
            )
        )
    return checks


__all__ = [
    "LIVE_TRIGGERS",
    "ChampionStanding",
    "champion_checks",
    "comparable_floor",
    "replaceable_check",
]
