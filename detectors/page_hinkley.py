"""Page-Hinkley test for changes in the mean of a stream.

Reference: E. S. Page. "Continuous Inspection Schemes." Biometrika 41(1/2), 100-115 (1954).
See also Sebastião & Fernandes (2017), "Supporting the Page-Hinkley test with empirical mode
decomposition for change detection", ISMIS 2017.

River compatibility
-------------------
Same class name, parameters, defaults and alarm positions as ``river.drift.PageHinkley`` (River 0.26.1):
a running mean, fading cumulative sums of deviations (forgetting factor ``alpha``) and a two-sided (or
one-sided, ``mode``) test against ``threshold`` once ``min_instances`` values were seen. The arithmetic is
River's, operation by operation, so the sums are bit-identical. As in River the reset after a detection
is lazy: ``drift_detected`` stays ``True`` until the next ``update``, which first resets everything
(mean, sums, extrema and the ``min_instances`` count).

Example
-------
>>> import random
>>> from detectors.page_hinkley import PageHinkley
>>> rng = random.Random(12345)
>>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
>>> ph = PageHinkley()
>>> for i, x in enumerate(stream):
...     ph.update(x)
...     if ph.drift_detected:
...         print(f"Change detected at index {i}, input value: {x}")
Change detected at index 1006, input value: 5
>>> PageHinkley().update_many(stream).tolist()
[1006]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import DriftDetector, as_float_array, check_scalar

_MODE_CODES = {"up": 0, "down": 1, "both": 2}


def _kernel():
    from detectors import _page_hinkley_kernel  # lazy: imports numba

    return _page_hinkley_kernel


def _encode(v: float) -> float | str:
    """JSON has no infinity: non-finite floats are stored as their ``str`` (``float`` parses it back)."""
    return v if np.isfinite(v) else str(v)


class PageHinkley(DriftDetector):
    """Page-Hinkley method for concept drift detection.

    Parameters
    ----------
    min_instances
        The minimum number of instances before detecting change.
    delta
        The delta factor for the Page-Hinkley test.
    threshold
        The change detection threshold (lambda).
    alpha
        The forgetting factor, used to weight the observed value and the mean.
    mode
        Whether to consider increases ("up"), decreases ("down") or both ("both").
    """

    _MODE_UP = "up"
    _MODE_DOWN = "down"
    _MODE_BOTH = "both"
    _VALID_MODES = [_MODE_UP, _MODE_DOWN, _MODE_BOTH]
    _params = ("min_instances", "delta", "threshold", "alpha", "mode")

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        super().__init__()
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        if mode not in self._VALID_MODES:
            raise ValueError(f"Invalid 'mode'. Valid values are: {self._VALID_MODES}")
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._n = 0.0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = float("inf")
        self._max_decrease = -1.0

    def update(self, x: Any) -> None:
        x = check_scalar(x)
        if self._drift_detected:
            self._reset()
        # river.stats.Mean.update(x) with w=1.0
        self._n += 1.0
        self._mean += (1.0 / self._n) * (x - self._mean)
        dev = x - self._mean

        self._sum_increase = self.alpha * self._sum_increase + dev - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + dev + self.delta
        if self._sum_increase < self._min_increase:
            self._min_increase = self._sum_increase
        if self._sum_decrease > self._max_decrease:
            self._max_decrease = self._sum_decrease

        if self._n >= self.min_instances:
            test_increase = self._sum_increase - self._min_increase
            test_decrease = self._max_decrease - self._sum_decrease
            if self.mode == self._MODE_UP:
                self._drift_detected = test_increase > self.threshold
            elif self.mode == self._MODE_DOWN:
                self._drift_detected = test_decrease > self.threshold
            else:
                self._drift_detected = test_increase > self.threshold or test_decrease > self.threshold

    def update_many(self, xs: Any) -> np.ndarray:
        arr = np.ascontiguousarray(as_float_array(xs))
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        state = np.array(
            [
                self._n,
                self._mean,
                self._sum_increase,
                self._sum_decrease,
                self._min_increase,
                self._max_decrease,
                1.0 if self._drift_detected else 0.0,
            ],
            dtype=np.float64,
        )
        out = np.empty(arr.size, dtype=np.int64)
        n_out = _kernel().update_many(
            arr,
            out,
            state,
            _MODE_CODES[self.mode],
            float(self.min_instances),
            float(self.delta),
            float(self.threshold),
            float(self.alpha),
        )
        (
            self._n,
            self._mean,
            self._sum_increase,
            self._sum_decrease,
            self._min_increase,
            self._max_decrease,
        ) = (float(v) for v in state[:6])
        self._drift_detected = bool(state[6])
        return out[:n_out].copy()

    # -- checkpoints ----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "mean": _encode(self._mean),
            "sum_increase": _encode(self._sum_increase),
            "sum_decrease": _encode(self._sum_decrease),
            "min_increase": _encode(self._min_increase),
            "max_decrease": _encode(self._max_decrease),
            "drift_detected": bool(self._drift_detected),
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._reset()
        self._n = float(state["n"])
        self._mean = float(state["mean"])
        self._sum_increase = float(state["sum_increase"])
        self._sum_decrease = float(state["sum_decrease"])
        self._min_increase = float(state["min_increase"])
        self._max_decrease = float(state["max_decrease"])
        self._drift_detected = bool(state["drift_detected"])
