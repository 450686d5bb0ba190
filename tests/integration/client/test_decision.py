"""The predictor decides with its pack's p_star: the session's real pack."""

from __future__ import annotations

from tests.support.packs import Pack
from trainfarm_client.predictor import Predictor, decide


def test_the_predictor_decides_with_its_packs_p_star(pack: Pack) -> None:
    predictor = Predictor.load(pack.path)
    assert predictor.p_star == float(predictor.manifest["p_star"])
    probs = predictor.predict_features(predictor.manifest["sample_rows"]["features"])
    for row in probs:
        assert predictor.decide(row) == decide(row, predictor.p_star)
