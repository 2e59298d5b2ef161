"""Drift Detection Method (DDM).

Gama, J., Medas, P., Castillo, G. and Rodrigues, P. (2004). Learning with Drift Detection.
SBIA 2004, LNCS 3171, pp. 286-295.

DDM watches the error rate ``p_i`` of a learner and its Bernoulli standard deviation
``s_i = sqrt(p_i (1 - p_i) / i)``. It remembers ``p_min`` and ``s_min`` at the point where
``p_i + s_i`` was smallest and signals a warning when ``p_i + s_i > p_min + warning_threshold * s_min``
and a drift when ``p_i + s_i > p_min + drift_threshold * s_min``.

River compatibility
-------------------
Same constructor parameters, defaults and alarms as ``river.drift.binary.DDM`` (River 0.26.1),
including its quirks, which we reproduce on purpose:

* the state is reset lazily, at the start of the ``update`` that follows a drift, so after a drift
  ``drift_detected`` stays true until the next value arrives;
* the mean is River's incremental ``stats.Mean`` (same operation order, so the same bits);
* if the first ``warm_start`` values and the next one are all 0, then ``p_min = s_min = 0`` and the
  very first error afterwards is a drift (``p_i + s_i > 0``): a clean warm start makes DDM alarm on
  the first error;
* the update that reports a drift clears the warning.

Inputs are 0/1 (or bools); any value in [0, 1] is accepted and enters the mean as River's would.

Example
-------
>>> import numpy as np
>>> from detectors.ddm import DDM
>>> rng = np.random.default_rng(42)
>>> errors = np.concatenate([rng.random(1000) < 0.2, rng.random(1000) < 0.5]).astype(float)
>>> ddm = DDM()
>>> ddm.update_many(errors)
array([1457])
>>> ddm = DDM()
>>> for i, x in enumerate(errors):
...     ddm.update(x)
...     if ddm.drift_detected:
...         print(f"drift at {i}")
drift at 1457
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors._binary_common import as_batch, raise_invalid
from detectors.base import BinaryDriftDetector, check_binary_scalar


class DDM(BinaryDriftDetector):
    """Drift Detection Method (Gama et al., 2004); exact twin of ``river.drift.binary.DDM``.

    Parameters
    ----------
    warm_start
        Number of values to see before change can be detected.
    warning_threshold
        Number of ``s_min`` above ``p_min`` for a warning (2.0 ~ 95% confidence).
    drift_threshold
        Number of ``s_min`` above ``p_min`` for a drift (3.0 ~ 99% confidence).
    """

    _params = ("warm_start", "warning_threshold", "drift_threshold")

    def __init__(self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0):
        super().__init__()
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # running mean of the errors, as river.stats.Mean (n is a float there too)
        self._n = 0.0
        self._mean = 0.0
        self._p_min: float | None = None
        self._s_min: float | None = None
        self._ps_min = math.inf

    def update(self, x: Any) -> None:
        x = check_binary_scalar(x)
        if self._drift_detected:
            self._reset()

        self._n += 1.0
        self._mean += (1.0 / self._n) * (x - self._mean)
        p_i = self._mean
        n = self._n
        s_i = math.sqrt(p_i * (1 - p_i) / n)

        if n > self.warm_start:
            if p_i + s_i <= self._ps_min:
                self._p_min = p_i
                self._s_min = s_i
                self._ps_min = self._p_min + self._s_min

            self._warning_detected = p_i + s_i > self._p_min + self.warning_threshold * self._s_min

            if p_i + s_i > self._p_min + self.drift_threshold * self._s_min:
                self._drift_detected = True
                self._warning_detected = False

    def update_many(self, xs: Any, *, warnings: bool = False):  # type: ignore[override]
        arr = as_batch(xs)
        from detectors._binary_kernels import ddm_kernel  # lazy: imports numba

        st = np.array(
            [
                self._n,
                self._mean,
                math.nan if self._p_min is None else self._p_min,
                math.nan if self._s_min is None else self._s_min,
                self._ps_min,
                float(self._drift_detected),
                float(self._warning_detected),
            ],
            dtype=np.float64,
        )
        bad, drifts, warns = ddm_kernel(
            arr, st, float(self.warm_start), float(self.warning_threshold), float(self.drift_threshold),
            bool(warnings),
        )
        if bad >= 0:
            raise_invalid(arr, bad)
        self._n, self._mean, p_min, s_min, self._ps_min, drift, warning = st.tolist()
        self._p_min = None if math.isnan(p_min) else p_min
        self._s_min = None if math.isnan(s_min) else s_min
        self._drift_detected = drift != 0.0
        self._warning_detected = warning != 0.0
        if warnings:
            return drifts, warns
        return drifts

    # -- checkpoints -----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "mean": self._mean,
            "p_min": self._p_min,
            "s_min": self._s_min,
            # JSON has no infinity: None stands for the initial +inf
            "ps_min": None if math.isinf(self._ps_min) else self._ps_min,
            "drift_detected": self._drift_detected,
            "warning_detected": self._warning_detected,
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._n = float(state["n"])
        self._mean = float(state["mean"])
        self._p_min = None if state["p_min"] is None else float(state["p_min"])
        self._s_min = None if state["s_min"] is None else float(state["s_min"])
        self._ps_min = math.inf if state["ps_min"] is None else float(state["ps_min"])
        self._drift_detected = bool(state["drift_detected"])
        self._warning_detected = bool(state["warning_detected"])
