"""Meta-only runs in the registry: which full retrains merged into one are submitted after it."""

from __future__ import annotations

from trainfarm.shared.registry import Registry, RunKind
from trainfarm.shared.settings import FarmSettings
from trainfarm.workers import meta_runs
from trainfarm.workers.runs import claim_run


def test_full_retrains_merged_into_a_meta_only_run_are_the_ones_to_submit_after_it(
    settings: FarmSettings,
) -> None:
    meta = claim_run("ETH_USDT", "12h", "meta:schedule", kind=RunKind.META)
    claim_run("ETH_USDT", "12h", "meta:forced")
    merged = claim_run("ETH_USDT", "12h", "trigger:stale")
    assert merged.merged and merged.run_id == meta.run_id and merged.kind == RunKind.META
    run = Registry.open(settings.database).runs.get(meta.run_id)
    assert meta_runs.full_reasons(run) == ["trigger:stale"]
    assert meta_runs.meta_reason("schedule") == "meta:schedule" == meta_runs.meta_reason("meta:schedule")
