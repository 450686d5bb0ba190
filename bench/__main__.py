"""`python -m bench [NAME]...` (`make bench`): the named benchmarks, by default every one but quality.

Each benchmark is the module ``bench.<name>`` (:data:`BENCHMARKS`; ``quality`` only when named, `make
bench-quality`). Each prints its tables (ratios measured within one run, with absolute numbers for
context; these machines are noisy) and its figures are stored in docs/performance.json
(:mod:`bench.results`); docs/PERFORMANCE.md reads them. What each measures: docs/development.md#benchmarks.

The tests never assert how fast something is; these figures are where speed is measured.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from bench.results import record


def _module(name: str) -> Callable[[], None]:
    """Run ``bench.<name>.main`` and record the figures it returns (when it returns any)."""

    def run() -> None:
        figures = importlib.import_module(f"bench.{name}").main()
        if isinstance(figures, dict):
            record(name, figures)

    return run


#: Every benchmark by name, in the order ``python -m bench`` runs them (the quick ones first).
BENCHMARKS: dict[str, Callable[[], None]] = {
    name: _module(name)
    for name in ("validation", "features", "inference", "overhead", "promotion", "memory", "gpu", "fanout")
}
#: Named only: ``python -m bench quality`` (`make bench-quality`) retrains 12 real markets (minutes) and
#: writes docs/QUALITY.md itself.
ON_DEMAND: dict[str, Callable[[], None]] = {
    "quality": _module("quality"),
    # Also `make bench-quality`: ETH and SOL with the core set against core + context (issue 24).
    "context": _module("context"),
    # `make bench-replay`: the farm replayed over two years of three markets (hours); writes docs/REPLAY.md.
    "replay": _module("replay"),
    "replay-quick": lambda: importlib.import_module("bench.replay").main(quick=True),
    # Also `make bench-replay`: ETH and SOL replayed with core + context features (issue 24).
    "replay-context": lambda: importlib.import_module("bench.replay").main(context=True),
    # `make bench-gates`: the gates' repeated-testing Monte Carlo (about an hour) and the gates end to end
    # at real sizes (an hour and a half): two sections of docs/QUALITY.md.
    "gates": _module("gates"),
    "gate-power": _module("gate_power"),
}


def main(argv: Sequence[str] | None = None) -> None:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHMARKS)
    known = BENCHMARKS | ON_DEMAND
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"usage: python -m bench [{' | '.join(known)}]...; unknown: {', '.join(unknown)}")
    for name in names:
        known[name]()


if __name__ == "__main__":
    main()
