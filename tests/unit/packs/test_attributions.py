"""A manifest's attributions read back: features ranked by their share averaged over models, base models
by the stacker's permutation importance; a manifest without them (older packs) or with a broken entry has
none."""

from __future__ import annotations

import pytest

from trainfarm.shared.packs.attributions import Attributions

MANIFEST = {
    "attributions": {
        "base_models": {
            # Margins of very different size: shares, not raw values, are averaged.
            "big": {"test": {"a": 30.0, "b": 10.0, "c": 0.0}, "calibration": {"a": 1.0, "b": 1.0, "c": 1.0}},
            "small": {"test": {"a": 0.0, "b": 0.1, "c": 0.3}},
        },
        "stacker_permutation": {"big": 0.02, "small": -0.001, "other": 0.0},
    }
}


def test_features_are_ranked_by_their_share_averaged_over_models() -> None:
    found = Attributions.of_manifest(MANIFEST)
    assert found is not None
    ranked = found.top_features("test")
    assert [name for name, _ in ranked] == ["a", "c", "b"]
    assert ranked[0][1] == pytest.approx(0.375) and ranked[1][1] == pytest.approx(0.375)
    assert sum(share for _, share in ranked) == pytest.approx(1.0)
    assert found.top_features("test", limit=1) == ranked[:1]
    assert found.stacker_ranking() == [("big", 0.02), ("other", 0.0), ("small", -0.001)]
    assert found.to_json()["top_features_test"][0] == {"feature": "a", "share": pytest.approx(0.375)}


@pytest.mark.parametrize(
    "manifest",
    [{}, {"attributions": "none"}, {"attributions": {"base_models": {"m": {"test": {"a": "x"}}}}}],
)
def test_a_manifest_without_usable_attributions_has_none(manifest: dict[str, object]) -> None:
    assert Attributions.of_manifest(manifest) is None
