"""Comparing feature rows: the bot client's newest row (``trainfarm_client.newest``) with add_features' own.

A plain helper module (neither a test module nor a conftest).
"""

from __future__ import annotations

import numpy as np

from trainfarm_client.features import FEATURE_NAMES
from trainfarm_client.probs import FloatArray

#: Features from rolling standard deviations and means: polars updates them as its window slides, the
#: client sums the window itself; both are rounded sums of the same terms.
ROLLING = ("vol_12", "vol_48", "vol_ratio_12_48", "volume_z_48")
EXACT = [i for i, name in enumerate(FEATURE_NAMES) if name not in ROLLING]
CLOSE = [i for i, name in enumerate(FEATURE_NAMES) if name in ROLLING]


def assert_same_row(fast: FloatArray, slow: FloatArray) -> None:
    """One row of every feature: bit for bit, except the ROLLING ones, equal to the last few bits."""
    assert fast.shape == slow.shape == (1, len(FEATURE_NAMES)) and fast.dtype == np.float64
    np.testing.assert_array_equal(fast[:, EXACT], slow[:, EXACT])
    np.testing.assert_allclose(fast[:, CLOSE], slow[:, CLOSE], rtol=1e-12, atol=1e-13)
