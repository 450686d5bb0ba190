"""docs/REPLAY.md from the figures of `make bench-replay` (:mod:`bench.replay`): the tables, and the answer
computed from them, whatever they say."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.sections import kept_sections
from trainfarm.shared.replay.metrics import POLICIES

#: Months since the start shown in the degradation tables.
MONTHS = (0, 1, 2, 3, 6, 9, 12, 18, 23)


def _policies(market: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    result = market["replay"].get("result") or {}
    return dict(result.get("policies") or {})


def _num(value: object, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _count(markets: Sequence[Mapping[str, Any]], better: str, worse: str, key: str, higher: bool) -> int:
    wins = 0
    for market in markets:
        p = _policies(market)
        a, b = p.get(better, {}).get(key), p.get(worse, {}).get(key)
        if isinstance(a, int | float) and isinstance(b, int | float) and (a > b if higher else a < b):
            wins += 1
    return wins


def _month_change(market: Mapping[str, Any]) -> float | None:
    """The static model's log-loss in its second month relative to its first (0.1 = 10 % worse)."""
    monthly = _policies(market).get("static", {}).get("monthly") or []
    values = [m.get("logloss") for m in monthly[:2]]
    if len(values) < 2 or not all(isinstance(v, int | float) and v > 0 for v in values):
        return None
    return float(values[1]) / float(values[0]) - 1.0


