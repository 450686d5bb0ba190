"""A real run's pack says what each base model relied on: the evaluated boosted models' attributions on the
calibration and test splits, per feature (shared/zoo/attributions.py), and the stacked model's permutation
importance per base model on the calibration split (shared/stacking/importance.py)."""

from __future__ import annotations

import json
import math

from tests.support.packs import PACK_SYMBOL, PACK_TF, Pack, register_pack
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.zoo import MODEL_NAMES

EXPLAINED = {"lgbm_gbdt", "lgbm_extratrees", "xgb_hist", "xgb_shallow", "cat_symmetric"}


def test_the_manifest_holds_each_explained_base_models_attributions(pack: Pack) -> None:
    manifest = read_manifest(pack.path, expected_sha256=pack.manifest_sha256)
    base = manifest["attributions"]["base_models"]  # type: ignore[index]
    assert set(base) == EXPLAINED
    for model, splits in base.items():
        assert set(splits) == {"calibration", "test"}, model
        for split, means in splits.items():
            assert set(means) == set(FEATURE_NAMES), (model, split)
            assert all(value >= 0 for value in means.values()) and max(means.values()) > 0, (model, split)


def test_the_manifest_holds_the_stackers_permutation_importance_per_base_model(pack: Pack) -> None:
    manifest = read_manifest(pack.path, expected_sha256=pack.manifest_sha256)
    importance = manifest["attributions"]["stacker_permutation"]  # type: ignore[index]
    assert set(importance) == set(MODEL_NAMES)
    assert all(math.isfinite(value) for value in importance.values())
    stacker = manifest["stacker"]  # type: ignore[index]
    if stacker["chosen"] == "prior":  # reads no base model
        assert set(importance.values()) == {0.0}


def test_farm_models_json_shows_them(pack: Pack, settings: FarmSettings) -> None:
    from typer.testing import CliRunner

    from trainfarm.cli.app import app

    registry = Registry.open(settings.database)
    version = register_pack(registry, pack.path, pack.manifest_sha256, "attributions test")
    result = CliRunner().invoke(app, ["models", PACK_SYMBOL, PACK_TF.value, "--json"])
    assert result.exit_code == 0, result.output
    [shown] = [v for v in json.loads(result.stdout) if v["version"] == version]
    attributions = shown["attributions"]
    assert set(attributions["base_models"]) == EXPLAINED
    assert set(attributions["stacker_permutation"]) == set(MODEL_NAMES)
    top = attributions["top_features_test"]
    assert len(top) == 15 and top[0]["share"] >= top[-1]["share"] > 0
