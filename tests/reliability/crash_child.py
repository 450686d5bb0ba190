"""The child process of ``test_pack_crashes.py``: a meta stage that dies at one chosen step, like SIGKILL.

Run as ``python -m tests.reliability.crash_child POINT PAYLOAD_FILE`` in the repository root, with the
FARM_* variables of the farm home. ``PAYLOAD_FILE`` holds the JSON of :class:`Payload`: the run's stage
job, its 8 base-model results and the meta task's id. The child wraps one function of the farm (test-only
code: production code has no hooks) so that ``os._exit(CRASH_STATUS)`` runs at the point, then calls
:func:`trainfarm.workers.stages.train_meta` exactly as the Celery task does. ``os._exit`` skips every
``finally`` and ``except`` block, flushes nothing and runs no atexit handler: to the files, the registry
and Redis it is the same as a SIGKILL at that instant.

Exit status: CRASH_STATUS when the point was reached, NOT_REACHED when the meta stage finished without
passing it (the test then fails: the injection missed), anything else for an error.

``serve`` saves the ~4 s of imports (LightGBM, XGBoost, CatBoost, scikit-learn, matplotlib) per crash:
it imports the farm once, without running anything, then for each line ``POINT PAYLOAD_FILE`` on stdin
forks a fresh child process that does the above, waits for it (at most CHILD_TIMEOUT_S, then SIGKILL)
and answers one JSON line ``{"point": ..., "status": <exit status>}`` on stdout. Each child starts from
the same untouched, freshly imported state; it inherits no connection, engine or settings (none exist
before the fork).

``disk-full`` is the other mode: inside a private mount namespace (the test starts it under
``unshare --mount``), mount a small tmpfs over the market's pack folder (its contents copied in first,
so the champion's pack and the CHAMPION pointer are still there), run the meta stage, and print a JSON
:class:`DiskFullReport` of what happened and of what is left on that file system.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Exit status of a child killed at its point (SIGKILL's 128 + 9).
CRASH_STATUS = 137
#: Exit status of a child whose meta stage finished without reaching its point.
NOT_REACHED = 3
#: Longest a forked crash child may run before ``serve`` kills it (a deadline against hangs).
CHILD_TIMEOUT_S = 180.0
#: Files the staging folder holds (fsynced) when crash point "staging" strikes: a partial pack.
STAGING_FILES_BEFORE_CRASH = 3


@dataclass(frozen=True)
class Payload:
    """What the meta task of the run receives: its stage job (JSON), the chord's results, its task id."""

    stage: dict[str, Any]
    results: list[dict[str, Any]]
    task_id: str
    #: disk-full mode only: the tmpfs size in KiB
    tmpfs_kib: int = 0

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def read(cls, path: Path) -> Payload:
        return cls(**json.loads(path.read_text()))


@dataclass(frozen=True)
class DiskFullReport:
    """What the meta stage did on a full file system, and what that file system holds afterwards."""

    error_type: str | None  #: the exception's class name, None when the stage did not fail
    error: str  #: its message
    cause_errno: int | None  #: errno of the OSError it was raised from (28: ENOSPC)
    listing: list[str]  #: every path left under the market's folder, relative, sorted
    pointer: str | None  #: the CHAMPION pointer's content afterwards
    free_bytes_before: int  #: room left on the tmpfs before the meta stage started


