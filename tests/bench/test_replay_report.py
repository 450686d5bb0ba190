"""bench.replay_report: the answer in docs/REPLAY.md follows the figures, whichever way they point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.replay_report import answer, write_report


def market(
    name: str, ll: dict[str, float], sharpe: dict[str, float], static_months: tuple[float, float]
) -> dict[str, Any]:
    policies = {
        p: {"logloss": ll[p], "sharpe": sharpe[p], "logloss_vs_prior": ll[p] - ll["prior"], "monthly": []}
        for p in ll
    }
    policies["static"]["monthly"] = [{"logloss": static_months[0]}, {"logloss": static_months[1]}]
    result = {
        "policies": policies,
        "retrain_points": 10,
        "degradation": [{"month": 0, "static": 0.1, "gated": 0.0, "always": -0.1}],
    }
    return {"market": name, "cadence": "7d", "replay": {"result": result}}


RETRAINING_HELPS = {"gated": 1.00, "always": 1.01, "static": 1.05, "prior": 1.02}
RETRAINING_HURTS = {"gated": 1.06, "always": 1.07, "static": 1.00, "prior": 1.02}
SHARPE = {"gated": 1.0, "always": 0.5, "static": 0.8, "prior": 0.0}


def test_the_answer_says_yes_when_retraining_wins_and_no_when_it_does_not() -> None:
    helps = [market(f"M{i} 1h", RETRAINING_HELPS, SHARPE, (1.0, 1.1)) for i in range(3)]
    hurts = [market(f"M{i} 1h", RETRAINING_HURTS, SHARPE, (1.0, 0.95)) for i in range(3)]
    said = answer(helps)
    assert said[0].startswith("**Does retraining") and "Yes, mostly" in said[0] and "3 of 3" in said[0]
    assert "The gated policy beats always on 3 of 3 markets by log-loss and 3 of 3 by Sharpe" in said[1]
    assert "median +10.0%" in said[2]
    assert "always against static: -38%" in said[3]
    said = answer(hurts)
    assert "No, not on these markets" in said[0] and "0 of 3" in said[0]
    assert "median -5.0%" in said[2]


def test_the_report_holds_every_market_and_policy(tmp_path: Path) -> None:
    markets = [market("BTC_USDT 1h", RETRAINING_HELPS, SHARPE, (1.0, 1.1))]
    figures = {
        "markets": markets,
        "wall_seconds": 600.0,
        "cores": 2,
        "speedup": {
            "market": "SOL_USDT 24h",
            "points": 24,
            "farm_seconds": 50.0,
            "point_by_point_seconds": 60.0,
            "ratio": 1.2,
        },
    }
    write_report(figures, tmp_path / "REPLAY.md")
    text = (tmp_path / "REPLAY.md").read_text()
    for policy in ("gated", "always", "static", "prior"):
        assert f"| BTC_USDT 1h | 7d | 10 | {policy} |" in text
    assert "speed-up of **1.20** on 2 cores" in text and "## The answer" in text


def test_the_report_compares_the_gated_policy_with_the_baseline(tmp_path: Path) -> None:
    markets = [market("BTC_USDT 1h", RETRAINING_HELPS, SHARPE, (1.0, 1.1))]
    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        '{"code": "abc1234", "markets": {"BTC_USDT 1h": {"gated": '
        '{"logloss_vs_prior": 0.0123, "sharpe": -1.5, "promotions": 4}}}}'
    )
    figures = {
        "markets": markets,
        "wall_seconds": 60.0,
        "cores": 2,
        "speedup": {
            "market": "M",
            "points": 2,
            "farm_seconds": 1.0,
            "point_by_point_seconds": 1.0,
            "ratio": 1.0,
        },
    }
    write_report(figures, tmp_path / "REPLAY.md", baseline=baseline)
    text = (tmp_path / "REPLAY.md").read_text()
    assert "at abc1234" in text
    assert "| BTC_USDT 1h | 0.0123 | -1.50 | 4 | -0.0200 | 1.00 | - | -0.0100 |" in text
    assert "worse than the prior on 0 of 1 markets and better than always on 1 of 1" in text


def test_the_shadow_policy_is_compared_with_gated_when_the_replays_have_it(tmp_path: Path) -> None:
    ll = RETRAINING_HELPS | {"shadow": 0.99}
    sharpe = SHARPE | {"shadow": 0.7}
    with_shadow = market("ETH_USDT 1h", ll, sharpe, (1.0, 1.1))
    with_shadow["replay"]["result"]["shadow"] = [
        {"event": "promoted", "version": "a"}, {"event": "challenger", "version": "b"},
        {"event": "retired", "version": "b"},
    ]  # fmt: skip
    with_shadow["replay"]["result"]["decisions"] = [
        {"idx": 0, "passed": True, "champion_before": None},
        {"idx": 1, "passed": False, "champion_before": "a"},
        {"idx": 2, "passed": True, "champion_before": "a"},
    ]
    figures = {
        "markets": [with_shadow, market("BTC_USDT 1h", RETRAINING_HELPS, SHARPE, (1.0, 1.1))],
        "wall_seconds": 600.0,
        "cores": 2,
        "speedup": {"market": "SOL_USDT 24h", "points": 24, "farm_seconds": 50.0,
                    "point_by_point_seconds": 60.0, "ratio": 1.2},
    }  # fmt: skip
    write_report(figures, tmp_path / "REPLAY.md")
    text = (tmp_path / "REPLAY.md").read_text()
    assert "## Shadow against gated (issue 25)" in text
    assert "| ETH_USDT 1h | -0.0200 | 1.00 | - | -0.0300 | 0.70 | - | 1 | 1 |" in text
    assert "better than gated on 1 of 2 markets and worse on 0; by Sharpe better on 0 of 2" in text
    # Only a passing candidate in a market with a champion can be a challenger.
    assert "the gates passed 2 of the 3 candidates, 1 of them in a market with a champion" in text
