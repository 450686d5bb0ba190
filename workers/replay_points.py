"""The stages of one replay point as plain functions, which the replay tasks call.

The same stages as a live run (:mod:`trainfarm.workers.stages`), through the same domain functions
(snapshot, base models, stacker, calibration, p*, the deployed refit), with three differences that keep a
replay out of the live farm: the snapshot holds only the bars closed by the point's time; everything is
written under the replay's own folder (``<artifacts>/replays/<id>/``) and recorded in the replay tables,
never as a run, a version or a champion; and the gates' comparison with a champion waits for the decision
pass (:mod:`trainfarm.workers.replay_runs`), which knows the champion of each moment. Every stage is safe
to run twice: a base model already trained is reused, a point whose pack is written is not built again.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, snapshot_from_store
from trainfarm.shared.errors import FarmError
from trainfarm.shared.packs.artifacts import new_version_id, pack_dir
from trainfarm.shared.registry import PointStatus, Registry
from trainfarm.shared.replay.candidates import save_candidate
from trainfarm.shared.replay.clock import replay_dir
from trainfarm.shared.replay.decisions import candidate_path
from trainfarm.shared.settings import get_settings
from trainfarm.shared.training.base import BaseModelResult, result_path, reusable_result, train_base_model
from trainfarm.shared.training.judging import Judgement
from trainfarm.shared.zoo import MODEL_NAMES, get_spec
from trainfarm.workers.payloads import ReplayJob, ReplayStageJob, SnapshotRef
from trainfarm.workers.runs import one_result_per_model
from trainfarm.workers.stages import check_config_hash, load_snapshot_ref


def staging_dir(job: ReplayJob) -> Path:
    """The point's staging folder (base models and their predictions until its pack is written)."""
    return replay_dir(get_settings().artifacts_dir, job.replay_id) / "staging" / job.run_id


def packs_root(replay_id: str) -> Path:
    """Where the replay's packs live (``<root>/<SYMBOL>/<TF>/<version>``, as in the artifact store)."""
    return replay_dir(get_settings().artifacts_dir, replay_id) / "packs"


def check_config(job: ReplayJob) -> None:
    """Refuse to work on a replay started with another config than this worker's."""
    check_config_hash(job.config_hash, f"replay {job.replay_id} was started")


def prepare(job: ReplayJob) -> ReplayStageJob | None:
    """Build the point's causal snapshot (bars closed by ``job.at``); None when the point is trained."""
    check_config(job)
    registry = Registry.open()
    if registry.replays.point(job.replay_id, job.idx).status is PointStatus.TRAINED:
        return None
    settings = get_settings()
    # Only the bars whose stored bars all closed by the point's time: the snapshot's labels then end by it too
    # (the newest rows get none), the causal cut every backtest must make.
    # The context series are cut at the same time, so no feature sees a bar the point could not have.
    snapshot = snapshot_from_store(
        open_store(),
        symbol=job.symbol,
        timeframe=job.timeframe,
        config=settings.load_config(),
        root=replay_dir(settings.artifacts_dir, job.replay_id) / "datasets",
        end=job.at,
    )
    ref = SnapshotRef.of(
        Path(snapshot.path).with_suffix(".json"),
        settings.artifacts_dir,
        file_sha256=snapshot.file_sha256,
        content_hash=snapshot.content_hash,
    )
    return ReplayStageJob(**job.model_dump(), snapshot=ref)


def load_point_snapshot(job: ReplayStageJob) -> DatasetSnapshot:
    """The snapshot a stage job names, refusing one whose recorded hash differs from the job's."""
    return load_snapshot_ref(job.snapshot, "the replay point was prepared with")


def train_base(
    job: ReplayStageJob, *, threads: int, device: str, worker: str | None = None
) -> dict[str, object]:
    """Train one base model of the point (or reuse it when trained already); returns its JSON reference."""
    if job.model is None:
        raise FarmError("replay_base needs a model name")
    spec = get_spec(job.model)
    check_config(job)
    settings = get_settings()
    config = settings.load_config()
    work_dir = staging_dir(job)
    if reusable_result(work_dir, spec.name, job.run_id) is None:
        Registry.open().replays.base_started(job.replay_id, job.idx)
    result = train_base_model(
        load_point_snapshot(job),
        spec.name,
        work_dir,
        run_id=job.run_id,
        training=config.training,
        splits=config.splits,
        threads=threads,
        device=device,
        worker=worker or socket.gethostname(),
    )
    return result.to_json()


def collect_results(job: ReplayStageJob, results: Sequence[object]) -> dict[str, BaseModelResult]:
    """Each base model's result exactly once; models missing from ``results`` come from the staging folder."""
    dicts = [r for r in results if isinstance(r, dict)]
    present = {r.get("model") for r in dicts}
    for model in MODEL_NAMES:
        path = result_path(staging_dir(job), model)
        if model not in present and path.is_file():
            stored = reusable_result(staging_dir(job), model, job.run_id)
            if stored is not None:
                dicts.append(stored.to_json())
    indexed = one_result_per_model(dicts, MODEL_NAMES)
    return {model: BaseModelResult.from_json(data) for model, data in indexed.items()}


def train_meta(job: ReplayStageJob, results: Sequence[object], *, threads: int) -> str:
    """Stack, calibrate, choose p*, refit and write the point's pack; keep its candidate; record it.

    The pack ships the refit models whatever the gates said: a replay's policies decide afterwards (the
    gated one against the champion of its moment), and each of them deploys what the farm deploys when
    it promotes. Returns the version id; a point already trained returns its version untouched.
    """
    from trainfarm.shared.training.meta_stage import build_version

    check_config(job)
    registry = Registry.open()
    point = registry.replays.point(job.replay_id, job.idx)
    if point.status is PointStatus.TRAINED and point.version is not None:
        return point.version
    base = collect_results(job, results)
    work_dir = staging_dir(job)

    version = new_version_id(job.at, job.run_id)
    final = pack_dir(packs_root(job.replay_id), job.symbol, job.timeframe.value, version)

    def keep(judged: Judgement) -> None:
        # Beside the pack's folder, written before the pack: a pack that exists always has its candidate.
        save_candidate(candidate_path(final), judged.candidate, judged.x_test)

    built = build_version(
        job,
        load_point_snapshot(job),
        base,
        work_dir,
        threads=threads,
        run_created_at=job.at,
        champion=None,
        pack_root=packs_root(job.replay_id),
        always_deploy=True,
        on_judged=keep,
    )
    registry.replays.trained(
        job.replay_id,
        job.idx,
        version=built.version,
        path=str(built.path),
        manifest_sha256=built.manifest_sha256,
    )
    shutil.rmtree(work_dir, ignore_errors=True)
    return built.version


def train_here(job: ReplayJob, *, threads: int) -> str | None:
    """Train one point in this process, stage after stage: the point-by-point baseline of `make
    bench-replay`, and what the fan-out's chord does across workers. None when it was trained already."""
    stage = prepare(job)
    if stage is None:
        return None
    results = [
        train_base(stage.model_copy(update={"model": model}), threads=threads, device="cpu")
        for model in MODEL_NAMES
    ]
    return train_meta(stage, results, threads=threads)


def fail(job: ReplayJob, error: str) -> None:
    """Record the point's failure (the driver fails the replay, naming the point)."""
    Registry.open().replays.point_failed(job.replay_id, job.idx, error)


__all__ = [
    "collect_results",
    "fail",
    "load_point_snapshot",
    "packs_root",
    "prepare",
    "staging_dir",
    "train_base",
    "train_here",
    "train_meta",
]
