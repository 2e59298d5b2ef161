"""Input handling shared by the binary detectors' ``update_many`` (no numba here).

The range and finiteness checks run inside the numba kernels (one extra pass over the batch, before any
state changes); this module only shapes the input and turns a reported bad position into the same
:class:`~detectors.base.InvalidInput` message that :mod:`detectors.base` would raise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.base import InvalidInput


def as_batch(xs: Any) -> np.ndarray:
    """``xs`` as a 1-D float64 array (no copy if it already is one)."""
    try:
        arr = np.asarray(xs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"update_many expects numbers: {exc}") from exc
    if arr.ndim != 1:
        raise InvalidInput(f"update_many expects a 1-D array, got shape {arr.shape}")
    return arr


def raise_invalid(arr: np.ndarray, bad: int) -> None:
    """Raise :class:`InvalidInput` for ``arr[bad]``, a value a kernel refused."""
    value = float(arr[bad])
    if not math.isfinite(value):
        raise InvalidInput(f"non-finite value {value!r} at position {bad}")
    raise InvalidInput(f"binary detectors take values in [0, 1]; got {value!r} at position {bad}")
