"""A crash at any step from writing a pack to announcing it: recovery makes the farm agree, bots stay whole.

docs/RELIABILITY.md, "A crash between writing a pack and announcing it; a full disk". The module trains the 8
base models of one run once, on a real farm home (SQLite registry, artifact root, the embedded Redis): a
planted-signal SYN_USDT 12h market whose candidates pass the gates (the bundled real bars are rejected by them
at 12h, so no promotion would ever start), with an earlier version promoted champion. Two states of that home
are kept: before the run's meta stage, and with its pack written but not registered. Each case restores one at
the same path (the registry holds absolute pack paths), restarts its Redis and runs the meta task in a child
process (:mod:`tests.reliability.crash_child`, forked from a process that imported the farm once) that calls
``os._exit(137)`` at one step: no ``finally`` or ``except`` runs, as under SIGKILL.

========== ============================================================================== ========
point      the child dies when                                                             starts
========== ============================================================================== ========
staging    3 files are fsynced in the ``.staging-<version>-<hex>`` folder (no manifest)     before
renamed    the pack was renamed into place (not registered; the rename not even fsynced)   before
registered the registry row of the version is written (the run succeeded; not promoted)    packed
promoted   the registry promotion committed (the CHAMPION pointer names the old one)       packed
pointer    the pointer names the new version (the Redis champion key the old one)          packed
key-set    the champion key names it; PUBLISH and XADD never ran (made by hand: the farm   packed
           runs the three as one Lua script, so only a crash inside Redis could split them)
announced  the whole announcement reached Redis; the task died before returning            packed
========== ============================================================================== ========

("packed": the meta stage finds the run's pack in place, as a redelivery after "renamed" does, and goes on
from there; the steps under test are the same and five trainings are spared.)

Recovery is what production does: Celery redelivers the meta task (acks_late), i.e. the same
``train_meta`` call with the same task id. Each case proves

(a) at the crash, exactly the steps before the point are done (checked one by one), and a bot started then
    serves the old champion at every point before the key moves and the new, complete pack after: never
    a staging folder or an unregistered pack;
(b) after recovery the registry's champion, the CHAMPION pointer and the Redis key name the new version
    (with its manifest's sha256), one promotion to it is recorded, the run succeeded with exactly one
    version, the market's folder holds the two packs, the pointer and its lock and nothing else (no
    ``.staging-*`` left), the stream holds one "promoted" event for it (none after key-set: announcing
    finds the key already right and repeats nothing), and announcing again changes nothing;
(c) a bot watching through crash and recovery swaps once, old to new, and never refuses a pack.

A full disk: the meta stage writes its pack onto a really full file system (a small tmpfs mounted over
the market's folder in a private mount namespace, ``unshare --mount``): the error is an ArtifactError
naming the pack and "no space left on device", the file system holds no partial pack and no staging
folder, and the registry, the pointer and the Redis key are unchanged.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import pytest

from tests.reliability.crash_child import (
    CHILD_TIMEOUT_S,
    CRASH_STATUS,
    STAGING_FILES_BEFORE_CRASH,
    DiskFullReport,
    Payload,
)
from tests.support.packs import SMALL_CONFIG, farm_settings, run_in_process, train_in_process
from tests.support.services import REPO_ROOT, require
from tests.support.state import registry_state, tree_state
from tests.support.waiting import wait_until
from trainfarm.shared.champions.announce import pack_uri, read_champion
from trainfarm.shared.champions.publish import CHAMPION_FILE, read_pointer, reannounce
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import planted_signal_bars
from trainfarm.shared.packs.artifacts import MANIFEST, new_version_id, read_manifest
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry, RunStatus, VersionRecord, dispose_engine
from trainfarm.shared.settings import FarmSettings
from trainfarm.workers import stages
from trainfarm.workers.payloads import StageJob
from trainfarm.workers.runs import run_dir
from trainfarm_client.contract import EVENTS_STREAM, PROMOTED
from trainfarm_client.live import LiveModel

SYMBOL, TF = "SYN_USDT", "12h"
CONFIG = f'[universe]\nsymbols = ["{SYMBOL}"]\ntimeframes = ["{TF}"]\n' + SMALL_CONFIG
#: 400 days of 5m bars with a weekly cycle (shared/data/synthetic.py): ~800 12h bars, passes every gate.
SIGNAL_DAYS, SIGNAL_STRENGTH, SIGNAL_SEED = 400, 0.1, 501
#: How the test starts tests/reliability/crash_child.py (in the repository root).
CHILD_COMMAND = (sys.executable, "-m", "tests.reliability.crash_child")
#: Deadlines against hangs, not speed requirements.
ANSWER_TIMEOUT_S = CHILD_TIMEOUT_S + 60
DISK_FULL_TIMEOUT_S = 240
BOT_TIMEOUT_S = 15.0
#: Why the crashing run exists: a live trigger, so its candidate may replace a champion with no new rows.
LIVE_TRIGGER = "trigger:live_sharpe"
#: A watching bot re-reads the champion key this often (seconds).
RECHECK_S = 0.1
#: The states a case starts from: before the run's meta stage, and with its pack written (unregistered).
PRISTINE, PACKED = "pristine", "packed"


@dataclass(frozen=True)
class Point:
    """A crash point, the state its meta stage starts from, and what the farm holds right after the crash."""

    name: str  #: crash_child's name of the point
    #: PACKED: the pack is in place already (a redelivery after a crash at "renamed"), so the meta stage
    #: reuses it and goes straight to the registry; this spares five trainings, not a step of the path.
    start: str
    pack_in_place: bool  #: the new pack is in its final folder (complete)
    registered: bool  #: the registry has the new version
    registry_new: bool  #: the registry's champion is the new version
    pointer_new: bool  #: the CHAMPION pointer names the new version
    key_new: bool  #: the Redis champion key names the new version


POINTS = (
    Point("staging", PRISTINE, False, False, False, False, False),
    Point("renamed", PRISTINE, True, False, False, False, False),
    Point("registered", PACKED, True, True, False, False, False),
    Point("promoted", PACKED, True, True, True, False, False),
    Point("pointer", PACKED, True, True, True, True, False),
    Point("key-set", PACKED, True, True, True, True, True),
    Point("announced", PACKED, True, True, True, True, True),
)


class CrashChildren:
    """crash_child's ``serve`` process: imports the farm once, forks one crash child per request."""

    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("w") as err:
            self._proc = subprocess.Popen(
                [*CHILD_COMMAND, "serve"],
                cwd=REPO_ROOT,
                env=dict(os.environ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,  # its own process group: close() can end it and a hung child
            )

    def crash(self, point: str, payload_file: Path) -> int:
        """Run the meta stage in a new child that dies at ``point``; its exit status."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{point} {payload_file}\n")
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], ANSWER_TIMEOUT_S)
        assert ready, f"no answer from the crash child of {point} in {ANSWER_TIMEOUT_S} s:\n{self.tail()}"
        answer = json.loads(self._proc.stdout.readline() or "null")
        assert answer is not None, f"the crash child server died:\n{self.tail()}"
        assert answer["point"] == point
        return int(answer["status"])

    def tail(self) -> str:
        return self.log.read_text()[-4000:]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()  # end of requests: serve returns
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@dataclass(frozen=True)
class Template:
    """The farm home before the meta stage of its second run, copies of its states, the crash children."""

    settings: FarmSettings
    states: dict[str, Path]  #: PRISTINE and PACKED copies of the home
    payload: Payload  #: the second run's meta task: stage job, the 8 results, task id
    payload_file: Path
    old: VersionRecord  #: the champion (the first run's version)
    new: str  #: the id the second run's version gets (deterministic from the run)
    children: CrashChildren

    @property
    def run_id(self) -> str:
        return str(self.payload.stage["run_id"])

    @property
    def market(self) -> Path:
        """The market's pack folder: packs, the CHAMPION pointer, its lock."""
        return self.settings.artifacts_dir / SYMBOL / TF

    def restore(self, state: str) -> None:
        """The home as ``state`` holds it (at the same path: the registry holds absolute pack paths),
        with its Redis running."""
        _stop_services(self.settings)
        shutil.rmtree(self.settings.home)
        shutil.copytree(self.states[state], self.settings.home, symlinks=True)
        embedded_redis(self.settings).ensure_running()


def _stop_services(settings: FarmSettings) -> None:
    """Stop the home's Redis (it flushes its append-only file) and close this process's registry engine."""
    embedded_redis(settings).stop()
    dispose_engine(settings.database)


def _write_pack(job: StageJob, results: list[dict[str, object]], old: VersionRecord) -> None:
    """Write the run's pack as its meta stage does (the gates against ``old``), registering nothing."""
    from trainfarm.shared.training.meta_stage import build_version

    def champion() -> Predictor:
        return Predictor.load(Path(old.path), expected_manifest_sha256=old.manifest_sha256)

    run = Registry.open().runs.get(job.run_id)
    build_version(
        job,
        stages.load_run_snapshot(job),
        stages.collect_results(job, results),
        run_dir(job.run_id),
        threads=1,
        run_created_at=run.created_at,
        champion=champion,
        standing=stages.champion_standing(old, run.reasons),
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A champion, and a second run whose 8 base models are trained (its meta stage not started)."""
    root = tmp_path_factory.mktemp("pack-crashes")
    home = root / "home"
    with farm_settings(home, CONFIG) as settings:
        children = CrashChildren(root / "crash-children.log")  # imports while the models train
        try:
            embedded_redis(settings).ensure_running()
            try:
                bars = root / f"{SYMBOL}-5m.parquet"
                planted_signal_bars(
                    SIGNAL_DAYS * 288, SIGNAL_SEED, strength=SIGNAL_STRENGTH, period_days=7
                ).write_parquet(bars)
                open_store().import_file(bars, SYMBOL)
                registry = Registry.open()
                old = registry.versions.get(run_in_process(SYMBOL, TF, "reliability: the champion"))
                assert old.status == "champion", old.gate_report  # the planted signal passes the gates
                # The champion was built a minute ago on the same bars, so none of the candidate's test rows
                # is new to it and a fresh champion would stay (docs/ml.md#gates): the second run is one a
                # live trigger asked for (the champion's live Sharpe fell), which lets a passing candidate
                # replace it.
                stage, results = train_in_process(SYMBOL, TF, LIVE_TRIGGER)
                new = new_version_id(registry.runs.get(stage.run_id).created_at, stage.run_id)
            finally:
                _stop_services(settings)
            states = {PRISTINE: root / PRISTINE, PACKED: root / PACKED}
            shutil.copytree(home, states[PRISTINE], symlinks=True)
            _write_pack(stage, results, old)
            dispose_engine(settings.database)
            shutil.copytree(home, states[PACKED], symlinks=True)
            payload = Payload(
                stage=stage.model_dump(mode="json"), results=results, task_id=f"{stage.run_id}-meta"
            )
            payload_file = payload.write(root / "payload.json")
            yield Template(settings, states, payload, payload_file, old, new, children)
        finally:
            children.close()


@pytest.fixture
def crash_home(template: Template) -> Iterator[Template]:
    """The template, its home to be restored by the test; Redis stopped and the registry closed after."""
    try:
        yield template
    finally:
        _stop_services(template.settings)


def make_bot(crash_home: Template) -> LiveModel:
    """A bot of the market on the farm's Redis (not started)."""
    return LiveModel(
        SYMBOL,
        TF,
        redis_url=embedded_redis(crash_home.settings).url,
        recheck_interval=RECHECK_S,
        cache_dir=crash_home.settings.home / "bot-cache",
    )


def key_version(crash_home: Template) -> str | None:
    client = redis_client(crash_home.settings)
    try:
        record = read_champion(client, SYMBOL, TF)
    finally:
        client.close()
    return None if record is None else str(record["version"])


def staging_folders(crash_home: Template) -> list[str]:
    return sorted(p.name for p in crash_home.market.iterdir() if p.name.startswith(".staging-"))


def promoted_events(crash_home: Template, version: str) -> int:
    """How many "promoted" events for ``version`` the events stream holds."""
    client = redis_client(crash_home.settings)
    try:
        entries = cast("list[tuple[str, dict[str, str]]]", client.xrange(EVENTS_STREAM))
    finally:
        client.close()
    found = [json.loads(fields["data"]) for _, fields in entries if fields["event"] == PROMOTED]
    return sum(1 for data in found if data["version"] == version)


def assert_state_at_crash(crash_home: Template, point: Point) -> None:
    """What the crash left: exactly the steps before ``point`` done, nothing after it."""
    registry = Registry.open()
    old, new = crash_home.old.version, crash_home.new
    staging = staging_folders(crash_home)
    if point.name == "staging":  # a real partial pack: some files, no manifest
        assert len(staging) == 1 and staging[0].startswith(f".staging-{new}-"), staging
        partial = crash_home.market / staging[0]
        files = [p for p in partial.rglob("*") if p.is_file()]
        assert len(files) == STAGING_FILES_BEFORE_CRASH and not (partial / MANIFEST).exists(), files
    else:
        assert staging == []
    pack = crash_home.market / new
    assert pack.exists() == point.pack_in_place
    if point.pack_in_place:
        read_manifest(pack)  # complete: every file matches the manifest
    assert any(v.version == new for v in registry.versions.of_market(SYMBOL, TF)) == point.registered
    champion = registry.champions.get(SYMBOL, TF)
    assert champion is not None and champion.version == (new if point.registry_new else old)
    assert read_pointer(crash_home.settings.artifacts_dir, SYMBOL, TF) == (new if point.pointer_new else old)
    assert key_version(crash_home) == (new if point.key_new else old)


def assert_agreement(crash_home: Template, *, events: range) -> None:
    """Registry, pointer and Redis key name the new version; one promotion; one version; no litter."""
    registry = Registry.open()
    old, new = crash_home.old.version, crash_home.new
    champion = registry.champions.get(SYMBOL, TF)
    assert champion is not None and champion.version == new
    assert read_pointer(crash_home.settings.artifacts_dir, SYMBOL, TF) == new
    client = redis_client(crash_home.settings)
    try:
        record = read_champion(client, SYMBOL, TF)
    finally:
        client.close()
    assert record is not None
    assert (record["version"], record["sha256"]) == (new, champion.manifest_sha256)
    assert record["uri"] == pack_uri(champion.path)
    read_manifest(Path(champion.path), expected_sha256=champion.manifest_sha256)
    promotions = [p for p in registry.champions.history(SYMBOL, TF) if p.to_version == new]
    assert [(p.from_version, p.reason.value) for p in promotions] == [(old, "gate")]
    run = registry.runs.get(crash_home.run_id)
    assert (run.status, run.version) == (RunStatus.SUCCEEDED, new)
    assert [v.version for v in registry.versions.of_market(SYMBOL, TF) if v.run_id == crash_home.run_id] == [
        new
    ]
    assert registry.versions.get(old).status == "retired"
    left = sorted(p.name for p in crash_home.market.iterdir())
    assert left == sorted([f".{CHAMPION_FILE}.lock", CHAMPION_FILE, old, new]), left
    assert not (
        crash_home.settings.runs_dir / crash_home.run_id
    ).exists()  # the run's staging folder is freed
    assert promoted_events(crash_home, new) in events
    again = reannounce(SYMBOL, TF)  # announcing once more is a no-op
    assert again is not None and (again.version, again.announced) == (new, "already announced")
    assert promoted_events(crash_home, new) in events


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_after_a_crash_at_each_step_recovery_agrees_and_bots_never_load_a_partial_pack(
    crash_home: Template, point: Point
) -> None:
    crash_home.restore(point.start)
    old, new = crash_home.old.version, crash_home.new
    swaps: list[tuple[str | None, str]] = []
    watcher = make_bot(crash_home)
    watcher.on_reload(lambda before, after: swaps.append((before.version if before else None, after.version)))
    watcher.start()
    try:
        assert watcher.version == old
        status = crash_home.children.crash(point.name, crash_home.payload_file)
        assert status == CRASH_STATUS, f"exit status {status}:\n{crash_home.children.tail()}"
        assert_state_at_crash(crash_home, point)

        # A bot starting now serves what the key names: the old champion, or the new complete pack.
        bot = make_bot(crash_home).start(background=False)
        try:
            expected = new if point.key_new else old
            served = bot.champion
            assert served is not None and served.version == expected and bot.last_error is None
            assert served.path == Path(Registry.open().versions.get(expected).path)
        finally:
            bot.close()

        # Recovery: Celery redelivers the meta task (same id, same arguments).
        version = stages.train_meta(
            StageJob.model_validate(crash_home.payload.stage),
            crash_home.payload.results,
            task_id=crash_home.payload.task_id,
            threads=1,
        )
        assert version == new
        # key-set: the key was written without the nudge and the event; announcing finds the key as it
        # must be and repeats nothing, so that (unreachable) state recovers without the event.
        assert_agreement(crash_home, events=range(2) if point.name == "key-set" else range(1, 2))

        wait_until(lambda: watcher.version == new, BOT_TIMEOUT_S, f"the watching bot to serve {new}")
        assert swaps == [(None, old), (old, new)] and watcher.last_error is None, (swaps, watcher.last_error)
    finally:
        watcher.close()


# --- a full disk -----------------------------------------------------------------------------------------


def _unshare_prefix() -> list[str]:
    """unshare arguments for a private mount namespace in which this process may mount a tmpfs."""
    if os.geteuid() == 0:
        return ["unshare", "--mount"]
    return ["unshare", "--user", "--map-root-user", "--mount"]


def _can_mount_tmpfs(where: Path) -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    probe = [*_unshare_prefix(), "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _tmpfs_bytes(folder: Path) -> int:
    """Room ``folder``'s files take on a tmpfs (whole pages)."""
    page = 4096
    return sum(-(-p.stat().st_size // page) * page for p in folder.rglob("*") if p.is_file())


def test_a_full_disk_while_writing_a_pack_leaves_no_partial_pack_and_a_clear_error(
    crash_home: Template, tmp_path: Path
) -> None:
    require(_can_mount_tmpfs(tmp_path / "probe"), "cannot mount a tmpfs in a private mount namespace")
    crash_home.restore(PRISTINE)
    pack_bytes = _tmpfs_bytes(crash_home.market / crash_home.old.version)  # the new pack is about as large
    existing = _tmpfs_bytes(crash_home.market)
    # The market's contents fit, with room for less than half a pack.
    payload = replace(crash_home.payload, tmpfs_kib=(existing + pack_bytes // 2) // 1024)
    payload_file = payload.write(tmp_path / "payload.json")
    before_files = tree_state(crash_home.market)
    before = registry_state(crash_home.settings.database)
    key_before = key_version(crash_home)

    child = subprocess.run(
        [*_unshare_prefix(), *CHILD_COMMAND, "disk-full", str(payload_file)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=DISK_FULL_TIMEOUT_S,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    report = DiskFullReport(**json.loads(child.stdout.strip().splitlines()[-1]))

    assert report.free_bytes_before < pack_bytes  # the pack really could not fit
    assert report.error_type == "ArtifactError", (report.error_type, report.error)
    assert report.cause_errno == errno.ENOSPC
    assert "no space left on device" in report.error.lower()
    assert str(crash_home.market / crash_home.new) in report.error and "nothing was published" in report.error
    # The full file system holds what it held: the champion's pack and pointer, no partial pack or staging.
    assert report.listing == sorted(before_files), sorted(set(report.listing) ^ set(before_files))
    assert report.pointer == crash_home.old.version
    after = registry_state(crash_home.settings.database)
    kept = ("versions", "promotions")
    assert {t: after[t] for t in kept} == {t: before[t] for t in kept}
    registry = Registry.open()
    champion = registry.champions.get(SYMBOL, TF)
    assert champion is not None and champion.version == crash_home.old.version
    assert registry.runs.get(crash_home.run_id).version is None
    assert key_version(crash_home) == key_before == crash_home.old.version
