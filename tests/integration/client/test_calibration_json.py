"""The calibrator file in the session's real pack is the one the farm fitted.

The transform itself is tested in ``tests/unit/client/test_calibration_json.py``.
"""

from __future__ import annotations

import json

import numpy as np

from tests.support.packs import Pack
from trainfarm_client.calibration import TemperatureShrinkCalibration, load_calibration


def test_the_packs_calibrator_file_is_the_one_the_farm_fitted(pack: Pack) -> None:
    """A format-2 pack stores the temperature/shrinkage calibrator its run fitted, readable by the client."""
    manifest = json.loads((pack.path / "manifest.json").read_text())
    doc = json.loads((pack.path / manifest["calibrator"]["file"]).read_text())
    calibration = load_calibration(doc)
    assert isinstance(calibration, TemperatureShrinkCalibration)
    assert calibration.to_json() == manifest["metrics"]["calibrator"]
    rows = np.random.default_rng(13).dirichlet([1.0, 1.0, 1.0], size=500)
    out = calibration.transform(rows)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    # Shrinkage keeps every class at least shrink x its prior share: never a near-zero probability.
    floor = calibration.shrink * np.asarray(calibration.prior)
    assert (out >= floor - 1e-12).all()
