"""The numpy array types the client and the farm annotate with (one definition for both distributions)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: float64 arrays: features, probabilities, returns, weights.
FloatArray = npt.NDArray[np.float64]
#: int64 arrays: class labels (0/1/2) and row positions.
IntArray = npt.NDArray[np.int64]

__all__ = ["FloatArray", "IntArray"]
