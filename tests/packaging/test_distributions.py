"""What the two distributions install: the farm as ONE top-level name, the bot client as its own.

The farm's wheel holds ``trainfarm`` only (the repository's ``shared/``, ``workers/``, ``beat/`` and ``cli/``
under ``trainfarm.*``, never as generic top-level packages that another distribution could replace); the
client's wheel holds ``trainfarm_client`` only and needs none of the farm's libraries. Both are built the way
a user's pip builds them, from clean copies of the sources, and installed into fresh environments. The
client's own environment, with its dependencies, is tested in ``test_client_distribution.py`` beside this
module (it scores the session's pack). The Docker image is checked here too: no engine runs in the tests, so
the Dockerfile is parsed and its build context built.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
import shutil
import subprocess
import textwrap
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

import pytest

from tests.support.services import REPO_ROOT
from tests.support.wheels import (
    CLIENT_DIR,
    IGNORED,
    build_wheel,
    build_wheel_logged,
    make_venv,
    package_dirs,
    pip_install,
    run,
    site_packages,
    stage_client_source,
    stage_farm_source,
)

pytestmark = [pytest.mark.slow]

DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
#: Distributions only the farm needs; a bot's environment must not have to install any of them.
FARM_ONLY_DISTRIBUTIONS = {
    "celery",
    "kombu",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic-settings",
    "typer",
    "rich",
    "scikit-learn",
}


@dataclass(frozen=True)
class Wheels:
    farm: Path
    client: Path
    farm_source: Path  #: the clean copy the farm's wheel was built from
    logs: dict[str, str]  #: what building each wheel printed, by distribution


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    """Both wheels, built once for this module from clean copies of the sources."""
    root = tmp_path_factory.mktemp("wheels")
    farm_source = stage_farm_source(root / "farm-src")
    farm, farm_log = build_wheel_logged(farm_source, root / "dist")
    client, client_log = build_wheel_logged(stage_client_source(root / "client-src"), root / "dist")
    return Wheels(farm, client, farm_source, {"trainfarm": farm_log, "trainfarm-client": client_log})


def test_building_the_wheels_prints_no_warning(wheels: Wheels) -> None:
    # A Python warning line ("...Warning: ...") or setuptools' "!!" banner; a data folder taken for a
    # package (web/templates, cli/demo/sample) printed pages of them at every install.
    warning = re.compile(r"[a-z]Warning\b|^\s*!!\s*$")
    for name, log in wheels.logs.items():
        found = [line for line in log.splitlines() if warning.search(line)]
        assert found == [], f"building {name} warned:\n" + "\n".join(found)


def test_farm_demo_finds_its_sample_in_an_installed_wheel(wheels: Wheels, tmp_path: Path) -> None:
    # The data half of `farm demo` (import, check, resample, snapshot the bundled sample) in a fresh
    # environment holding the two wheels and their pinned dependencies, run from a folder with no checkout.
    python = make_venv(tmp_path / "venv")
    site = site_packages(python)
    constraints = REPO_ROOT / "constraints.txt"
    pip_install(python, "-c", constraints, wheels.farm, wheels.client, what="installing the farm's wheel")
    script = textwrap.dedent(
        """
        import json
        from trainfarm.cli.demo.sample_data import SAMPLE_DIR, run_data_demo
        from trainfarm.shared.connections import embedded_redis
        from trainfarm.shared.data.store import open_store
        from trainfarm.shared.settings import get_settings

        started = run_data_demo()
        try:
            store = open_store()
            print(json.dumps({"sample": str(SAMPLE_DIR), "symbols": store.symbols()}))
        finally:
            if started:
                embedded_redis(get_settings()).stop()
        """
    )
    home = tmp_path / "home"
    env = {"PATH": str(python.parent), "HOME": str(tmp_path), "FARM_HOME": str(home)}
    done = subprocess.run(
        [python, "-I", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["sample"]).is_relative_to(site), result["sample"]
    assert result["symbols"] == ["BTC_USDT", "ETH_USDT"]
    assert list((home / "artifacts" / "datasets").rglob("*.parquet")), "no dataset snapshot was written"


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if not n.endswith("/")]


def _read(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(name).decode()


def _dist_info(wheel: Path) -> str:
    """The wheel's ``<name>-<version>.dist-info`` folder, from its file name."""
    name, version = wheel.name.split("-")[:2]
    return f"{name}-{version}.dist-info"


