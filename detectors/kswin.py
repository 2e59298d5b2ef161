r"""KSWIN: Kolmogorov-Smirnov WINdowing drift detector.

Reference: Christoph Raab, Moritz Heusinger, Frank-Michael Schleif. "Reactive Soft Prototype Computing
for Concept Drift Streams." Neurocomputing 416, 340-351 (2020).

KSWIN keeps a sliding window :math:`\Psi` of ``window_size`` values. Once it is full, every update draws
``stat_size`` values uniformly without replacement from the oldest ``window_size - stat_size`` ones and
compares them with the ``stat_size`` most recent ones with a two-sample Kolmogorov-Smirnov test; drift is
signalled when the p-value is at most ``alpha`` and the KS statistic is above 0.1.

River compatibility
-------------------
Same class name, parameters, defaults and alarm positions as ``river.drift.KSWIN`` (River 0.26.1), which
draws with ``random.Random(seed).sample`` and tests with ``scipy.stats.ks_2samp(method="auto")``. We
replay the same random draws (CPython's Mersenne Twister, ``getrandbits`` and ``Random.sample``, ported
to numba) and compute scipy's exact KS p-value ourselves (no scipy import): for two samples of equal
size ``n <= 10000`` scipy rounds the statistic to ``h / n`` and uses ``_compute_prob_outside_square``,
which we evaluate with the same floating-point operations, so ``p_value`` is bit-identical except where
scipy's exact value rounds above 1 and scipy falls back to its asymptotic distribution (only for a
statistic of one or two steps, where the p-value is above 0.9999): there ``p_value`` is 1.0 here.

Behaviour worth knowing (all of it River's):

* after a detection the window is cut to the ``stat_size`` most recent values, but the *next* update
  then resets the detector: the window is emptied (the constructor's ``window`` is not reloaded), ``n``
  restarts at 0 and the random generator is re-seeded with ``seed`` (so the same draws repeat);
* with ``seed=None`` every reset draws a fresh OS seed, so runs are not reproducible.

Deviations: ``stat_size < 1``, ``stat_size > window_size - stat_size`` (River fails on the first full
window because ``random.sample`` cannot draw that many) and ``stat_size > 10000`` (where scipy switches
to the asymptotic test) raise ``ValueError`` at construction. The ``window`` attribute is the constructor
argument (a list of floats or ``None``); the live window, which River keeps in ``window``, is
``current_window`` here.

Example
-------
>>> import random
>>> from detectors.kswin import KSWIN
>>> rng = random.Random(12345)
>>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
>>> kswin = KSWIN(alpha=0.0001, seed=42)
>>> for i, x in enumerate(stream):
...     kswin.update(x)
...     if kswin.drift_detected:
...         print(f"Change detected at index {i}, input value: {x}")
Change detected at index 1016, input value: 6
>>> KSWIN(alpha=0.0001, seed=42).update_many(stream).tolist()
[1016]
"""

from __future__ import annotations

import math
import random
from typing import Any, Iterable

import numpy as np

from detectors.base import DriftDetector, as_float_array, check_scalar

# istate indices; must match detectors/_kswin_kernel.py
_HEAD, _LENGTH, _N, _DRIFT, _MTI = 0, 1, 2, 3, 4
_MT_WORDS = 624
_MAX_EXACT_N = 10000  # scipy's ks_2samp(method="auto") is exact up to this sample size


def _kernel():
    from detectors import _kswin_kernel  # lazy: imports numba

    return _kswin_kernel


def _mt_state(seed: Any) -> tuple[np.ndarray, int]:
    """The Mersenne Twister words and index of ``random.Random(seed)``."""
    internal = random.Random(seed).getstate()[1]
    return np.asarray(internal[:_MT_WORDS], dtype=np.int64), int(internal[_MT_WORDS])


