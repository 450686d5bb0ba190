"""What a PromQL query reads, parsed by promql-parser (the Prometheus grammar, in Rust), for the tests that
hold the dashboard's, the alert rules' and the autoscaler's queries against the farm's real scrape.

A plain helper module (neither a test module nor a conftest).
"""

from __future__ import annotations

import re

import promql_parser

#: Grafana's template variables, replaced before parsing (``$timeframe`` -> a regex that matches anything).
_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
#: Grafana's built-in interval variables, which stand for a duration.
_GRAFANA_DURATIONS = {"__interval", "__rate_interval", "__range"}


def metric_names(expr: str) -> set[str]:
    """Every metric name ``expr`` selects: the vector selectors' names and their ``__name__`` matchers.

    Raises ``ValueError`` for a ``__name__`` matcher other than equality (a regex could name anything, so
    the query could not be checked against an exposition) and for a query that does not parse.
    """
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            matchers = node.matchers
            for matcher in [*matchers.matchers, *(m for group in matchers.or_matchers for m in group)]:
                if matcher.name != "__name__":
                    continue
                if matcher.op != promql_parser.MatchOp.Equal:
                    raise ValueError(f"{expr!r}: a __name__ matcher other than = cannot be checked")
                names.add(matcher.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def grafana_to_promql(expr: str) -> str:
    """A Grafana target's expression as plain PromQL: interval variables become ``5m``, every other
    template variable ``.*`` (the farm's dashboard uses them only inside ``=~`` matchers)."""

    def value(match: re.Match[str]) -> str:
        return "5m" if match.group(1) in _GRAFANA_DURATIONS else ".*"

    return _GRAFANA_VARIABLE.sub(value, expr)


__all__ = ["grafana_to_promql", "metric_names"]
