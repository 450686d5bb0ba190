"""The bot client stands alone: importing it loads none of the farm (a real pack serving without it:
``tests/integration/client/test_isolation.py``).

Bots install ``trainfarm_client`` into their own environments with only numpy, polars, redis and the model
libraries (its own distribution, ``trainfarm_client/pyproject.toml``;
``tests/packaging/test_client_distribution.py`` installs it alone). These tests run in fresh interpreters,
because the test process itself has imported the farm long before.
"""

from __future__ import annotations

import pkgutil

import trainfarm_client
from tests.support.services import python_json_loaded
from tests.support.wheels import FARM_ONLY

#: Imported only by the loader of a model that needs them.
MODEL_LIBRARIES = ("lightgbm", "xgboost", "catboost")


def test_importing_the_client_loads_no_farm_code_and_no_model_library() -> None:
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
    result = python_json_loaded(script)
    assert result == {"farm": [], "libraries": []}


def test_the_farm_uses_the_client_objects_themselves() -> None:
    """One implementation: the farm's names are the client's objects, not copies that could drift."""
    import trainfarm.shared.data.gaps
    import trainfarm.shared.dataset.features
    import trainfarm.shared.packs.predictor
    import trainfarm.shared.stacking.layout
    import trainfarm_client.features
    import trainfarm_client.numpy_models
    import trainfarm_client.predictor
    import trainfarm_client.stacking
    from trainfarm.shared.zoo import sklearn_family

    assert trainfarm.shared.dataset.features.add_features is trainfarm_client.features.add_features
    assert trainfarm.shared.dataset.features.FEATURE_NAMES is trainfarm_client.features.FEATURE_NAMES
    assert trainfarm.shared.data.gaps.segment_expr is trainfarm_client.features.segment_expr
    assert trainfarm.shared.stacking.layout.stack_features is trainfarm_client.stacking.stack_features
    assert sklearn_family.NumpyClassifier is trainfarm_client.numpy_models.NumpyClassifier
    assert issubclass(trainfarm.shared.packs.predictor.Predictor, trainfarm_client.predictor.Predictor)
    assert trainfarm.shared.packs.predictor.Decision is trainfarm_client.predictor.Decision
