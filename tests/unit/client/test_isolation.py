"""The bot client stands alone: importing it loads none of the farm, and a real pack serves without it.

Bots install ``trainfarm_client`` into their own environments with only numpy, polars, redis and the
model libraries (its own distribution, ``trainfarm_client/pyproject.toml``; ``test_distribution.py``
installs it alone). These tests run in fresh interpreters, because the test process itself has imported
the farm long before.
"""

from __future__ import annotations

import pkgutil
import textwrap
from pathlib import Path

import numpy as np

import trainfarm_client
from tests.packs import Pack
from tests.services import python_json
from tests.wheels import FARM_ONLY
from trainfarm.shared.predictor import Predictor as FarmPredictor

#: Imported only by the loader of a model that needs them.
MODEL_LIBRARIES = ("lightgbm", "xgboost", "catboost")
PROBS = ["p_down", "p_neutral", "p_up"]

_LOADED = """
import json, sys
def loaded(names):
    # A name mapped to None is a blocked import (see below), not a loaded module.
    return sorted({m.split(".")[0] for m, mod in sys.modules.items() if mod is not None} & set(names))
"""


def _run(script: str, tmp_path: Path) -> dict[str, object]:
    """Run ``script`` in a fresh interpreter at the repository root; it prints one JSON object last."""
    result: dict[str, object] = python_json(textwrap.dedent(_LOADED) + textwrap.dedent(script), timeout=300)
    return result


def test_importing_the_client_loads_no_farm_code_and_no_model_library(tmp_path: Path) -> None:
    modules = sorted(
        f"trainfarm_client.{info.name}" for info in pkgutil.iter_modules(trainfarm_client.__path__)
    )
    assert {"trainfarm_client.predictor", "trainfarm_client.features", "trainfarm_client.contract"} <= set(
        modules
    )
    script = f"""
    import importlib
    import trainfarm_client, trainfarm_client.predictor, trainfarm_client.features, trainfarm_client.contract
    for name in {modules!r}:  # every module of the package, also ones added later
        importlib.import_module(name)
    print(json.dumps({{"farm": loaded({FARM_ONLY!r}), "libraries": loaded({MODEL_LIBRARIES!r})}}))
    """
    result = _run(script, tmp_path)
    assert result == {"farm": [], "libraries": []}


def test_a_real_pack_loads_and_serves_without_the_farm_or_sklearn(pack: Pack, tmp_path: Path) -> None:
    """A bot without scikit-learn installed loads the pack, passes self_check and predicts what the farm
    predicts, bit for bit; loading a numpy-only model imports no model library at all."""
    bars = tmp_path / "bars.parquet"
    pack.bars.write_parquet(bars)
    out = tmp_path / "probs.npy"
    script = f"""
    import sys
    from pathlib import Path
    # As in a bot environment without scikit-learn: every import of it fails. LightGBM and XGBoost
    # probe for it and carry on without it.
    sys.modules["sklearn"] = None

    import numpy as np
    import polars as pl
    from trainfarm_client.models import load_base_model
    from trainfarm_client.predictor import Predictor

    pack = Path({str(pack.path)!r})
    sk = load_base_model("sk_mlp", "sklearn", pack / "base" / "sk_mlp.json")
    after_numpy_model = loaded({MODEL_LIBRARIES!r})

    predictor = Predictor.load(pack, expected_manifest_sha256={pack.manifest_sha256!r})
    predictor.self_check()
    scored = predictor.predict_bars(pl.read_parquet({str(bars)!r}))
    probs = scored.select({PROBS!r}).to_numpy()
    np.save({str(out)!r}, probs)
    decision = predictor.decide(probs[-1])
    print(json.dumps({{
        "after_numpy_model": after_numpy_model,
        "farm": loaded({FARM_ONLY!r}),
        "libraries": loaded({MODEL_LIBRARIES!r}),
        "version": predictor.version,
        "signal": decision.signal,
    }}))
    """
    result = _run(script, tmp_path)
    assert result["after_numpy_model"] == []
    assert result["farm"] == []
    assert result["libraries"] == sorted(MODEL_LIBRARIES)  # the pack holds all four kinds
    farm = FarmPredictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    assert result["version"] == farm.version
    expected = farm.predict_bars(pack.bars).select(PROBS).to_numpy()
    np.testing.assert_array_equal(np.load(out), expected)
    assert result["signal"] == farm.decide(expected[-1]).signal


def test_the_farm_uses_the_client_objects_themselves() -> None:
    """One implementation: the farm's names are the client's objects, not copies that could drift."""
    import trainfarm.shared.data.gaps
    import trainfarm.shared.features
    import trainfarm.shared.meta.stacking
    import trainfarm.shared.predictor
    import trainfarm_client.features
    import trainfarm_client.numpy_models
    import trainfarm_client.predictor
    import trainfarm_client.stacking
    from trainfarm.shared.zoo import sklearn_family

    assert trainfarm.shared.features.add_features is trainfarm_client.features.add_features
    assert trainfarm.shared.features.FEATURE_NAMES is trainfarm_client.features.FEATURE_NAMES
    assert trainfarm.shared.data.gaps.segment_expr is trainfarm_client.features.segment_expr
    assert trainfarm.shared.meta.stacking.stack_features is trainfarm_client.stacking.stack_features
    assert sklearn_family.NumpyClassifier is trainfarm_client.numpy_models.NumpyClassifier
    assert issubclass(trainfarm.shared.predictor.Predictor, trainfarm_client.predictor.Predictor)
    assert trainfarm.shared.predictor.Decision is trainfarm_client.predictor.Decision
