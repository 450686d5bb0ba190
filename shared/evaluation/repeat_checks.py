"""Repeated testing: a candidate is promoted on the second consecutive pass of its market's judgements.

A market's candidates are judged again and again on almost the same test rows: meta-only runs hourly at 5m
and every 6 h at 1h, full retrains daily, triggers in between. Each judgement is a test at the bounds'
confidence, so over a freshness period a market gets many chances to pass by luck. The farm controls it by
asking for two passes in a row: the ``confirmed`` check passes when the market's previous judged candidate
passed its evidence checks too (every check but ``confirmed`` itself and ``champion_replaceable``, which
says whether the champion may be replaced, not whether the candidate has skill), or when the candidate is
the first the market ever had judged (one test: nothing to correct).

Why two passes rather than judging each candidate only on test rows its market was not judged on before
(the alternative the review offered): fresh rows accrue at one freshness period per period, a small part of
a test split (3 days of a 55-day 1h split), so every candidate after the first would be judged on a few
days of rows and have almost no power; two passes keep every judgement at full size, and a real edge,
which persists, passes twice about as often as once. The Monte Carlo of hourly re-tests, and the rates
with and without the rule, are in docs/QUALITY.md#repeated-testing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trainfarm.shared.evaluation.gate_report import Check

#: Checks that say nothing about the candidate's skill: left out of its evidence.
NOT_EVIDENCE: tuple[str, ...] = ("confirmed", "champion_replaceable")


def evidence_passed(checks: Iterable[Check]) -> bool:
    """Whether every check of a report that bears on the candidate's skill passed."""
    return all(c.passed for c in checks if c.name not in NOT_EVIDENCE)


@dataclass(frozen=True)
class PreviousJudgement:
    """The market's previous judged candidate: its version and whether its evidence passed."""

    version: str
    passed: bool
    failed: tuple[str, ...] = ()  #: its failed evidence checks

    @classmethod
    def of_report(cls, version: str, report: Mapping[str, object]) -> PreviousJudgement:
        """From a stored gate report (:meth:`~trainfarm.shared.evaluation.gate_report.GateReport.to_json`)."""
        raw = report.get("checks")
        checks: Sequence[object] = raw if isinstance(raw, list) else []
        failed = tuple(
            str(c.get("name"))
            for c in checks
            if isinstance(c, dict) and c.get("passed") is not True and c.get("name") not in NOT_EVIDENCE
        )
        return cls(version, not failed and bool(checks), failed)


@dataclass(frozen=True)
class Lineage:
    """What the gates know of the market's earlier judgements: its previous judged candidate (None: this is
    the market's first)."""

    market: str
    previous: PreviousJudgement | None = None


def confirmed_check(lineage: Lineage) -> Check:
    """``confirmed``: the previous judged candidate of the market passed too, or there was none."""
    previous = lineage.previous
    if previous is None:
        return Check(
            "confirmed", None, None, "ok", True, f"the first candidate of {lineage.market} judged: one test"
        )
    if previous.passed:
        return Check(
            "confirmed",
            None,
            None,
            "ok",
            True,
            f"the previous candidate of {lineage.market}, {previous.version}, passed too: two in a row",
        )
    return Check(
        "confirmed",
        None,
        None,
        "ok",
        False,
        f"the previous candidate of {lineage.market}, {previous.version}, failed "
        f"({', '.join(previous.failed) or 'no checks'}): a candidate is promoted on the second consecutive "
        "pass (repeated tests on the same rows; docs/QUALITY.md#repeated-testing)",
    )


__all__ = ["NOT_EVIDENCE", "Lineage", "PreviousJudgement", "confirmed_check", "evidence_passed"]
