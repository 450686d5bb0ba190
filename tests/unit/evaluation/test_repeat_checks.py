"""The ``confirmed`` check: a candidate is promoted on its market's second consecutive pass."""

from __future__ import annotations

from trainfarm.shared.evaluation.gate_report import Check, GateReport
from trainfarm.shared.evaluation.repeat_checks import (
    Lineage,
    PreviousJudgement,
    confirmed_check,
    evidence_passed,
)


def _report(**verdicts: bool) -> dict[str, object]:
    checks = tuple(Check(name, None, None, "ok", passed, "") for name, passed in verdicts.items())
    return GateReport(checks, all(verdicts.values()), "default").to_json()


def test_the_first_candidate_of_a_market_needs_one_pass() -> None:
    check = confirmed_check(Lineage("BTC_USDT 1h"))
    assert check.passed and "first candidate of BTC_USDT 1h" in check.detail


def test_a_pass_after_a_pass_is_confirmed() -> None:
    previous = PreviousJudgement.of_report("v1", _report(logloss_vs_prior_bound=True, sharpe=True))
    check = confirmed_check(Lineage("BTC_USDT 1h", previous))
    assert previous.passed and check.passed and "v1, passed too" in check.detail


def test_a_pass_after_a_failure_waits_for_the_next_and_names_why() -> None:
    previous = PreviousJudgement.of_report("v1", _report(logloss_vs_prior_bound=False, sharpe=True))
    check = confirmed_check(Lineage("BTC_USDT 1h", previous))
    assert not check.passed
    assert "v1, failed (logloss_vs_prior_bound)" in check.detail and "second consecutive pass" in check.detail


def test_whether_the_champion_could_be_replaced_is_not_evidence() -> None:
    """A candidate kept out only because a fresh champion stays (or by its own confirmation) had skill."""
    report = _report(logloss_vs_prior_bound=True, champion_replaceable=False, confirmed=False)
    assert PreviousJudgement.of_report("v1", report).passed
    assert evidence_passed(GateReport.from_json(report).checks)


def test_a_report_without_checks_is_no_pass() -> None:
    assert not PreviousJudgement.of_report("v1", {"passed": False, "checks": []}).passed
    assert not PreviousJudgement.of_report("v1", {}).passed
