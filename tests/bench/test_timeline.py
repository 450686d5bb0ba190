"""bench.timeline: slot-seconds of a farm run split into busy time per task kind, gaps and tail."""

from __future__ import annotations

import pytest

from bench.timeline import TaskSpan, breakdown, chord_joins


def span(name: str, host: str, started: float, ended: float) -> TaskSpan:
    return TaskSpan(uuid=f"{name}-{host}-{started}", name=name, hostname=host, started=started, ended=ended)


def test_busy_gaps_and_tail_add_up_to_the_slot_seconds() -> None:
    spans = [
        span("farm.prepare_run", "w1", 0.0, 2.0),
        span("farm.train_base", "w1", 3.0, 8.0),  # a 1 s gap on w1 (a queue or chord wait)
        span("farm.train_base", "w2", 2.0, 6.0),  # w2 idles for its first 2 s
        span("farm.train_meta", "w2", 8.5, 10.0),  # then 2.5 s before the meta stage
    ]
    found = breakdown(spans, start=0.0, end=12.0, slots=2)
    assert found.busy_s == {"snapshot (prepare)": 2.0, "base models": 9.0, "meta stage": 1.5}
    # w1's last task ends at 8 (4 s of tail), w2's at 10 (2 s).
    assert found.idle_tail_s == pytest.approx(6.0)
    assert found.idle_gaps_s == pytest.approx(24.0 - 12.5 - 6.0)
    assert sum(found.busy_s.values()) + found.idle_gaps_s + found.idle_tail_s == pytest.approx(24.0)


def test_a_slot_that_never_ran_a_task_is_all_tail() -> None:
    found = breakdown([span("farm.train_base", "w1", 0.0, 10.0)], start=0.0, end=10.0, slots=2)
    assert found.idle_tail_s == pytest.approx(10.0) and found.idle_gaps_s == pytest.approx(0.0)


def test_each_run_is_matched_with_the_next_meta_stage() -> None:
    spans = [span("farm.train_meta", "w1", 5.2, 6.0), span("farm.train_meta", "w2", 9.0, 9.5)]
    assert chord_joins([5.0, 8.7], spans) == pytest.approx([0.2, 0.3])
    assert chord_joins([5.0, 9.6], spans) == pytest.approx([0.2])  # no meta stage after 9.6
