"""Hoeffding Drift Detection Method with the weighted moving average test (HDDM_W).

Frías-Blanco, I., del Campo-Ávila, J., Ramos-Jiménez, G., Morales-Bueno, R., Ortiz-Díaz, A. and
Caballero-Mota, Y. (2015). Online and Non-Parametric Drift Detection Methods Based on Hoeffding's
Bounds. IEEE Transactions on Knowledge and Data Engineering 27(3), pp. 810-823.

HDDM_W compares exponentially weighted moving averages (EWMA) of the stream before and after a cut
point, with McDiarmid's bound, and signals a warning / drift at ``warning_confidence`` /
``drift_confidence``. With ``two_sided_test`` it also watches decreases.

River compatibility
-------------------
Same constructor parameters, defaults and alarms as ``river.drift.binary.HDDMW`` (River 0.26.1; our
class is named ``HDDMW`` like River's, with ``HDDM_W`` kept as an alias):

* each sample summary is River's ``SampleInfo``: an EWMA as River's (Rust) ``stats.EWMean`` — the
  first value is taken as is, then ``lambda * x + (1 - lambda) * ewma`` — an "initialised" flag and the
  independent bound condition ``ibc = lambda^2 + (1 - lambda)^2 * ibc``, all in River's operation order;
* the state is reset lazily, at the start of the ``update`` that follows a drift;
* on the two-sided test a decrease can set ``drift_detected`` without clearing a warning raised by the
  increase test in the same update, exactly as River does.

Example
-------
>>> import numpy as np
>>> from detectors.hddm_w import HDDMW
>>> rng = np.random.default_rng(42)
>>> errors = np.concatenate([rng.random(1000) < 0.2, rng.random(1000) < 0.5]).astype(float)
>>> HDDMW().update_many(errors)
array([1040])
>>> det = HDDMW()
>>> for i, x in enumerate(errors):
...     det.update(x)
...     if det.drift_detected:
...         print(f"drift at {i}")
drift at 1040
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors._binary_common import as_batch, raise_invalid
from detectors.base import BinaryDriftDetector, check_binary_scalar

# A sample summary (River's SampleInfo) is a list [ewma, is_init, ibc].
_EWMA, _INIT, _IBC = 0, 1, 2


def _new_sample() -> list:
    return [0.0, False, 1.0]


class HDDMW(BinaryDriftDetector):
    """HDDM with the W-test (Frías-Blanco et al., 2015); exact twin of ``river.drift.binary.HDDMW``.

    Parameters
    ----------
    drift_confidence
        Confidence of the drift test.
    warning_confidence
        Confidence of the warning test.
    lambda_val
        Weight of recent data in the EWMA, in [0, 1].
    two_sided_test
        Also monitor decreases of the mean (by default only increases).
    """

    _params = ("drift_confidence", "warning_confidence", "lambda_val", "two_sided_test")

    def __init__(self, drift_confidence: float = 0.001, warning_confidence: float = 0.005,
                 lambda_val: float = 0.05, two_sided_test: bool = False):
        super().__init__()
        if not 0 <= lambda_val <= 1:  # River's stats.EWMean refuses it too
            raise ValueError("q is not comprised between 0 and 1")
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.lambda_val = lambda_val
        self.two_sided_test = two_sided_test
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._total = _new_sample()
        self._s1_decr = _new_sample()
        self._s1_incr = _new_sample()
        self._s2_decr = _new_sample()
        self._s2_incr = _new_sample()
        self._incr_cutpoint = math.inf
        self._decr_cutpoint = -math.inf

    def _sample_update(self, s: list, x: float) -> None:
        lambd = self.lambda_val
        s[_EWMA] = lambd * x + (1 - lambd) * s[_EWMA] if s[_INIT] else x
        s[_INIT] = True
        s[_IBC] = lambd * lambd + (1 - lambd) ** 2 * s[_IBC]

    @staticmethod
    def _mcdiarmid_bound(ibc: float, confidence: float) -> float:
        return math.sqrt(ibc * math.log(1 / confidence) / 2)

    def _has_mean_changed(self, sample1: list, sample2: list, confidence: float) -> bool:
        if not (sample1[_INIT] and sample2[_INIT]):
            return False
        bound = self._mcdiarmid_bound(sample1[_IBC] + sample2[_IBC], confidence)
        return sample2[_EWMA] - sample1[_EWMA] > bound

    def update(self, x: Any) -> None:
        x = check_binary_scalar(x)
        if self._drift_detected:
            self._reset()

        total = self._total
        self._sample_update(total, x)

        # statistics for an increase of the mean
        eps = self._mcdiarmid_bound(total[_IBC], self.drift_confidence)
        if total[_EWMA] + eps < self._incr_cutpoint:
            self._incr_cutpoint = total[_EWMA] + eps
            self._s1_incr = list(total)
            self._s2_incr = _new_sample()
        else:
            self._sample_update(self._s2_incr, x)

        if self._has_mean_changed(self._s1_incr, self._s2_incr, self.drift_confidence):
            self._warning_detected = False
            self._drift_detected = True
        elif self._has_mean_changed(self._s1_incr, self._s2_incr, self.warning_confidence):
            self._warning_detected = True
            self._drift_detected = False
        else:
            self._warning_detected = False
            self._drift_detected = False

        # statistics for a decrease of the mean (updated even on the one-sided test, as River)
        eps = self._mcdiarmid_bound(total[_IBC], self.drift_confidence)
        if total[_EWMA] - eps > self._decr_cutpoint:
            self._decr_cutpoint = total[_EWMA] - eps
            self._s1_decr = list(total)
            self._s2_decr = _new_sample()
        else:
            self._sample_update(self._s2_decr, x)

        if self.two_sided_test:
            if self._has_mean_changed(self._s2_decr, self._s1_decr, self.drift_confidence):
                self._drift_detected = True
            elif self._has_mean_changed(self._s2_decr, self._s1_decr, self.warning_confidence):
                self._warning_detected = True

    def update_many(self, xs: Any, *, warnings: bool = False):  # type: ignore[override]
        arr = as_batch(xs)
        from detectors._binary_kernels import hddm_w_kernel  # lazy: imports numba

        st = np.array(
            [float(v) for s in self._samples() for v in s]
            + [self._incr_cutpoint, self._decr_cutpoint, float(self._drift_detected), float(self._warning_detected)],
            dtype=np.float64,
        )
        lambd = self.lambda_val
        bad, drifts, warns = hddm_w_kernel(
            arr,
            st,
            float(lambd),
            float(1 - lambd),
            float(lambd * lambd),
            float((1 - lambd) ** 2),
            math.log(1 / self.drift_confidence),
            math.log(1 / self.warning_confidence),
            bool(self.two_sided_test),
            bool(warnings),
        )
        if bad >= 0:
            raise_invalid(arr, bad)
        vals = st.tolist()
        self._total, self._s1_incr, self._s2_incr, self._s1_decr, self._s2_decr = (
            [vals[k], bool(vals[k + 1]), vals[k + 2]] for k in range(0, 15, 3)
        )
        self._incr_cutpoint, self._decr_cutpoint = vals[15], vals[16]
        self._drift_detected = bool(vals[17])
        self._warning_detected = bool(vals[18])
        if warnings:
            return drifts, warns
        return drifts

    def _samples(self) -> tuple[list, ...]:
        # the order of the kernel's state array
        return self._total, self._s1_incr, self._s2_incr, self._s1_decr, self._s2_decr

    # -- checkpoints -----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        names = ("total", "s1_incr", "s2_incr", "s1_decr", "s2_decr")
        state: dict[str, Any] = {name: list(s) for name, s in zip(names, self._samples())}
        # JSON has no infinity: None stands for the initial +inf / -inf
        state["incr_cutpoint"] = None if math.isinf(self._incr_cutpoint) else self._incr_cutpoint
        state["decr_cutpoint"] = None if math.isinf(self._decr_cutpoint) else self._decr_cutpoint
        state["drift_detected"] = self._drift_detected
        state["warning_detected"] = self._warning_detected
        return state

    def _set_running_state(self, state: dict[str, Any]) -> None:
        def sample(v: list) -> list:
            return [float(v[0]), bool(v[1]), float(v[2])]

        self._total = sample(state["total"])
        self._s1_incr = sample(state["s1_incr"])
        self._s2_incr = sample(state["s2_incr"])
        self._s1_decr = sample(state["s1_decr"])
        self._s2_decr = sample(state["s2_decr"])
        inc, dec = state["incr_cutpoint"], state["decr_cutpoint"]
        self._incr_cutpoint = math.inf if inc is None else float(inc)
        self._decr_cutpoint = -math.inf if dec is None else float(dec)
        self._drift_detected = bool(state["drift_detected"])
        self._warning_detected = bool(state["warning_detected"])


#: the name driftstream used first; same class
HDDM_W = HDDMW