def crash() -> None:
    """Die now, the way SIGKILL kills: no cleanup of any kind."""
    os._exit(CRASH_STATUS)


Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def _after(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` that dies once it has returned (its effects are complete and durable)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        function(*args, **kwargs)
        crash()

    return wrapper


def _patch(owner: object, name: str, wrap: Wrapper) -> None:
    """Replace the function ``owner.name`` by ``wrap(it)``, in this process only."""
    setattr(owner, name, wrap(getattr(owner, name)))


def _die_at_fsync(count: int) -> Wrapper:
    """``_fsync_file`` that dies once it has synced ``count`` files."""

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        synced: list[Path] = []

        def fsync_file(path: Path) -> None:
            real(path)
            synced.append(path)
            if len(synced) == count:
                crash()

        return fsync_file

    return wrap


def _die_after_rename(real: Callable[..., Any]) -> Callable[..., Any]:
    """``fsync_dir`` that dies at the first folder outside the staging folder: the market folder, synced
    right after the rename (the staging folders, everything in them, are synced before it)."""

    def fsync_dir(path: Path) -> None:
        if ".staging-" not in str(path):
            crash()
        real(path)

    return fsync_dir


def _set_key_and_die(real: Callable[..., Any]) -> Callable[..., Any]:
    """``announce`` that SETs the champion key to the record it would write, then dies: no PUBLISH, no
    XADD. (The farm runs the three as one Lua script, so only a crash inside Redis could split them.)"""
    from trainfarm.shared.champions.announce import champion_record, dumps
    from trainfarm_client.contract import champion_key

    def announce(client: Any, **kwargs: Any) -> None:
        record = champion_record(
            symbol=kwargs["symbol"],
            timeframe=kwargs["timeframe"],
            version=kwargs["version"],
            manifest_sha256=kwargs["manifest_sha256"],
            pack_path=kwargs["pack_path"],
            promoted_at=kwargs["promoted_at"],
            base_url=kwargs.get("base_url"),
            root=kwargs.get("root"),
        )
        client.set(champion_key(kwargs["symbol"], kwargs["timeframe"]), dumps(record))
        crash()

    return announce


def _inject(point: str) -> None:
    """Wrap the farm function at ``point`` (the table in test_pack_crashes.py says where each one is)."""
    from trainfarm.shared.champions import publish
    from trainfarm.shared.packs import artifacts
    from trainfarm.shared.registry import ChampionStore, VersionStore

    where: dict[str, tuple[object, str, Wrapper]] = {
        "staging": (artifacts, "_fsync_file", _die_at_fsync(STAGING_FILES_BEFORE_CRASH)),
        "renamed": (artifacts, "fsync_dir", _die_after_rename),
        "registered": (VersionStore, "add", _after),
        "promoted": (ChampionStore, "promote", _after),
        "pointer": (publish, "_write_pointer", _after),
        "key-set": (publish, "announce", _set_key_and_die),
        # The whole announcement reached Redis; the task dies before it returns (before Celery acks).
        "announced": (publish, "announce", _after),
    }
    if point not in where:
        raise SystemExit(f"unknown crash point {point!r}")
    _patch(*where[point])


def _train_meta(payload: Payload) -> str | None:
    from trainfarm.workers import stages
    from trainfarm.workers.payloads import StageJob

    job = StageJob.model_validate(payload.stage)
    return stages.train_meta(job, payload.results, task_id=payload.task_id, threads=1)


def _market_folder(payload: Payload) -> Path:
    from trainfarm.shared.settings import get_settings

    return get_settings().artifacts_dir / str(payload.stage["symbol"]) / str(payload.stage["timeframe"])


def _disk_full(payload: Payload) -> DiskFullReport:
    """Mount a ``tmpfs_kib`` tmpfs over the market folder (contents kept), run the meta stage, report."""
    folder = _market_folder(payload)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved"
        shutil.copytree(folder, saved, symlinks=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={payload.tmpfs_kib}k,mode=0755", "tmpfs", str(folder)],
            check=True,
            timeout=30,
        )
        shutil.copytree(saved, folder, symlinks=True, dirs_exist_ok=True)
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    error_type, error, cause_errno = None, "", None
    try:
        _train_meta(payload)
    except Exception as exc:
        error_type, error = type(exc).__name__, str(exc)
        cause = exc.__cause__
        cause_errno = cause.errno if isinstance(cause, OSError) else None
    listing = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    pointer = folder / "CHAMPION"
    text = pointer.read_text().strip() if pointer.is_file() else None
    return DiskFullReport(error_type, error, cause_errno, listing, text, free)


def run_point(point: str, payload_file: Path) -> int:
    """Crash at ``point`` (an exit status of CRASH_STATUS, from inside) or return NOT_REACHED."""
    _inject(point)
    _train_meta(Payload.read(payload_file))
    return NOT_REACHED


def serve() -> int:
    """Import once, then fork one crash child per request on stdin (see the module docstring)."""
    # The slow imports (the ML libraries, matplotlib), done once, before any fork; nothing runs yet.
    import trainfarm.shared.training.meta_stage
    import trainfarm.workers.stages  # noqa: F401

    for line in sys.stdin:
        point, payload_file = line.split()
        pid = os.fork()
        if pid == 0:  # the crash child: nothing it does may reach the answers on stdout
            os.dup2(2, 1)
            status = 1
            try:
                status = run_point(point, Path(payload_file))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(status)
        print(json.dumps({"point": point, "status": _wait(pid, CHILD_TIMEOUT_S)}), flush=True)
    return 0


def _wait(pid: int, timeout: float) -> int:
    """The exit status of child ``pid``, killing it (-SIGKILL) if it runs past ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def main(argv: list[str]) -> int:
    if argv == ["serve"]:
        return serve()
    point, payload_file = argv
    if point == "disk-full":
        print(json.dumps(asdict(_disk_full(Payload.read(Path(payload_file))))))
        return 0
    return run_point(point, Path(payload_file))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