def answer(markets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The question the farm exists for, answered from the figures (one paragraph per claim)."""
    n = len(markets)
    lines = []
    always_ll = _count(markets, "always", "static", "logloss", higher=False)
    gated_ll = _count(markets, "gated", "static", "logloss", higher=False)
    always_sh = _count(markets, "always", "static", "sharpe", higher=True)
    gated_sh = _count(markets, "gated", "static", "sharpe", higher=True)
    helps = max(always_ll, gated_ll) > n / 2
    lines.append(
        f"**Does retraining keep these models better than training once?** "
        f"{'Yes, mostly' if helps else 'No, not on these markets'}: by log-loss, promoting every retrain "
        f"beats the static model on {always_ll} of {n} markets and the gated policy on {gated_ll} of {n}; "
        f"by the book's Sharpe, {always_sh} and {gated_sh} of {n}."
    )
    gates_ll = _count(markets, "gated", "always", "logloss", higher=False)
    gates_sh = _count(markets, "gated", "always", "sharpe", higher=True)
    beats_prior = _count(markets, "gated", "prior", "logloss", higher=False)
    any_prior = sum(
        1
        for m in markets
        if any(_count([m], p, "prior", "logloss", higher=False) for p in ("gated", "always", "static"))
    )
    lines.append(
        f"**Do the gates add value over promoting every retrain?** The gated policy beats always on "
        f"{gates_ll} of {n} markets by log-loss and {gates_sh} of {n} by Sharpe. It beats the prior "
        f"(no model) on {beats_prior} of {n}; some policy beats the prior on {any_prior} of {n}."
    )
    changes = [c for c in (_month_change(m) for m in markets) if c is not None]
    if changes:
        lines.append(
            "**A static model degrades 10-20 % within a month?** Its log-loss in its second month against "
            f"its first: median {statistics.median(changes):+.1%} (from {min(changes):+.1%} to "
            f"{max(changes):+.1%} over {len(changes)} markets)."
        )
    hourly = [m for m in markets if m["market"].endswith(" 1h")]
    ratios = []
    for market in hourly:
        p = _policies(market)
        static, best = p.get("static", {}).get("sharpe"), p.get("always", {}).get("sharpe")
        if isinstance(static, int | float) and isinstance(best, int | float) and static != 0:
            ratios.append((best - static) / abs(static))
    if ratios:
        lines.append(
            "**Weekly retraining gives 5-15 % better Sharpe?** At 1h, always against static: "
            + ", ".join(f"{r:+.0%}" for r in ratios)
            + f" ({len(ratios)} markets; Sharpe figures in the table)."
        )
    return lines


def _degradation(markets: Sequence[Mapping[str, Any]], timeframe: str) -> list[str]:
    rows: dict[int, dict[str, list[float]]] = {}
    for market in markets:
        if not market["market"].endswith(f" {timeframe}"):
            continue
        for entry in (market["replay"].get("result") or {}).get("degradation") or []:
            for policy in ("static", "gated", "always"):
                value = entry.get(policy)
                if isinstance(value, int | float):
                    rows.setdefault(int(entry["month"]), {}).setdefault(policy, []).append(float(value))
    out = [
        "| month | static | gated | always |",
        "|---:|---:|---:|---:|",
    ]
    for month in MONTHS:
        if month in rows:
            cells = [
                _num(statistics.mean(rows[month][p]) if rows[month].get(p) else None)
                for p in ("static", "gated", "always")
            ]
            out.append(f"| {month} | " + " | ".join(cells) + " |")
    return out


#: The figures of the gates before issue 22 (make bench-replay at 2372b84), kept for the comparison.
BASELINE = Path(__file__).resolve().parents[1] / "docs" / "replay-baseline.json"


def goal(markets: Sequence[Mapping[str, Any]]) -> str:
    """Issue 22's goal, checked: gated never worse than prior, and better than always, by log-loss."""
    n = len(markets)
    not_worse = _count(markets, "prior", "gated", "logloss", higher=False)
    better = _count(markets, "gated", "always", "logloss", higher=False)
    return (
        f"**The gates' goal** (issue 22): the gated policy never worse than the prior out of sample, and "
        f"better than always. By log-loss it is worse than the prior on {not_worse} of {n} markets and "
        f"better than always on {better} of {n}."
    )


def shadow_against_gated(markets: Sequence[Mapping[str, Any]]) -> list[str]:
    """Issue 25's comparison: the shadow policy (live evidence before a promotion) against the gated one."""
    n = len(markets)
    lines = [
        "## Shadow against gated (issue 25)",
        "",
        "The shadow policy takes the gated policy's passing candidates as challengers and promotes one "
        "only when the shadow test on the bars that follow finds it better "
        "([replay.md](replay.md#five-policies-on-identical-bars)). `vs prior`: log-loss minus the prior's "
        "on the same bars (negative is better).",
        "",
        "| market | gated: vs prior | Sharpe | promotions | shadow: vs prior | Sharpe | promotions | "
        "challengers | retired |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for market in markets:
        policies = _policies(market)
        gated, shadow = policies.get("gated", {}), policies.get("shadow", {})
        events = (market["replay"].get("result") or {}).get("shadow") or []
        started = sum(e.get("event") == "challenger" for e in events)
        retired = sum(e.get("event") == "retired" for e in events)
        lines.append(
            f"| {market['market']} | {_num(gated.get('logloss_vs_prior'))} | "
            f"{_num(gated.get('sharpe'), '.2f')} | {gated.get('promotions', '-')} | "
            f"{_num(shadow.get('logloss_vs_prior'))} | "
            f"{_num(shadow.get('sharpe'), '.2f')} | {shadow.get('promotions', '-')} | {started} | {retired} |"
        )
    better = _count(markets, "shadow", "gated", "logloss", higher=False)
    worse = _count(markets, "gated", "shadow", "logloss", higher=False)
    sharper = _count(markets, "shadow", "gated", "sharpe", higher=True)
    decisions = [d for m in markets for d in (m["replay"].get("result") or {}).get("decisions") or []]
    passed = [d for d in decisions if d.get("passed")]
    contested = sum(d.get("champion_before") is not None for d in passed)
    lines += [
        "",
        f"By log-loss the shadow policy is better than gated on {better} of {n} markets and worse on "
        f"{worse}; by Sharpe better on {sharper} of {n}. Only a candidate that passes the gates in a market "
        f"that has a champion becomes a challenger: the gates passed {len(passed)} of the {len(decisions)} "
        f"candidates, {contested} of them in a market with a champion (the others went in directly as a "
        "market's first champion).",
        "",
    ]
    return lines


def before_after(markets: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any]) -> list[str]:
    """The gated policy now against the same market's replay with the gates before issue 22."""
    lines = [
        f"## The gated policy before and after issue 22\n\nBefore: `make bench-replay` at {baseline['code']} "
        "(docs/replay-baseline.json), the same markets, bars and cadences. `vs prior`: log-loss minus the "
        "prior's on the same bars (negative is better); `always` is the same in both (every retrain "
        "promoted), up to the refit pack's calibrator.",
        "",
        "| market | gated before: vs prior | Sharpe | promotions | gated after: vs prior | Sharpe | "
        "promotions | always after: vs prior |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    old_markets = baseline.get("markets") or {}
    for market in markets:
        old = (old_markets.get(market["market"]) or {}).get("gated") or {}
        new = _policies(market)
        gated, always = new.get("gated", {}), new.get("always", {})
        lines.append(
            f"| {market['market']} | {_num(old.get('logloss_vs_prior'))} | "
            f"{_num(old.get('sharpe'), '.2f')} | {old.get('promotions', '-')} | "
            f"{_num(gated.get('logloss_vs_prior'))} | "
            f"{_num(gated.get('sharpe'), '.2f')} | {gated.get('promotions', '-')} | "
            f"{_num(always.get('logloss_vs_prior'))} |"
        )
    return [*lines, ""]


def write_report(figures: Mapping[str, Any], path: Path, baseline: Path = BASELINE) -> None:
    """Write docs/REPLAY.md (with the before/after table when ``baseline`` exists)."""
    markets = list(figures["markets"])
    speed = figures["speedup"]
    lines = [
        "# Replay: the farm over its own history",
        "",
        f"Generated by `make bench-replay` on {datetime.now(UTC):%Y-%m-%d} ({figures['cores']} cores; the "
        f"replays {figures['wall_seconds'] / 60:.0f} min of wall time, one market after another). How a "
        "replay works: [replay.md](replay.md); the figures: [replay.json](replay.json).",
        "",
        "## The answer",
        "",
        *[line + "\n" for line in answer(markets)],
        goal(markets) + "\n",
        *(shadow_against_gated(markets) if any("shadow" in _policies(m) for m in markets) else []),
        *(before_after(markets, json.loads(baseline.read_text())) if baseline.is_file() else []),
        "## The policies on identical bars",
        "",
        "Log-loss and Brier over every labelled bar of the period; `vs prior`: log-loss minus the prior's on "
        "the same bars; Sharpe and drawdown of the fee-aware overlapping book; promotions: champion changes.",
        "",
        "| market | cadence | points | policy | log-loss | vs prior | Brier | ECE | Sharpe | max DD "
        "| signals | win rate | promotions |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for market in markets:
        result = market["replay"].get("result") or {}
        for policy in POLICIES:
            f = _policies(market).get(policy, {})
            points = result.get("retrain_points", "-")
            lines.append(
                f"| {market['market']} | {market['cadence']} | {points} | {policy} | "
                f"{_num(f.get('logloss'))} | {_num(f.get('logloss_vs_prior'))} | {_num(f.get('brier'))} | "
                f"{_num(f.get('ece'))} | {_num(f.get('sharpe'), '.2f')} | "
                f"{_num(f.get('max_drawdown'), '.3f')} | "
                f"{f.get('signals', '-')} | {_num(f.get('win_rate'), '.2f')} | {f.get('promotions', '-')} |"
            )
    lines += [
        "",
        "## Degradation: log-loss minus the prior's, by months since the start (mean of the markets)",
        "",
    ]
    for timeframe in ("1h", "12h", "24h"):
        lines += [f"### {timeframe}", "", *_degradation(markets, timeframe), ""]
    lines += [
        "## What ships: each pack's signal rate after its data against the gated rate",
        "",
        "Every replayed pack ships refit (docs/ml.md#fresh-deployed-models). On the bars it scored (after "
        "its data: out of sample for every part of it) its signal rate is compared with the gated "
        "pipeline's on its test split; consistent: within both 95% half-widths in quadrature, so about 95% "
        "of packs are expected to be.",
        "",
        "| market | packs | consistent | median shipped - gated |",
        "|---|---:|---:|---:|",
    ]
    for market in markets:
        rates = (market["replay"].get("result") or {}).get("signal_rates") or {}
        per_pack = rates.get("per_pack") or []
        gaps = sorted(float(p["shipped"]) - float(p["gated"]) for p in per_pack)
        median = gaps[len(gaps) // 2] if gaps else None
        lines.append(
            f"| {market['market']} | {rates.get('packs', '-')} | {rates.get('consistent', '-')} | "
            f"{_num(median, '+.3f')} |"
        )
    lines += [
        "",
        "## The fan-out",
        "",
        f"{speed['market']}, {speed['points']} monthly points, alone: {speed['farm_seconds']} s through the "
        f"workers, {speed['point_by_point_seconds']} s point by point in one process with every core: a "
        f"speed-up of **{_num(speed['ratio'], '.2f')}** on {figures['cores']} cores (both measured in the "
        "same run).",
        "",
    ]
    # `python -m bench replay-context` writes its own section (bench.sections.write_section): kept.
    kept = kept_sections(path)
    path.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