def _requirement_names(wheel: Path) -> set[str]:
    """The normalised distribution names of the wheel's Requires-Dist (extras' requirements included)."""
    metadata = HeaderParser().parsestr(_read(wheel, f"{_dist_info(wheel)}/METADATA"))
    names = set()
    for requirement in metadata.get_all("Requires-Dist") or []:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(re.sub(r"[-_.]+", "-", match.group()).lower())
    return names


def _folder_of(package: str, dirs: dict[str, str]) -> Path:
    """The repository folder of ``package`` under the package-dir mapping ``dirs`` (longest prefix)."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in dirs:
            return Path(dirs[".".join(parts[:n])], *parts[n:])
    raise AssertionError(f"{package} is not under any package-dir entry: {dirs}")


def _expected_files(source: Path, package: str, dirs: dict[str, str], data_patterns: list[str]) -> set[str]:
    """The wheel paths that ``package`` (built from ``source``) must hold: with no patterns, every module
    of its folder and subfolders (all of them subpackages); with patterns, the package-data files."""
    base = source / _folder_of(package, dirs)
    if data_patterns:
        files = {p for pattern in data_patterns for p in base.glob(pattern)}
    else:
        files = {p for p in base.rglob("*.py") if "__pycache__" not in p.parts}
    prefix = PurePosixPath(*package.split("."))
    return {str(prefix / p.relative_to(base).as_posix()) for p in files}


def test_the_farm_wheel_installs_only_trainfarm(wheels: Wheels) -> None:
    names = _names(wheels.farm)
    dist_info = _dist_info(wheels.farm)
    outside = [n for n in names if n.split("/")[0] not in {"trainfarm", dist_info}]
    assert outside == [], f"the farm's wheel installs more than trainfarm/: {outside}"
    assert _read(wheels.farm, f"{dist_info}/top_level.txt").split() == ["trainfarm"]

    # Every module of every mapped folder ships under trainfarm.<folder> (a subpackage missing from
    # pyproject's `packages` list would silently stay behind), and so does the package data.
    with (wheels.farm_source / "pyproject.toml").open("rb") as fh:
        package_data: dict[str, list[str]] = tomllib.load(fh)["tool"]["setuptools"].get("package-data", {})
    dirs = package_dirs(wheels.farm_source / "pyproject.toml")
    assert all(package.startswith("trainfarm.") for package in dirs), dirs
    expected: set[str] = set()
    for package in dirs:
        expected |= _expected_files(wheels.farm_source, package, dirs, [])
    for package, patterns in package_data.items():
        expected |= _expected_files(wheels.farm_source, package, dirs, patterns)
    missing = sorted(expected - set(names))
    assert missing == [], f"files of the repository that the farm's wheel leaves out: {missing}"
    assert "trainfarm/shared/registry/migrations/script.py.mako" in names

    # The console script points at a function the wheel holds.
    entry_points = _read(wheels.farm, f"{dist_info}/entry_points.txt")
    (target,) = re.findall(r"^farm\s*=\s*(\S+)\s*$", entry_points, flags=re.MULTILINE)
    module, function = target.split(":")
    tree = ast.parse(_read(wheels.farm, module.replace(".", "/") + ".py"))
    assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # The farm depends on the client's own distribution instead of carrying a copy of it.
    assert "trainfarm-client" in _requirement_names(wheels.farm)


def test_the_client_wheel_holds_only_the_client_and_no_farm_dependency(wheels: Wheels) -> None:
    names = _names(wheels.client)
    dist_info = _dist_info(wheels.client)
    outside = [n for n in names if n.split("/")[0] not in {"trainfarm_client", dist_info}]
    assert outside == [], f"the client's wheel installs more than trainfarm_client/: {outside}"
    assert _read(wheels.client, f"{dist_info}/top_level.txt").split() == ["trainfarm_client"]
    modules = {f"trainfarm_client/{p.name}" for p in CLIENT_DIR.glob("*.py")}
    assert modules | {"trainfarm_client/py.typed"} <= set(names)
    assert "trainfarm_client/pyproject.toml" not in names

    requirements = _requirement_names(wheels.client)
    assert requirements & FARM_ONLY_DISTRIBUTIONS == set(), "the bot client requires farm-only libraries"
    assert {"numpy", "polars", "redis", "lightgbm", "xgboost", "catboost"} <= requirements
    assert not any(r.startswith("trainfarm") for r in requirements)


def test_both_wheels_add_exactly_two_top_level_names(wheels: Wheels, tmp_path: Path) -> None:
    """Installed side by side (without dependencies), the two wheels add ``trainfarm`` and
    ``trainfarm_client`` to site-packages and nothing else; the namespace resolves there, and the generic
    names ``shared``, ``workers``, ``beat`` and ``cli`` are importable from nowhere."""
    python = make_venv(tmp_path / "venv")
    site = site_packages(python)
    before = {p.name for p in site.iterdir()}
    pip_install(python, "--no-deps", wheels.farm, wheels.client, what="installing both wheels")
    added = {p.name for p in site.iterdir()} - before
    assert {n for n in added if not n.endswith(".dist-info")} == {"trainfarm", "trainfarm_client"}
    assert len([n for n in added if n.endswith(".dist-info")]) == 2, sorted(added)
    assert (python.parent / "farm").is_file()

    # Only modules that need no third-party library: the wheels were installed without dependencies.
    script = textwrap.dedent(
        """
        import importlib.util, json
        import trainfarm, trainfarm.shared, trainfarm.shared.errors
        import trainfarm.workers, trainfarm.beat
        import trainfarm_client, trainfarm_client.errors, trainfarm_client.contract
        print(json.dumps({
            "files": [m.__file__ for m in (trainfarm.shared, trainfarm.shared.errors, trainfarm.workers,
                                            trainfarm.beat, trainfarm_client, trainfarm_client.contract)],
            "namespace": [str(p) for p in trainfarm.__path__],
            "generic": [n for n in ("shared", "workers", "beat", "cli") if importlib.util.find_spec(n)],
            "one_error_tree": issubclass(
                trainfarm.shared.errors.ArtifactError, trainfarm_client.errors.PackError
            ),
        }))
        """
    )
    # -I: neither the working directory nor PYTHONPATH may lend the repository's folders.
    done = run([python, "-I", "-c", script], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(Path(f).is_relative_to(site) for f in result["files"]), result["files"]
    assert result["namespace"] == [str(site / "trainfarm")]
    assert result["generic"] == []
    assert result["one_error_tree"] is True


# --- the Docker image -------------------------------------------------------------------------------


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


@dataclass(frozen=True)
class Copied:
    index: int  #: of the COPY instruction
    source: str  #: path in the build context (the repository root)
    target: str  #: where it lands, relative to the WORKDIR


def _copied(instructions: list[tuple[str, str]]) -> list[Copied]:
    """Every file or folder that a COPY takes from the build context, and where it lands (Docker's rules:
    a folder's contents go to the destination; a file goes into it when it ends in ``/`` or when there
    are several sources)."""
    workdir = PurePosixPath("/")
    copied = []
    for index, (keyword, args) in enumerate(instructions):
        if keyword == "WORKDIR":
            workdir = workdir / args
        if keyword != "COPY" or "--from" in args:
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources, dest = words[:-1], words[-1]
        into_folder = dest.endswith("/") or len(sources) > 1
        dest_path = (workdir / dest).relative_to(workdir)  # fails for a destination outside the WORKDIR
        for pattern in sources:
            for origin in sorted(REPO_ROOT.glob(pattern)) or [REPO_ROOT / pattern]:
                name = origin.relative_to(REPO_ROOT).as_posix()
                target = dest_path / origin.name if into_folder and not origin.is_dir() else dest_path
                copied.append(Copied(index, name, str(target)))
    return copied


def _pip_installs(instructions: list[tuple[str, str]]) -> list[tuple[int, list[str]]]:
    """(instruction index, arguments after ``pip install``) of every pip install in a RUN."""
    found = []
    for index, (keyword, args) in enumerate(instructions):
        if keyword != "RUN":
            continue
        words = shlex.split(args)
        for start in range(len(words) - 1):
            if words[start].endswith("pip") and words[start + 1] == "install":
                end = next((i for i in range(start, len(words)) if words[i] in {"&&", ";", "||"}), len(words))
                found.append((index, words[start + 2 : end]))
    return found


def _local_projects(pip_args: list[str]) -> list[str]:
    """The local projects a pip install names (``./x``, ``".[extra]"``), as normalised paths."""
    return [str(PurePosixPath(re.sub(r"\[.*\]$", "", a))) for a in pip_args if a.startswith(".")]


def test_the_dockerfile_copies_every_package_folder_and_installs_the_client() -> None:
    instructions = _instructions(DOCKERFILE)
    installs = _pip_installs(instructions)
    assert len(installs) == 1, f"one pip command installs the farm and the client: {installs}"
    install_index, args = installs[0]
    assert any(a in {"-c", "--constraint"} and b == "constraints.txt" for a, b in itertools.pairwise(args)), (
        args
    )
    assert sorted(_local_projects(args)) == [".", "trainfarm_client"], args
    assert any(re.fullmatch(r"\.\[.*\bpostgres\b.*\]", a) for a in args), "the image talks to PostgreSQL"

    # Everything the build reads is copied before the install runs, to the place it has in the
    # repository: package-dir maps the repository's layout, so the image's WORKDIR must mirror it.
    with (REPO_ROOT / "pyproject.toml").open("rb") as fh:
        readme = tomllib.load(fh)["project"]["readme"]
    needed = set(package_dirs().values()) | {"trainfarm_client", "pyproject.toml", "constraints.txt", readme}
    placed = {c.source: c for c in _copied(instructions)}
    assert needed - placed.keys() == set(), f"the image misses {sorted(needed - placed.keys())}"
    for name in needed:
        assert placed[name].target == name, f"{name} lands at {placed[name].target}"
        assert placed[name].index < install_index, f"{name} is copied after the pip install"


def test_the_dockerfile_build_context_builds_both_projects(tmp_path: Path) -> None:
    """What the image's pip install builds (without its dependencies): the files the Dockerfile copies,
    laid out as it lays them out, and nothing else, are enough for both projects to build."""
    instructions = _instructions(DOCKERFILE)
    ((install_index, args),) = _pip_installs(instructions)
    app = tmp_path / "app"
    for c in _copied(instructions):
        if c.index > install_index:
            continue
        origin, target = REPO_ROOT / c.source, app / c.target
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            # A clean tree: the repository has no .dockerignore, but stale build/ folders are not the
            # Dockerfile's doing (see tests.support.wheels).
            shutil.copytree(origin, target, ignore=IGNORED, dirs_exist_ok=True)
        else:
            shutil.copy2(origin, target)
    built = [build_wheel(app / project, tmp_path / "dist") for project in _local_projects(args)]
    assert sorted(w.name.split("-")[0] for w in built) == ["trainfarm", "trainfarm_client"]
