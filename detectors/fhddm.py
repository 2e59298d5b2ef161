"""Fast Hoeffding Drift Detection Method (FHDDM), with the optional stacking short window.

Pesaranghader, A. and Viktor, H. L. (2016). Fast Hoeffding Drift Detection Method for Evolving Data
Streams. ECML PKDD 2016, LNCS 9852, pp. 96-111. The short window is from Pesaranghader, Viktor and
Paquet (2018), Reservoir of Diverse Adaptive Learners and Stacking Fast Hoeffding Drift Detection
Methods for Evolving Data Streams, Machine Learning 107.

FHDDM keeps a sliding window of the last ``sliding_window_size`` values and the largest window mean
seen so far (River's implementation averages the raw inputs, i.e. the *error* rate, and alarms when
that mean falls by more than the Hoeffding bound ``sqrt(ln(1/confidence_level) / (2 n))`` below its
maximum). With ``short_window_size`` the same test also runs on the last ``short_window_size`` values.

River compatibility
-------------------
Same constructor parameters, defaults and alarms as ``river.drift.binary.FHDDM`` (River 0.26.1):

* the window sum is River's running ``n_one`` (add the new value, subtract the oldest once the window
  is full), the short-window sum is recomputed left to right, as River's ``sum(islice(...))``; the
  window itself is a ring buffer rather than River's deque;
* the state is reset lazily, at the start of the ``update`` that follows a drift;
* FHDDM never warns: ``warning_detected`` is always false, ``update_many(..., warnings=True)`` returns
  an empty warning array.

Deviation: River accepts a ``short_window_size`` larger than the window (or 0) and fails on the first
full window; we raise ``ValueError`` in the constructor.

Example
-------
>>> import numpy as np
>>> from detectors.fhddm import FHDDM
>>> rng = np.random.default_rng(42)
>>> errors = np.concatenate([rng.random(250) < 0.5, rng.random(250) < 0.1]).astype(float)
>>> FHDDM().update_many(errors)
array([303])
>>> det = FHDDM(short_window_size=20)
>>> for i, x in enumerate(errors):
...     det.update(x)
...     if det.drift_detected:
...         print(f"drift at {i}")
drift at 268
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors._binary_common import as_batch, raise_invalid
from detectors.base import BinaryDriftDetector, check_binary_scalar


class FHDDM(BinaryDriftDetector):
    """Fast Hoeffding Drift Detection Method (Pesaranghader & Viktor, 2016); exact twin of
    ``river.drift.binary.FHDDM``.

    Parameters
    ----------
    sliding_window_size
        Size of the sliding window; also the number of values needed before change can be detected.
    confidence_level
        Confidence level of the Hoeffding bound.
    short_window_size
        Size of the short window of Stacking FHDDM; ``None`` for plain FHDDM.
    """

    _params = ("sliding_window_size", "confidence_level", "short_window_size")

    def __init__(self, sliding_window_size: int = 100, confidence_level: float = 0.000001,
                 short_window_size: int | None = None):
        super().__init__()
        if short_window_size is not None and not 1 <= short_window_size <= sliding_window_size:
            raise ValueError("short_window_size must be between 1 and sliding_window_size")
        self.sliding_window_size = sliding_window_size
        self.confidence_level = confidence_level
        self.short_window_size = short_window_size
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        size = self.sliding_window_size
        # the sliding window as a ring buffer: the oldest value at _head, _count values in all
        self._buf = np.zeros(size, dtype=np.float64)
        self._head = 0
        self._count = 0
        self._epsilon = math.sqrt((math.log(1 / self.confidence_level)) / (2 * size))
        self._u_max = 0.0
        self._n_one = 0.0
        self._u_short_max = 0.0
        self._epsilon_s = (
            math.sqrt((math.log(1 / self.confidence_level)) / (2 * self.short_window_size))
            if self.short_window_size is not None
            else 0.0
        )

    @property
    def n_one(self) -> float:
        """Sum of the values in the sliding window (public in River)."""
        return self._n_one

    def _window(self) -> np.ndarray:
        """The sliding window, oldest value first."""
        return np.roll(self._buf, -self._head)[: self._count]

    def _newest(self, k: int) -> list[float]:
        """The ``k`` newest values of a full window, oldest first."""
        size = self.sliding_window_size
        start = (self._head + size - k) % size
        if start + k <= size:
            return self._buf[start : start + k].tolist()
        return self._buf[start:].tolist() + self._buf[: start + k - size].tolist()

    def update(self, x: Any) -> None:
        x = check_binary_scalar(x)
        if self._drift_detected:
            self._reset()

        size = self.sliding_window_size
        self._buf[(self._head + self._count) % size] = x
        self._count += 1
        self._n_one += x

        if self._count == size:
            u = self._n_one / size
            self._u_max = u if (self._u_max < u) else self._u_max

            short_drift = False
            if self.short_window_size is not None:
                # left-to-right sum, as River's sum(itertools.islice(window, ...))
                u_s = sum(self._newest(self.short_window_size)) / self.short_window_size
                self._u_short_max = u_s if self._u_short_max < u_s else self._u_short_max
                short_drift = self._u_short_max - u_s > self._epsilon_s

            long_drift = self._u_max - u > self._epsilon
            self._drift_detected = long_drift or short_drift
            # popleft
            self._n_one -= float(self._buf[self._head])
            self._head = (self._head + 1) % size
            self._count -= 1

    def update_many(self, xs: Any, *, warnings: bool = False):  # type: ignore[override]
        arr = as_batch(xs)
        from detectors._binary_kernels import fhddm_kernel  # lazy: imports numba

        ist = np.array([self._head, self._count, int(self._drift_detected)], dtype=np.int64)
        fst = np.array([self._n_one, self._u_max, self._u_short_max], dtype=np.float64)
        short = 0 if self.short_window_size is None else int(self.short_window_size)
        bad, drifts = fhddm_kernel(
            arr, self._buf, ist, fst, int(self.sliding_window_size), self._epsilon, short, self._epsilon_s
        )
        if bad >= 0:
            raise_invalid(arr, bad)
        self._head, self._count, drift = ist.tolist()
        self._drift_detected = drift != 0
        self._n_one, self._u_max, self._u_short_max = fst.tolist()
        if warnings:
            return drifts, np.empty(0, dtype=np.int64)
        return drifts

    # -- checkpoints -----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "window": self._window(),
            "n_one": self._n_one,
            "u_max": self._u_max,
            "u_short_max": self._u_short_max,
            "drift_detected": self._drift_detected,
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        window = np.asarray(state["window"], dtype=np.float64)
        if window.ndim != 1 or window.size >= self.sliding_window_size:
            raise ValueError("FHDDM state: the window must hold fewer than sliding_window_size values")
        self._buf = np.zeros(self.sliding_window_size, dtype=np.float64)
        self._buf[: window.size] = window
        self._head = 0
        self._count = int(window.size)
        self._n_one = float(state["n_one"])
        self._u_max = float(state["u_max"])
        self._u_short_max = float(state["u_short_max"])
        self._drift_detected = bool(state["drift_detected"])
        self._warning_detected = False
