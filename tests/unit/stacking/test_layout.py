"""Meta-features: names, shapes, hand-computed values, NaN propagation, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainfarm.shared.stacking.layout import (
    AGGREGATE_NAMES,
    N_BASE_MODELS,
    N_META_FEATURES,
    meta_feature_names,
    stack_features,
)

MODELS = [f"m{i}" for i in range(8)]


def test_names_count_unique_and_order() -> None:
    names = meta_feature_names(MODELS)
    assert N_META_FEATURES == 55 == len(names) == len(set(names))
    assert N_BASE_MODELS == 8
    assert names[:3] == ["m0__p_down", "m0__p_neutral", "m0__p_up"]
    assert names[24:27] == ["m0__asymmetry", "m0__max_directional", "m0__neutral_dominance"]
    assert tuple(names[48:]) == AGGREGATE_NAMES
    assert len(AGGREGATE_NAMES) == 7


def test_hand_computed_two_rows() -> None:
    # Row 0: model 0 says down (0.6, 0.3, 0.1), the other seven say up (0.2, 0.3, 0.5).
    # Row 1: every model says neutral (0.1, 0.8, 0.1).
    probs = []
    for i in range(8):
        row0 = [0.6, 0.3, 0.1] if i == 0 else [0.2, 0.3, 0.5]
        probs.append(np.array([row0, [0.1, 0.8, 0.1]]))
    out = stack_features(probs, MODELS)
    names = meta_feature_names(MODELS)
    col = {name: out[:, j] for j, name in enumerate(names)}
    assert out.shape == (2, 55)
    assert out.dtype == np.float64

    assert col["m0__p_down"].tolist() == [0.6, 0.1]
    assert col["m3__p_up"].tolist() == [0.5, 0.1]
    assert col["m0__asymmetry"] == pytest.approx([-0.5, 0.0])
    assert col["m0__max_directional"] == pytest.approx([0.6, 0.1])
    assert col["m0__neutral_dominance"] == pytest.approx([-0.3, 0.7])
    assert col["m5__asymmetry"] == pytest.approx([0.3, 0.0])
    assert col["m5__max_directional"] == pytest.approx([0.5, 0.1])
    assert col["m5__neutral_dominance"] == pytest.approx([-0.2, 0.7])

    # mean p_down = (0.6 + 7 * 0.2) / 8 = 0.25; mean p_up = (0.1 + 7 * 0.5) / 8 = 0.45.
    assert col["agg__mean_p_down"] == pytest.approx([0.25, 0.1])
    assert col["agg__mean_p_up"] == pytest.approx([0.45, 0.1])
    assert col["agg__mean_asymmetry"] == pytest.approx([0.2, 0.0])
    # 7 of 8 vote up; all 8 vote neutral.
    assert col["agg__consensus"] == pytest.approx([7 / 8, 1.0])
    assert col["agg__net_vote"] == pytest.approx([6 / 8, 0.0])
    # Asymmetries -0.5 and 7 x 0.3: mean 0.2, population variance (0.49 + 7 * 0.01) / 8 = 0.07.
    assert col["agg__dispersion"] == pytest.approx([math.sqrt(0.07), 0.0])

    def entropy(ps: list[float]) -> float:
        return -sum(p * math.log(p) for p in ps)

    assert col["agg__entropy"] == pytest.approx([entropy([0.25, 0.3, 0.45]), entropy([0.1, 0.8, 0.1])])


def test_nan_in_any_model_blanks_only_that_row() -> None:
    rng = np.random.default_rng(1)
    probs = [rng.dirichlet(np.ones(3), size=5) for _ in range(8)]
    probs[4][2, 1] = np.nan
    out = stack_features(probs, MODELS)
    assert np.isnan(out[2]).all()
    assert np.isfinite(np.delete(out, 2, axis=0)).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.integers(min_value=1, max_value=30))
def test_random_rows_are_finite_and_bounded(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    probs = [rng.dirichlet(np.ones(3) * 0.3, size=n) for _ in range(8)]
    out = stack_features(probs, MODELS)
    names = meta_feature_names(MODELS)
    assert out.shape == (n, 55)
    assert np.isfinite(out).all()
    consensus = out[:, names.index("agg__consensus")]
    assert ((consensus >= 3 / 8 - 1e-12) & (consensus <= 1.0)).all()
    entropy = out[:, names.index("agg__entropy")]
    assert ((entropy >= 0.0) & (entropy <= math.log(3) + 1e-12)).all()
    # Stacking row by row gives the same numbers: no feature looks at other rows.
    first = stack_features([p[:1] for p in probs], MODELS)
    np.testing.assert_array_equal(first[0], out[0])


def test_rejects_bad_inputs() -> None:
    ok = [np.full((2, 3), 1 / 3) for _ in range(8)]
    with pytest.raises(ValueError, match="exactly 8"):
        stack_features(ok[:7], MODELS[:7])
    with pytest.raises(ValueError, match="exactly 8"):
        meta_feature_names([*MODELS, "m8"])
    with pytest.raises(ValueError, match="2 probability arrays for 8"):
        stack_features(ok[:2], MODELS)
    with pytest.raises(ValueError, match="unique"):
        stack_features(ok, ["a"] * 8)
    with pytest.raises(ValueError, match="without '__'"):
        meta_feature_names(["a__b", *MODELS[1:]])
    with pytest.raises(ValueError, match="same rows"):
        stack_features([*ok[:7], np.full((3, 3), 1 / 3)], MODELS)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        stack_features([*ok[:7], np.full((2, 3), 2.0)], MODELS)
    with pytest.raises(ValueError, match="n x 3"):
        stack_features([*ok[:7], np.full((2, 2), 0.5)], MODELS)
