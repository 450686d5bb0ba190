"""A real pack (the session's) loads and serves in a fresh interpreter without the farm or scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.packs import Pack
from tests.support.services import python_json_loaded
from tests.support.wheels import FARM_ONLY
from trainfarm.shared.packs.predictor import Predictor as FarmPredictor

#: Imported only by the loader of a model that needs them.
MODEL_LIBRARIES = ("lightgbm", "xgboost", "catboost")
PROBS = ["p_down", "p_neutral", "p_up"]


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
    result = python_json_loaded(script)
    assert result["after_numpy_model"] == []
    assert result["farm"] == []
    assert result["libraries"] == sorted(MODEL_LIBRARIES)  # the pack holds all four kinds
    farm = FarmPredictor.load(pack.path, expected_manifest_sha256=pack.manifest_sha256)
    assert result["version"] == farm.version
    expected = farm.predict_bars(pack.bars).select(PROBS).to_numpy()
    np.testing.assert_array_equal(np.load(out), expected)
    assert result["signal"] == farm.decide(expected[-1]).signal
