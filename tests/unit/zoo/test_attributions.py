"""Each boosted family's own attributions on real BTC features: a row's attributions sum to its raw margin,
the softmax of that margin is the model's probability, and the summary ranks the features it used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.dataset.labels import class_weights, sample_weights
from trainfarm.shared.dataset.snapshot import build_snapshot
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.zoo import MODEL_NAMES, family, get_spec
from trainfarm.shared.zoo.attributions import attributing, check_additive, mean_abs_by_feature
from trainfarm.shared.zoo.spec import FitOptions
from trainfarm_client.arrays import FloatArray

#: Every model with exact attributions: the boosted ones but cat_depthwise (see attributions' docs).
EXPLAINED = ["lgbm_gbdt", "lgbm_extratrees", "xgb_hist", "xgb_shallow", "cat_symmetric"]


@pytest.fixture(scope="module")
def xy(
    sample_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FloatArray, FloatArray, np.ndarray]:
    bars = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    snapshot = build_snapshot(
        bars,
        symbol="BTC_USDT",
        timeframe=Timeframe.H1,
        config=FarmConfig(),
        root=tmp_path_factory.mktemp("d"),
    )
    frame = snapshot.frame()
    train = frame.filter(pl.col("split") == "train").head(1500)
    new = frame.filter(pl.col("split") == "calibration").head(200)
    y = train["label"].to_numpy().astype(np.int64)
    x = train.select(FEATURE_NAMES).to_numpy().astype(np.float64)
    return x, new.select(FEATURE_NAMES).to_numpy().astype(np.float64), y


@pytest.mark.parametrize("name", EXPLAINED)
def test_a_rows_attributions_sum_to_its_raw_margin(
    name: str, xy: tuple[FloatArray, FloatArray, np.ndarray]
) -> None:
    x, x_new, y = xy
    spec = get_spec(name)
    fam = family(spec)
    options = FitOptions(rounds=20, learning_rate=0.1, seed=7, threads=1, device="cpu")
    model = fam.fit(spec, x, y, sample_weights(y, class_weights(y)), options)
    explained = attributing(spec)
    assert explained is not None
    contributions = explained.contributions(model, x_new, threads=1)
    assert contributions.shape == (len(x_new), 3, len(FEATURE_NAMES) + 1)
    assert check_additive(explained, model, x_new, threads=1) < 1e-4
    # The margins are the model's: their softmax is its probabilities.
    margin = explained.raw_margin(model, x_new, threads=1)
    soft = np.exp(margin - margin.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        soft / soft.sum(axis=1, keepdims=True), fam.predict_proba(model, x_new, threads=1), atol=1e-5
    )
    summary = mean_abs_by_feature(contributions, FEATURE_NAMES)
    assert set(summary) == set(FEATURE_NAMES) and all(v >= 0 for v in summary.values())
    assert max(summary.values()) > 0  # twenty rounds on real features use some of them


def test_only_the_models_with_exact_attributions_have_them() -> None:
    assert [name for name in MODEL_NAMES if attributing(get_spec(name)) is not None] == EXPLAINED


def test_a_summary_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="do not match 2 features plus the bias"):
        mean_abs_by_feature(np.zeros((4, 3, 5)), ["a", "b"])


def test_catboost_depthwise_shap_values_miss_the_margin_which_is_why_it_has_none(
    xy: tuple[FloatArray, FloatArray, np.ndarray],
) -> None:
    """If a CatBoost release makes them exact, this fails and cat_depthwise can join the others."""
    from trainfarm.shared.zoo import catboost_family

    x, x_new, y = xy
    spec = get_spec("cat_depthwise")
    options = FitOptions(rounds=20, learning_rate=0.1, seed=7, threads=1, device="cpu")
    model = catboost_family.fit(spec, x, y, sample_weights(y, class_weights(y)), options)
    with pytest.raises(ValueError, match="do not sum to the raw margin"):
        check_additive(catboost_family, model, x_new, threads=1)
