"""ADWIN: ADaptive WINdowing drift detector.

Reference: Albert Bifet and Ricard Gavaldà. "Learning from time-changing data with adaptive windowing."
Proceedings of the 2007 SIAM International Conference on Data Mining, pp. 443-448 (2007).

River compatibility
-------------------
Same class name, parameters, defaults and alarm positions as ``river.drift.ADWIN`` (River 0.26.1, whose
core is ``rust_src/adwin.rs``, a port of the former Cython ``adwin_c.pyx``). The bucket arithmetic is
ported operation by operation, so window statistics are bit-identical to River's. Behaviour worth
knowing (all of it River's):

* change is only checked every ``clock`` updates (counted since the last reset), and only once the window
  holds more than ``grace_period`` items;
* after a detection ADWIN shrinks its window, but the *next* ``update`` then throws the whole detector
  away (``drift_detected`` is still ``True`` and River's ``update`` calls ``_reset()``): window, clock
  counter and ``n_detections`` all restart from zero, so ``n_detections`` is never more than 1;
* ``width`` is a float.

Deviations: ``clock < 1`` and ``max_buckets < 1`` raise ``ValueError`` here (River crashes in its Rust
core on the first update). The tick counter is 64-bit (River's is a 32-bit integer that would wrap after
2**31 updates without a detection).

Example
-------
>>> import random
>>> from detectors.adwin import ADWIN
>>> rng = random.Random(12345)
>>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
>>> adwin = ADWIN()
>>> for i, x in enumerate(stream):
...     adwin.update(x)
...     if adwin.drift_detected:
...         print(f"Change detected at index {i}, input value: {x}")
Change detected at index 1023, input value: 4
>>> ADWIN().update_many(stream).tolist()
[1023]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import DriftDetector, as_float_array, check_scalar

# Bucket levels preallocated; level i holds buckets of 2**i items, so 64 levels never run out.
_N_LEVELS = 64
# indices into the state arrays; must match detectors/_adwin_kernel.py
_TOTAL, _VARIANCE, _WIDTH, _TOTAL_WIDTH = 0, 1, 2, 3
_LEVELS, _N_BUCKETS, _MAX_N_BUCKETS, _TICK, _N_DETECTIONS, _DRIFT = 0, 1, 2, 3, 4, 5


def _kernel():
    from detectors import _adwin_kernel  # lazy: imports numba

    return _adwin_kernel


class ADWIN(DriftDetector):
    r"""Adaptive Windowing method for concept drift detection.

    Parameters
    ----------
    delta
        Significance value.
    clock
        How often ADWIN checks for changes (1 means every new data point).
    max_buckets
        Maximum number of buckets of each size kept before merging buckets.
    min_window_length
        Minimum length of a sub-window for it to be considered in a cut.
    grace_period
        ADWIN does not check for changes until the window holds more than this many items.
    """

    _params = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__()
        if int(clock) < 1:
            raise ValueError("clock must be at least 1")
        if int(max_buckets) < 1:
            raise ValueError("max_buckets must be at least 1")
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        cap = int(self.max_buckets) + 1
        self._totals = np.zeros((_N_LEVELS, cap), dtype=np.float64)
        self._variances = np.zeros((_N_LEVELS, cap), dtype=np.float64)
        self._counts = np.zeros(_N_LEVELS, dtype=np.int64)
        self._fstate = np.zeros(4, dtype=np.float64)
        self._istate = np.zeros(6, dtype=np.int64)
        self._istate[_LEVELS] = 1

    # -- River's read-only statistics ----------------------------------------------------------
    @property
    def width(self) -> float:
        """Window size."""
        return float(self._fstate[_WIDTH])

    @property
    def n_detections(self) -> int:
        """Number of detections since the last reset (River resets after every detection)."""
        return int(self._istate[_N_DETECTIONS])

    @property
    def variance(self) -> float:
        """The (unnormalised) variance accumulator of the window, as River's ``variance``."""
        return float(self._fstate[_VARIANCE])

    @property
    def total(self) -> float:
        """The sum of the stored elements."""
        return float(self._fstate[_TOTAL])

    @property
    def estimation(self) -> float:
        """Estimate of the mean value in the window."""
        if self.width == 0:
            return 0.0
        return self.total / self.width

    # -- updates --------------------------------------------------------------------------------
    def _args(self) -> tuple:
        return (
            self._totals,
            self._variances,
            self._counts,
            self._fstate,
            self._istate,
            float(self.delta),
            int(self.clock),
            int(self.max_buckets),
            float(self.min_window_length),
            float(self.grace_period),
        )

    def update(self, x: Any) -> None:
        xs = np.array([check_scalar(x)], dtype=np.float64)
        _kernel().update_many(xs, np.empty(1, dtype=np.int64), *self._args())
        self._drift_detected = bool(self._istate[_DRIFT])

    def update_many(self, xs: Any) -> np.ndarray:
        arr = np.ascontiguousarray(as_float_array(xs))
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        out = np.empty(arr.size, dtype=np.int64)
        n_out = _kernel().update_many(arr, out, *self._args())
        self._drift_detected = bool(self._istate[_DRIFT])
        return out[:n_out].copy()

    # -- checkpoints ----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        n_levels = int(self._istate[_LEVELS])
        return {
            "totals": self._totals[:n_levels].tolist(),
            "variances": self._variances[:n_levels].tolist(),
            "counts": self._counts[:n_levels].tolist(),
            "total": float(self._fstate[_TOTAL]),
            "variance": float(self._fstate[_VARIANCE]),
            "width": float(self._fstate[_WIDTH]),
            "total_width": float(self._fstate[_TOTAL_WIDTH]),
            "n_buckets": int(self._istate[_N_BUCKETS]),
            "max_n_buckets": int(self._istate[_MAX_N_BUCKETS]),
            "tick": int(self._istate[_TICK]),
            "n_detections": int(self._istate[_N_DETECTIONS]),
            "drift_detected": bool(self._drift_detected),
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._reset()
        counts = np.asarray(state["counts"], dtype=np.int64).reshape(-1)
        n_levels = counts.size
        cap = int(self.max_buckets) + 1
        if not 1 <= n_levels <= _N_LEVELS:
            raise ValueError(f"bad ADWIN state: {n_levels} bucket levels")
        totals = np.asarray(state["totals"], dtype=np.float64).reshape(n_levels, cap)
        variances = np.asarray(state["variances"], dtype=np.float64).reshape(n_levels, cap)
        self._totals[:n_levels] = totals
        self._variances[:n_levels] = variances
        self._counts[:n_levels] = counts
        self._fstate[:] = [state["total"], state["variance"], state["width"], state["total_width"]]
        self._istate[:] = [
            n_levels,
            state["n_buckets"],
            state["max_n_buckets"],
            state["tick"],
            state["n_detections"],
            1 if state["drift_detected"] else 0,
        ]
        self._drift_detected = bool(state["drift_detected"])