class KSWIN(DriftDetector):
    """Kolmogorov-Smirnov Windowing method for concept drift detection.

    Parameters
    ----------
    alpha
        Probability for the test statistic of the Kolmogorov-Smirnov test (keep it below 0.01).
    window_size
        Size of the sliding window.
    stat_size
        Size of the statistic window.
    seed
        Random seed for reproducibility.
    window
        Already collected data to avoid a cold start (only used at construction, not after a reset).
    """

    _params = ("alpha", "window_size", "stat_size", "seed", "window")

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int | None = None,
        window: Iterable | None = None,
    ) -> None:
        super().__init__()
        if alpha < 0 or alpha > 1:
            raise ValueError("Alpha must be between 0 and 1.")
        if window_size < 0:
            raise ValueError("window_size must be greater than 0.")
        if window_size < stat_size:
            raise ValueError("stat_size must be smaller than window_size.")
        if stat_size < 1:
            raise ValueError("stat_size must be at least 1.")
        if stat_size > window_size - stat_size:
            raise ValueError("stat_size must be at most window_size - stat_size (River's sample would fail).")
        if stat_size > _MAX_EXACT_N:
            raise ValueError(f"stat_size above {_MAX_EXACT_N} is not supported (scipy's test is asymptotic).")
        self.alpha = alpha
        self.window_size = int(window_size)
        self.stat_size = int(stat_size)
        self.seed = seed
        self.window = None if window is None else [float(v) for v in as_float_array(list(window))]

        m = self.window_size - self.stat_size
        # CPython's Random.sample: pool method when the population is small compared to a set of picks
        setsize = 21
        if self.stat_size > 5:
            setsize += 4 ** math.ceil(math.log(self.stat_size * 3, 4))
        self._use_pool = m <= setsize
        self._pool = np.zeros(m, dtype=np.int64)
        self._selected = np.zeros(m, dtype=np.int64)
        self._picks = np.zeros(self.stat_size, dtype=np.int64)
        self._rnd = np.zeros(self.stat_size, dtype=np.float64)
        self._recent = np.zeros(self.stat_size, dtype=np.float64)
        self._ptable: np.ndarray | None = None  # built on first use (needs the numba kernel)
        self._seed_mt = None if seed is None else _mt_state(seed)

        self._reset()
        if self.window:
            self._load_window(self.window)

    def _reset(self) -> None:
        super()._reset()
        self._win = np.zeros(self.window_size, dtype=np.float64)
        self._istate = np.zeros(5, dtype=np.int64)
        self._pval = np.zeros(1, dtype=np.float64)
        mt, mti = _mt_state(None) if self._seed_mt is None else (self._seed_mt[0].copy(), self._seed_mt[1])
        self._mt = mt
        self._istate[_MTI] = mti

    def _load_window(self, values: list[float]) -> None:
        values = list(values)[-self.window_size :] if self.window_size else []
        self._win[:] = 0.0
        self._win[: len(values)] = values
        self._istate[_HEAD] = 0
        self._istate[_LENGTH] = len(values)

    # -- River's public running attributes ------------------------------------------------------
    @property
    def p_value(self) -> float:
        """p-value of the last KS test (0 until the window is first full, as in River)."""
        return float(self._pval[0])

    @property
    def n(self) -> int:
        """Number of updates since the last reset."""
        return int(self._istate[_N])

    @property
    def current_window(self) -> list[float]:
        """The sliding window, oldest first (River's ``window`` deque)."""
        head, length, w = int(self._istate[_HEAD]), int(self._istate[_LENGTH]), self.window_size
        return [float(self._win[(head + r) % w]) for r in range(length)]

    # -- updates --------------------------------------------------------------------------------
    def update(self, x: Any) -> None:
        self.update_many(np.array([check_scalar(x)], dtype=np.float64))

    def update_many(self, xs: Any) -> np.ndarray:
        arr = np.ascontiguousarray(as_float_array(xs))
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        kernel = _kernel()
        if self._ptable is None:
            self._ptable = kernel.pvalue_table(self.stat_size)
        out = np.empty(arr.size, dtype=np.int64)
        i, n_out = 0, 0
        while True:
            i, n_out = kernel.update_many(
                arr,
                i,
                out,
                n_out,
                self._win,
                self._istate,
                self._pval,
                self._mt,
                self._ptable,
                self.window_size,
                self.stat_size,
                float(self.alpha),
                self._use_pool,
                self._pool,
                self._selected,
                self._picks,
                self._rnd,
                self._recent,
            )
            if i >= arr.size:
                break
            # element i arrives after a detection: River's `if self.drift_detected: self._reset()`
            self._reset()
        self._drift_detected = bool(self._istate[_DRIFT])
        return out[:n_out].copy()

    # -- checkpoints ----------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "window": self.current_window,
            "n": self.n,
            "p_value": self.p_value,
            "drift_detected": bool(self._drift_detected),
            # CPython's Random.getstate()[1] layout: 624 words then the index
            "rng_state": [int(v) for v in self._mt] + [int(self._istate[_MTI])],
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._reset()
        rng_state = [int(v) for v in state["rng_state"]]
        if len(rng_state) != _MT_WORDS + 1:
            raise ValueError("bad KSWIN state: rng_state must hold 625 integers")
        window = [float(v) for v in state["window"]]
        if len(window) > self.window_size:
            raise ValueError("bad KSWIN state: window longer than window_size")
        self._load_window(window)
        self._mt = np.asarray(rng_state[:_MT_WORDS], dtype=np.int64)
        self._istate[_MTI] = rng_state[_MT_WORDS]
        self._istate[_N] = int(state["n"])
        self._pval[0] = float(state["p_value"])
        self._drift_detected = bool(state["drift_detected"])
        self._istate[_DRIFT] = 1 if self._drift_detected else 0

