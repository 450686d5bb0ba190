"""The gate report: every check with its value, threshold and verdict, as stored in manifest and registry.

A :class:`GateReport` is what :func:`trainfarm.shared.evaluation.gates.evaluate_gates` returns and what a
promotion step reads: ``passed`` is true only when every :class:`Check` passed. ``to_json`` is JSON-safe (a
non-finite number becomes ``null``) and ``from_json`` reads it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None, NaN or infinite (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _number_or_none(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"gate report: expected a number or null, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Check:
    """One gate check: ``value op threshold`` decided ``passed``; ``detail`` says what was compared.

    ``value`` / ``threshold`` are ``None`` where undefined (no champion Sharpe to keep, a score that could
    not be computed); ``op`` is the comparison as text (">=", "<=", ">"), or "ok" for a yes/no fact.
    """

    name: str
    value: float | None
    threshold: float | None
    op: str
    passed: bool
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict; a non-finite number becomes ``None`` (JSON has no NaN)."""
        return {
            "name": self.name,
            "value": finite_or_none(self.value),
            "threshold": finite_or_none(self.threshold),
            "op": self.op,
            "passed": bool(self.passed),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Check:
        """Parse :meth:`to_json`'s output."""
        return cls(
            name=str(data["name"]),
            value=_number_or_none(data.get("value")),
            threshold=_number_or_none(data.get("threshold")),
            op=str(data["op"]),
            passed=bool(data["passed"]),
            detail=str(data.get("detail", "")),
        )


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
}


def numeric_check(name: str, value: float | None, op: str, threshold: float, detail: str) -> Check:
    """``value op threshold`` as a :class:`Check`; an undefined (None or NaN) value fails: a gate never
    passes what it cannot see."""
    ok = value is not None and math.isfinite(value) and _OPS[op](value, threshold)
    return Check(name, finite_or_none(value), threshold, op, ok, detail)


@dataclass(frozen=True)
class GateReport:
    """Every check of one candidate, the verdict (all passed) and the profile that was applied."""

    checks: tuple[Check, ...]
    passed: bool
    profile: str

    def failed(self) -> list[Check]:
        """The checks that failed, in report order (empty when the candidate passed)."""
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> Check:
        """The check called ``name``; ``KeyError`` when the report has none."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        """One line: "passed (13 checks)" or "failed: sharpe, signals"."""
        bad = self.failed()
        if not bad:
            return f"passed ({len(self.checks)} checks)"
        return "failed: " + ", ".join(c.name for c in bad)

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict: ``profile``, ``passed``, ``failed`` (names) and ``checks``."""
        return {
            "profile": self.profile,
            "passed": bool(self.passed),
            "failed": [c.name for c in self.failed()],
            "checks": [c.to_json() for c in self.checks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> GateReport:
        """Parse :meth:`to_json`'s output (``failed`` is derived, so it is not read back).

        A verdict that disagrees with its checks is refused: ``passed`` is what promotion acts on.
        """
        raw = data["checks"]
        if not isinstance(raw, list):
            raise ValueError("gate report: checks must be a list")
        checks = tuple(Check.from_json(c) for c in raw)
        passed = data["passed"]
        if passed is not all(c.passed for c in checks):
            raise ValueError(f"gate report: passed={passed!r} disagrees with its checks")
        return cls(checks=checks, passed=bool(passed), profile=str(data["profile"]))
