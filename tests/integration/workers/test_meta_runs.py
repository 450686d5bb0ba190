"""Meta-only runs without Celery: the champion's base models kept, stacker and calibration refit on new bars.

One farm home for the module: a planted-signal market at 1h whose first 120 days give a full run (promoted
by hand when the gates reject it: the meta-only run needs a champion, not a good one); then 40 more days
of bars arrive and a meta-only run refits on them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.packs import farm_settings, run_in_process
from trainfarm.shared.champions.publish import promote_version
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import planted_signal_bars
from trainfarm.shared.errors import DatasetError, FarmError
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import PromotionReason, Registry, RunKind, dispose_engine
from trainfarm.shared.settings import get_settings
from trainfarm.workers import meta_runs, stages
from trainfarm.workers.payloads import RunJob
from trainfarm.workers.runs import claim_run

SYMBOL, TF = "SYN_USDT", "1h"
FIRST_DAYS, MORE_DAYS = 120, 40
CONFIG = """
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
[timeframes.1h]
training_window = "120d"
"""


@dataclass(frozen=True)
class MetaOnlyRun:
    """A full run's champion, then a meta-only run on newer bars: what each left behind."""

    home: Path
    champion: str  #: the full run's version, champion when the meta-only run starts
    skip_before: str | None  #: skip_reason before the new bars arrived
    skip_after: str | None  #: and after
    meta_run: str
    meta_version: str | None


def _full_run() -> str:
    return run_in_process(SYMBOL, TF, "first full run")


@pytest.fixture(scope="module")
def meta_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetaOnlyRun]:
    home = tmp_path_factory.mktemp("meta") / "home"
    bars = planted_signal_bars((FIRST_DAYS + MORE_DAYS) * 288, 211, strength=0.25)
    first = tmp_path_factory.mktemp("bars") / f"{SYMBOL}-5m.parquet"
    everything = first.with_name(f"all-{SYMBOL}-5m.parquet")
    bars.head(FIRST_DAYS * 288).write_parquet(first)
    bars.write_parquet(everything)
    with farm_settings(home, CONFIG) as settings:
        try:
            open_store().import_file(first, SYMBOL)
            champion = _full_run()
            registry = Registry.open()
            if registry.versions.get(champion).status != "champion":
                promote_version(champion, PromotionReason.MANUAL)
            config = settings.load_config()
            skip_before = meta_runs.skip_reason(registry, config, SYMBOL, TF)
            open_store().import_file(everything, SYMBOL)
            skip_after = meta_runs.skip_reason(registry, config, SYMBOL, TF)
            submitted = claim_run(SYMBOL, TF, meta_runs.meta_reason("test"), kind=RunKind.META)
            job = RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF)
            version = meta_runs.run_meta(job, task_id=f"{job.run_id}-metaonly", threads=1)
            yield MetaOnlyRun(home, champion, skip_before, skip_after, submitted.run_id, version)
        finally:
            embedded_redis().stop()
            dispose_engine(settings.database)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_meta_only_retrain_is_due_only_once_enough_bars_follow_the_champions_data(
    meta_only: MetaOnlyRun,
) -> None:
    assert meta_only.skip_before is not None
    assert "meta_min_rows" in meta_only.skip_before and "needs 400" in meta_only.skip_before
    assert meta_only.skip_after is None


def test_the_meta_only_run_registers_a_gated_version_of_kind_meta(meta_only: MetaOnlyRun) -> None:
    with farm_settings(meta_only.home, CONFIG):
        registry = Registry.open()
        run = registry.runs.get(meta_only.meta_run)
        assert run.kind == RunKind.META and run.status == "succeeded"
        assert run.version == meta_only.meta_version and run.snapshot_hash is not None
        version = registry.versions.get(run.version)
        assert version.gate_report is not None and version.status in ("champion", "rejected")
        assert version.gate_report["passed"] is (version.status == "champion")
        assert registry.runs.base_results(run.id) == []  # no base model trained


def test_the_meta_only_pack_ships_the_champions_base_models_byte_for_byte(meta_only: MetaOnlyRun) -> None:
    with farm_settings(meta_only.home, CONFIG):
        registry = Registry.open()
        old = registry.versions.get(meta_only.champion)
        assert meta_only.meta_version is not None
        new = registry.versions.get(meta_only.meta_version)
        champion = Predictor.load(Path(old.path), expected_manifest_sha256=old.manifest_sha256)
        refit = Predictor.load(Path(new.path), expected_manifest_sha256=new.manifest_sha256)
        refit.self_check()
        old_models = {e["name"]: e for e in champion.manifest["base_models"]}
        for entry in refit.manifest["base_models"]:
            assert entry["sha256"] == old_models[entry["name"]]["sha256"]
            assert _sha(refit.path / entry["file"]) == _sha(champion.path / old_models[entry["name"]]["file"])
        deployed = refit.manifest["data"]["deployed"]
        assert deployed["meta_only"] is True and deployed["base_models_from"] == champion.version
        # Every row the new stacker and calibrator saw comes after the champion's data.
        assert champion.fitted_until is not None and refit.fitted_until is not None
        assert refit.fitted_until > champion.fitted_until
        assert refit.manifest["data"]["first_bar"] > champion.fitted_until.isoformat()
        assert refit.manifest["feature_distribution"] == champion.manifest.get("feature_distribution")
        assert refit.manifest["stacker"]["chosen"] in refit.manifest["stacker"]["cv_logloss"]
        # The base models' attributions are the champion's; the new stacker's importance is its own.
        inherited = refit.manifest["attributions"]
        assert inherited["base_models"] == champion.manifest["attributions"]["base_models"] != {}
        assert set(inherited["stacker_permutation"]) == set(old_models)


def test_too_few_new_bars_fail_the_run_naming_the_count(meta_only: MetaOnlyRun) -> None:
    """Asked for when the new bars are fewer than meta_min_rows, the run refuses clearly."""
    strict = CONFIG + "meta_min_rows = 5000\n"  # under [timeframes.1h]: more 1h bars than there are
    with farm_settings(meta_only.home, strict):
        registry = Registry.open()
        reason = meta_runs.skip_reason(registry, get_settings().load_config(), SYMBOL, TF)
        assert reason is not None and "needs 5000 (meta_min_rows)" in reason
        submitted = claim_run(SYMBOL, TF, "meta:forced", kind=RunKind.META)
        job = RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF)
        with pytest.raises(DatasetError, match=r"needs 5000 \(meta_min_rows\)"):
            meta_runs.run_meta(job, task_id=f"{job.run_id}-metaonly", threads=1)
        stages.fail(job, "test cleanup", model=None)
        assert registry.champions.get(SYMBOL, TF) is not None


def test_a_meta_only_run_needs_a_champion(meta_only: MetaOnlyRun) -> None:
    with farm_settings(meta_only.home, CONFIG):
        registry = Registry.open()
        reason = meta_runs.skip_reason(registry, get_settings().load_config(), "NONE_USDT", TF)
        assert reason is not None and "no champion" in reason
        submitted = claim_run("NONE_USDT", TF, "meta:forced", kind=RunKind.META)
        job = RunJob(run_id=submitted.run_id, symbol="NONE_USDT", timeframe=TF)
        with pytest.raises(FarmError, match="no champion"):
            meta_runs.run_meta(job, task_id=f"{job.run_id}-metaonly", threads=1)
        stages.fail(job, "test cleanup", model=None)
