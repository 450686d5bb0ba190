"""The bot client installs and serves on its own: a fresh environment holding only the client's wheel and
its dependencies (pinned by the farm's constraints.txt, as a bot installs it) loads the farm's real pack
and scores what the farm scores, without Celery, SQLAlchemy, pydantic, Typer or scikit-learn.

It scores the session's pack (``pack`` in ``tests/conftest.py``). Installing the client's libraries needs the
package index: without it this test skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.packs import Pack
from tests.support.wheels import (
    CONSTRAINTS,
    FARM_ONLY,
    build_wheel,
    make_venv,
    pip_install,
    run,
    site_packages,
    stage_client_source,
)
from trainfarm.shared.packs.predictor import Predictor as FarmPredictor

pytestmark = [pytest.mark.slow]

PROBS = ["p_down", "p_neutral", "p_up"]


#: Run by the client environment's interpreter; its one argument is a JSON object of paths.
BOT = textwrap.dedent(
    """
    import importlib.util, json, sys
    from pathlib import Path

    import numpy as np
    import polars as pl

    import trainfarm_client
    from trainfarm_client.predictor import Predictor

    args = json.loads(sys.argv[1])
    present = [name for name in args["farm_only"] if importlib.util.find_spec(name) is not None]
    predictor = Predictor.load(Path(args["pack"]), expected_manifest_sha256=args["sha256"])
    predictor.self_check()
    scored = predictor.predict_bars(pl.read_parquet(args["bars"]))
    probs = scored.select(args["probs"]).to_numpy()
    np.save(args["out"], probs)
    print(json.dumps({
        "client": trainfarm_client.__file__,
        "present": present,
        "version": predictor.version,
        "newest_bar": str(scored["date"][-1]),
        "signal": predictor.decide(probs[-1]).signal,
    }))
    """
)


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The interpreter of a fresh environment with the client's wheel and its dependencies only.

    Removed afterwards: it weighs over a gigabyte, and pytest keeps the temporary folders of past runs.
    """
    root = tmp_path_factory.mktemp("client-env")
    try:
        wheel = build_wheel(stage_client_source(root / "src"), root / "dist")
        python = make_venv(root / "venv")
        pip_install(python, "-c", CONSTRAINTS, wheel, what="installing the client with its dependencies")
        yield python
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(1500)  # the environment's install may download its libraries (up to 600 s)
def test_a_client_only_environment_scores_the_farms_pack(
    client_python: Path, pack: Pack, tmp_path: Path
) -> None:
    bars = tmp_path / "bars.parquet"
    pack.bars.write_parquet(bars)
    out = tmp_path / "probs.npy"
    args = {
        "farm_only": FARM_ONLY,
        "pack": str(pack.path),
        "sha256": pack.manifest_sha256,
        "bars": str(bars),
        "probs": PROBS,
        "out": str(out),
    }
    # -I and a working directory outside the repository: nothing of the checkout can be imported.
    done = run([client_python, "-I", "-c", BOT, json.dumps(args)], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert Path(result["client"]).is_relative_to(site_packages(client_python))
    assert result["present"] == [], f"the client's environment holds farm-only packages: {result['present']}"
    farm = FarmPredictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    scored = farm.predict_bars(pack.bars)
    expected = scored.select(PROBS).to_numpy()
    assert result["version"] == farm.version
    assert result["newest_bar"] == str(scored["date"][-1])
    # The same pinned libraries compute the same probabilities (self_check allows 1e-6).
    np.testing.assert_allclose(np.load(out), expected, rtol=0, atol=1e-9)
    assert result["signal"] == farm.decide(expected[-1]).signal
