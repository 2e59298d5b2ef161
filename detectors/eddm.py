"""Early Drift Detection Method (EDDM).

Baena-García, M., del Campo-Ávila, J., Fidalgo, R., Bifet, A., Gavaldà, R. and Morales-Bueno, R.
(2006). Early Drift Detection Method. Fourth International Workshop on Knowledge Discovery from
Data Streams (IWKDDS), ECML PKDD 2006.

EDDM tracks the distance (in samples) between consecutive errors: its running mean ``p'`` and
standard deviation ``s'``, and the maximum of ``p' + 2 s'``. When ``(p' + 2 s') / max`` falls below
``alpha`` it warns, below ``beta`` it signals a drift.

River compatibility
-------------------
Same constructor parameters, defaults and alarms as ``river.drift.binary.EDDM`` (River 0.26.1):

* only a value equal to 1 counts as an error (River tests ``x == 1``); other values in [0, 1] only
  advance the sample counter;
* the distances go through River's Welford ``stats.Var`` (ddof=1) and the standard deviation is taken
  as ``var ** 0.5`` (libm ``pow``, which now and then differs from ``sqrt`` in the last bit; the fast
  path calls ``pow`` too);
* the state is reset lazily, at the start of the ``update`` that follows a drift;
* a warning is only re-evaluated on errors after the warm start; on other updates it keeps its value,
  and the update that reports a drift leaves the warning flag as it was (River does the same).

Example
-------
>>> import numpy as np
>>> from detectors.eddm import EDDM
>>> rng = np.random.default_rng(42)
>>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.6]).astype(float)
>>> eddm = EDDM(alpha=0.8, beta=0.75)
>>> eddm.update_many(errors)
array([1170])
>>> eddm = EDDM(alpha=0.8, beta=0.75)
>>> for i, x in enumerate(errors):
...     eddm.update(x)
...     if eddm.drift_detected:
...         print(f"drift at {i}")
drift at 1170
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._binary_common import as_batch, raise_invalid
from detectors.base import BinaryDriftDetector, check_binary_scalar


class EDDM(BinaryDriftDetector):
    """Early Drift Detection Method (Baena-García et al., 2006); exact twin of ``river.drift.binary.EDDM``.

    Parameters
    ----------
    warm_start
        Number of samples and of errors to see before change can be detected.
    alpha
        Warning threshold on ``(p' + 2 s') / max``, in (0, 1]; must be >= ``beta``.
    beta
        Drift threshold on ``(p' + 2 s') / max``, in (0, 1].
    """

    _params = ("warm_start", "alpha", "beta")

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9):
        super().__init__()
        self.warm_start = warm_start
        if alpha < beta:
            raise ValueError("'alpha' must be greater or equal to 'beta'.")
        self.alpha = alpha
        self.beta = beta
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # river.stats.Var of the distances between errors: count (float), mean, sum of squares
        self._var_n = 0.0
        self._var_mean = 0.0
        self._var_s = 0.0
        self._n = 0  # number of observations
        self._last_error = 0  # index of the last error
        self._n_errors = 0
        self._p2s_prime_max = -1.0

    def update(self, x: Any) -> None:
        x = check_binary_scalar(x)
        if self._drift_detected:
            self._reset()

        self._n += 1
        if x == 1:
            self._n_errors += 1
            d = float(self._n - self._last_error)
            mean_old = self._var_mean
            self._var_n += 1.0
            self._var_mean += (1.0 / self._var_n) * (d - self._var_mean)
            self._var_s += (d - mean_old) * (d - self._var_mean)

            if self._n > self.warm_start:
                pi_prime = self._var_mean
                var = self._var_s / (self._var_n - 1) if self._var_n > 1 else 0.0
                si_prime = var**0.5  # as River: pow, not sqrt

                p2s_prime = pi_prime + 2 * si_prime
                if p2s_prime > self._p2s_prime_max:
                    self._p2s_prime_max = p2s_prime
                elif self._n_errors > self.warm_start:
                    level = p2s_prime / self._p2s_prime_max
                    if level < self.beta:
                        self._drift_detected = True
                    elif level < self.alpha:
                        self._warning_detected = True
                    else:
                        self._warning_detected = False

            self._last_error = self._n

    def update_many(self, xs: Any, *, warnings: bool = False):  # type: ignore[override]
        arr = as_batch(xs)
        from detectors._binary_kernels import eddm_kernel  # lazy: imports numba

        fst = np.array([self._var_n, self._var_mean, self._var_s, self._p2s_prime_max], dtype=np.float64)
        ist = np.array(
            [self._n, self._last_error, self._n_errors, int(self._drift_detected), int(self._warning_detected)],
            dtype=np.int64,
        )
        bad, drifts, warns = eddm_kernel(
            arr, fst, ist, float(self.warm_start), float(self.alpha), float(self.beta), 0.5, bool(warnings)
        )
        if bad >= 0:
            raise_invalid(arr, bad)
        self._var_n, self._var_mean, self._var_s, self._p2s_prime_max = fst.tolist()
        self._n, self._last_error, self._n_errors, drift, warning = ist.tolist()
        self._drift_detected = drift != 0
        self._warning_detected = warning != 0
        if warnings:
            return drifts, warns
        return drifts

    # -- checkpoints -----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "var_n": self._var_n,
            "var_mean": self._var_mean,
            "var_s": self._var_s,
            "n": self._n,
            "last_error": self._last_error,
            "n_errors": self._n_errors,
            "p2s_prime_max": self._p2s_prime_max,
            "drift_detected": self._drift_detected,
            "warning_detected": self._warning_detected,
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._var_n = float(state["var_n"])
        self._var_mean = float(state["var_mean"])
        self._var_s = float(state["var_s"])
        self._n = int(state["n"])
        self._last_error = int(state["last_error"])
        self._n_errors = int(state["n_errors"])
        self._p2s_prime_max = float(state["p2s_prime_max"])
        self._drift_detected = bool(state["drift_detected"])
        self._warning_detected = bool(state["warning_detected"])
