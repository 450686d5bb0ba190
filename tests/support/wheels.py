"""Building the project's two wheels and fresh virtual environments to install them into.

Helpers for the packaging tests (``tests/packaging``) and the bot client's own-environment test
(``tests/packaging/test_client_distribution.py``). Wheels are built from a clean copy of the sources, never in
the working tree: setuptools keeps a ``build/`` folder between builds and packs whatever it holds, so a
module deleted since the last build would still be shipped, and two test runs at once would share it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.services import REPO_ROOT, require, tcp_port_open

#: Import names of what a bot environment must neither need nor bring along: the farm, its services, its CLI.
FARM_ONLY = (
    "trainfarm",
    "celery",
    "kombu",
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_settings",
    "typer",
    "rich",
    "sklearn",
)

CLIENT_DIR = REPO_ROOT / "trainfarm_client"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
#: Build leftovers and caches: never part of a source tree that is built.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".*_cache")
#: Building needs setuptools from the index (build isolation); a client environment needs its libraries.
INSTALL_TIMEOUT_S = 600
BUILD_TIMEOUT_S = 300


def package_dirs(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, str]:
    """The farm's ``[tool.setuptools.package-dir]``: installed package name -> repository folder."""
    with pyproject.open("rb") as fh:
        table: dict[str, str] = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    return table


def stage_farm_source(dest: Path) -> Path:
    """Copy what building the farm reads (top-level files and the package folders) into ``dest``."""
    dest.mkdir(parents=True)
    for path in REPO_ROOT.iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    for folder in sorted(set(package_dirs().values())):
        shutil.copytree(REPO_ROOT / folder, dest / folder, ignore=IGNORED)
    return dest


def stage_client_source(dest: Path) -> Path:
    """Copy the bot client's folder (its own project) into ``dest``."""
    shutil.copytree(CLIENT_DIR, dest, ignore=IGNORED)
    return dest


def run(
    args: list[str | Path], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout, capturing its output (the caller checks the exit status)."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def check_index(done: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail when a pip command failed; skip instead (locally only) when the package index is out of reach.

    Under ``CI=true`` an unreachable index is a failure too (``tests.support.services.require``).
    """
    if done.returncode == 0:
        return
    require(tcp_port_open("pypi.org", 443, timeout=3), f"{what} needs PyPI, which is unreachable")
    raise AssertionError(
        f"{what} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of the project at ``source`` (with build isolation, as a user's pip does)."""
    return build_wheel_logged(source, out)[0]


def build_wheel_logged(source: Path, out: Path) -> tuple[Path, str]:
    """:func:`build_wheel`, also returning what pip printed (the build backend's warnings among it)."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("*.whl"))
    done = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", out, source],
        timeout=BUILD_TIMEOUT_S,
    )
    check_index(done, f"building the wheel of {source.name}")
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel, done.stdout + done.stderr


def make_venv(path: Path) -> Path:
    """A fresh virtual environment (no system site packages, no pip of its own); returns its python.

    Packages go in with this interpreter's pip and ``--python``, so its site-packages holds only them.
    """
    done = run([sys.executable, "-m", "venv", "--without-pip", path], timeout=120)
    assert done.returncode == 0, done.stderr
    python = path / "bin" / "python"
    assert python.exists(), f"no interpreter in {path}"
    return python


def pip_install(python: Path, *args: str | Path, what: str) -> None:
    """``pip install args`` into the environment of ``python``.

    Without compiling the installed modules to bytecode: these environments import a few modules once, and
    compiling every module of NumPy, polars and the boosting libraries took half of the install's time.
    """
    command = [sys.executable, "-m", "pip", "--python", python, "install", "--disable-pip-version-check"]
    done = run([*command, "--no-compile", *args], timeout=INSTALL_TIMEOUT_S)
    check_index(done, what)


def site_packages(python: Path) -> Path:
    """The site-packages folder of the environment of ``python``."""
    done = run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], timeout=60)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())
