"""Hoeffding Drift Detection Method with the moving average test (HDDM_A).

Frías-Blanco, I., del Campo-Ávila, J., Ramos-Jiménez, G., Morales-Bueno, R., Ortiz-Díaz, A. and
Caballero-Mota, Y. (2015). Online and Non-Parametric Drift Detection Methods Based on Hoeffding's
Bounds. IEEE Transactions on Knowledge and Data Engineering 27(3), pp. 810-823.

HDDM_A compares the mean of the whole stream with the mean up to a cut point (the prefix whose
Hoeffding upper bound was smallest) and signals a warning / drift when the difference exceeds the
Hoeffding bound at ``warning_confidence`` / ``drift_confidence``. With ``two_sided_test`` it also
watches decreases.

River compatibility
-------------------
Same constructor parameters, defaults and alarms as ``river.drift.binary.HDDMA`` (River 0.26.1; our
class is named ``HDDMA`` like River's, with ``HDDM_A`` kept as an alias):

* the means are River's incremental ``stats.Mean`` and the bounds use River's formulas in the same
  operation order (the ``log`` terms are computed once; same libm, same values);
* the state is reset lazily, at the start of the ``update`` that follows a drift;
* on the two-sided test a decrease can raise a warning in the same update as an increase drift, and
  it can set ``drift_detected`` without clearing the warning, exactly as River does.

Example
-------
>>> import numpy as np
>>> from detectors.hddm_a import HDDMA
>>> rng = np.random.default_rng(42)
>>> errors = np.concatenate([rng.random(1000) < 0.2, rng.random(1000) < 0.5]).astype(float)
>>> HDDMA().update_many(errors)
array([1051])
>>> det = HDDMA()
>>> for i, x in enumerate(errors):
...     det.update(x)
...     if det.drift_detected:
...         print(f"drift at {i}")
drift at 1051
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors._binary_common import as_batch, raise_invalid
from detectors.base import BinaryDriftDetector, check_binary_scalar


class HDDMA(BinaryDriftDetector):
    """HDDM with the A-test (Frías-Blanco et al., 2015); exact twin of ``river.drift.binary.HDDMA``.

    Parameters
    ----------
    drift_confidence
        Confidence of the drift test.
    warning_confidence
        Confidence of the warning test.
    two_sided_test
        Also monitor decreases of the mean (by default only increases).
    warm_start
        driftstream's addition, 0 (River's behaviour) by default: after a (re)start, the first
        ``warm_start`` values update the statistics but raise neither warning nor drift. Calibration
        (:mod:`detectors.calibrate`) sets it: like DDM's, this statistic accumulates over the whole run, so
        without a warm-up most false alarms come right after a restart.
    """

    _params = ("drift_confidence", "warning_confidence", "two_sided_test", "warm_start")

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 two_sided_test: bool = False, warm_start: int = 0):
        super().__init__()
        if int(warm_start) < 0:
            raise ValueError("warm_start must be >= 0")
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        self.warm_start = int(warm_start)
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # global mean z, and the cut points for increases (x_min) and decreases (x_max):
        # each is river.stats.Mean's (n, mean)
        self._z_n = 0.0
        self._z_mean = 0.0
        self._xmin_n = 0.0
        self._xmin_mean = 0.0
        self._xmax_n = 0.0
        self._xmax_mean = 0.0

    def _hoeffding_bound(self, n: float) -> float:
        return math.sqrt(1.0 / (2 * n) * math.log(1.0 / self.drift_confidence))

    def update(self, x: Any) -> None:
        x = check_binary_scalar(x)
        if self._drift_detected:
            self._reset()

        self._z_n += 1.0
        self._z_mean += (1.0 / self._z_n) * (x - self._z_mean)
        if self._xmin_n == 0:
            self._xmin_n, self._xmin_mean = self._z_n, self._z_mean
        if self._xmax_n == 0:
            self._xmax_n, self._xmax_mean = self._z_n, self._z_mean

        eps_z = self._hoeffding_bound(self._z_n)
        eps_x = self._hoeffding_bound(self._xmin_n)
        if self._xmin_mean + eps_x >= self._z_mean + eps_z:
            self._xmin_n, self._xmin_mean = self._z_n, self._z_mean

        eps_x = self._hoeffding_bound(self._xmax_n)
        if self._xmax_mean - eps_x <= self._z_mean - eps_z:
            self._xmax_n, self._xmax_mean = self._z_n, self._z_mean

        if self._z_n <= self.warm_start:  # the statistics are kept, the tests wait
            self._warning_detected = False
            self._drift_detected = False
            return
        if self._mean_incr(self.drift_confidence):
            self._warning_detected = False
            self._drift_detected = True
        elif self._mean_incr(self.warning_confidence):
            self._warning_detected = True
            self._drift_detected = False
        else:
            self._warning_detected = False
            self._drift_detected = False

        if self.two_sided_test:
            if self._mean_decr(self.drift_confidence):
                self._drift_detected = True
            elif self._mean_decr(self.warning_confidence):
                self._warning_detected = True

    def _mean_incr(self, confidence: float) -> bool:
        if self._xmin_n == self._z_n:
            return False
        m = (self._z_n - self._xmin_n) / self._xmin_n * (1.0 / self._z_n)
        eps = math.sqrt(m / 2 * math.log(2.0 / confidence))
        return self._z_mean - self._xmin_mean >= eps

    def _mean_decr(self, confidence: float) -> bool:
        if self._xmax_n == self._z_n:
            return False
        m = (self._z_n - self._xmax_n) / self._xmax_n * (1.0 / self._z_n)
        eps = math.sqrt(m / 2 * math.log(2.0 / confidence))
        return self._xmax_mean - self._z_mean >= eps

    def update_many(self, xs: Any, *, warnings: bool = False):  # type: ignore[override]
        arr = as_batch(xs)
        from detectors._binary_kernels import hddm_a_kernel  # lazy: imports numba

        st = np.array(
            [self._z_n, self._z_mean, self._xmin_n, self._xmin_mean, self._xmax_n, self._xmax_mean,
             float(self._drift_detected), float(self._warning_detected)],
            dtype=np.float64,
        )
        bad, drifts, warns = hddm_a_kernel(
            arr,
            st,
            math.log(1.0 / self.drift_confidence),
            math.log(2.0 / self.drift_confidence),
            math.log(2.0 / self.warning_confidence),
            bool(self.two_sided_test),
            bool(warnings),
            float(self.warm_start),
        )
        if bad >= 0:
            raise_invalid(arr, bad)
        (self._z_n, self._z_mean, self._xmin_n, self._xmin_mean, self._xmax_n, self._xmax_mean,
         drift, warning) = st.tolist()
        self._drift_detected = drift != 0.0
        self._warning_detected = warning != 0.0
        if warnings:
            return drifts, warns
        return drifts

    # -- checkpoints -----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "z": [self._z_n, self._z_mean],
            "x_min": [self._xmin_n, self._xmin_mean],
            "x_max": [self._xmax_n, self._xmax_mean],
            "drift_detected": self._drift_detected,
            "warning_detected": self._warning_detected,
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._z_n, self._z_mean = (float(v) for v in state["z"])
        self._xmin_n, self._xmin_mean = (float(v) for v in state["x_min"])
        self._xmax_n, self._xmax_mean = (float(v) for v in state["x_max"])
        self._drift_detected = bool(state["drift_detected"])
        self._warning_detected = bool(state["warning_detected"])


#: the name driftstream used first; same class
HDDM_A = HDDMA
