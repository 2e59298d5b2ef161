"""Two-sample Kolmogorov-Smirnov drift test over a reference sample and a sliding/tumbling window.

The statistic is ``D = sup_x |F_ref(x) - F_cur(x)|`` between the empirical CDFs of the reference sample
(size ``n``) and the current window (size ``m``); the two-sided p-value is the asymptotic one,
``Q_KS(sqrt(n m / (n + m)) * D)`` with ``Q_KS`` the survival function of Kolmogorov's distribution
(:func:`detectors._stats.kolmogorov_sf`). Drift is flagged when ``p_value < alpha``.

The reference (the first ``reference_size`` values, or ``reference``) is kept as a sorted sample, the window as
a ring buffer of raw values, so memory is ``O(reference_size + window_size)``. ``update_many`` writes whole
chunks into the ring buffer and only runs the tests the schedule asks for (see :mod:`detectors.window`).
Once the window is full each value entering it is ranked among the reference's ``K`` distinct values
(``O(log K)``) and a test is one pass over the ``2K + 1`` rank counts, with no sort
(:func:`detectors._ks_kernel.ks_statistic_counts`; the statistic is bit-identical to the merge of the sorted
samples); from then on a batch of ``update_many`` is one compiled call (:func:`detectors._ks_kernel.ingest_keyed`).
P-values are remembered per statistic value: with fixed sample sizes ``D`` takes few distinct values.

References: A. Kolmogorov, "Sulla determinazione empirica di una legge di distribuzione", 1933;
N. Smirnov, "Table for estimating the goodness of fit of empirical distributions", Ann. Math. Stat. 19, 1948;
Rabanser et al., "Failing loudly", NeurIPS 2019 (KS on features for shift detection).

>>> import numpy as np
>>> from detectors.ks_test import KSDrift
>>> rng = np.random.default_rng(7)
>>> ks = KSDrift(reference_size=500, window_size=200, mode="tumbling", alpha=0.01)
>>> [(r.position, r.drift) for r in ks.update_many(rng.normal(0.0, 1.0, 900))]
[(700, False), (900, False)]
>>> [(r.position, r.drift) for r in ks.update_many(rng.normal(0.5, 1.0, 400))]
[(1100, True), (1300, True)]
>>> r = ks.last_result
>>> r.test, r.reference_size, r.current_size, r.p_value < 0.01
('ks', 500, 200, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors._stats import kolmogorov_sf
from detectors.base import as_float_array, as_float_vector, check_scalar, kernel_module, non_finite_error
from detectors.window import DriftTestResult, WindowedDriftTest

#: p-values remembered per detector (one per distinct statistic value; cleared when full)
_P_VALUE_MEMO_SIZE = 4096
_MAX_BUCKETS = 1 << 16


class KSDrift(WindowedDriftTest):
    """Windowed two-sample Kolmogorov-Smirnov test on a numeric stream.

    Parameters
    ----------
    reference_size
        Number of first stream values that form the reference (unused if ``reference`` is given).
    window_size
        Size of the current window.
    step
        Values between tests once the window is full (``mode="sliding"``, default 1).
    mode
        ``"sliding"`` or ``"tumbling"`` (tests every ``window_size`` values on non-overlapping windows).
    alpha
        Significance level: drift iff ``p_value < alpha``.
    reference
        Optional fixed reference sample; kept whole (sorted), so its length bounds the memory.
    """

    _params = ("reference_size", "window_size", "step", "mode", "alpha", "reference")
    _test_name = "ks"
    event_name = "KS"
    _window_dtype = np.float64

    def __init__(
        self,
        reference_size: int = 1000,
        window_size: int = 500,
        step: int | None = None,
        mode: str = "sliding",
        alpha: float = 0.05,
        reference: Any = None,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        super().__init__(reference_size, window_size, step, mode, reference)
        self.alpha = alpha
        self._reset()

    def update_many(self, xs: Any) -> list[DriftTestResult]:  # type: ignore[override]
        if self._keys is None:  # reference or first window still filling (or just restored): the general path
            return super().update_many(xs)
        # once the window is tracked, the whole batch is one kernel call (finite check, pushes and statistics):
        # on the small batches of a stream the general path's per-chunk calls cost more than the work
        arr = as_float_vector(xs)
        flags = arr.flags
        if not (flags.c_contiguous and flags.writeable):
            arr = arr.copy()  # as in _encode_many
        n = arr.shape[0]
        if n == 0:
            return []
        step = self._step
        until = self._until_test
        stats = np.empty(n // step + 1, dtype=np.float64)
        n_tests, self._pos, self._until_test = kernel_module("detectors._ks_kernel").ingest_keyed(
            self._window, self._keys, self._key_counts, self._upad, self._starts, self._grid, self._f1, self._f2,
            self._pos, until, step, arr, stats)
        if n_tests < 0:  # nothing has changed
            raise non_finite_error(arr)
        n0 = self._n_seen
        self._n_seen = n0 + n
        if n_tests == 0:
            self._drift_detected = False
            return []
        alpha = self.alpha
        results = []
        position = n0 + until
        for d in stats[:n_tests].tolist():
            p = self._p_value(d)
            results.append(self._record(d, p, d, p < alpha, alpha, None, position))
            position += step
        last = results[-1]
        self._drift_detected = last.position == self._n_seen and last.drift
        return results

    def _encode_one(self, x: Any) -> np.ndarray:
        return np.array([check_scalar(x)], dtype=np.float64)

    def _encode_many(self, xs: Any) -> np.ndarray:
        arr = as_float_array(xs)
        flags = arr.flags
        if not (flags.c_contiguous and flags.writeable):  # a view of the caller's data: the kernels are
            arr = arr.copy()  # compiled (and warmed up) for plain contiguous arrays only
        return arr

    def _reset_reference(self) -> None:
        size = len(self.reference) if self.reference is not None else int(self.reference_size)
        self._ref = np.zeros(size, dtype=np.float64)
        self._forget_derived()

    def _forget_derived(self) -> None:
        """Drop what is derived from the reference and the window (not checkpointed; rebuilt by the next
        test, when the window is full)."""
        self._keys: np.ndarray | None = None  # rank key of each window slot, or None: not tracked yet
        self._key_counts = np.zeros(0, dtype=np.int64)  # number of window values per key
        self._upad = np.zeros(0, dtype=np.float64)  # [-inf, distinct reference values (sorted), inf, inf]
        self._starts = np.zeros(0, dtype=np.int64)  # bucket g holds uniq[starts[g]:starts[g + 1]]
        self._grid = np.zeros(2, dtype=np.float64)  # (lo, scale) of the buckets
        self._f1 = np.zeros(0, dtype=np.float64)  # F_ref at each key
        self._f2 = np.zeros(0, dtype=np.float64)  # j / window_size
        self._sqrt_en = 0.0
        self._p_values: dict[float, float] = {}

    def _track_window(self, window: np.ndarray) -> None:
        """Rank keys of the (full) window and the per-reference tables of ``ks_statistic_counts``."""
        ref = self._ref
        uniq = np.unique(ref)
        cum = np.zeros(uniq.shape[0] + 1, dtype=np.int64)  # cum[k] = number of reference values <= u_k
        cum[1:] = np.searchsorted(ref, uniq, side="right")
        n_keys = 2 * uniq.shape[0] + 1
        self._upad = np.concatenate(([-np.inf], uniq, [np.inf, np.inf]))
        self._f1 = cum[(np.arange(n_keys) + 1) // 2] / ref.shape[0]
        self._f2 = np.arange(window.shape[0] + 1) / window.shape[0]
        n1 = float(ref.shape[0])
        n2 = float(window.shape[0])
        self._sqrt_en = math.sqrt(n1 * n2 / (n1 + n2))  # as in detectors._stats.ks_2samp_asymp
        # buckets for the key search of push_keyed: about two per distinct value, at most 2**16
        n_buckets = min(2 * uniq.shape[0], _MAX_BUCKETS)
        lo = float(uniq[0])
        span = float(uniq[-1]) - lo
        scale = n_buckets / span if span > 0.0 else 0.0
        if not math.isfinite(scale) or not math.isfinite(span):
            scale = 0.0
        self._grid = np.array([lo, scale])
        self._starts = kernel_module("detectors._ks_kernel").bucket_starts(uniq, lo, scale, n_buckets)
        keys = np.searchsorted(uniq, window, side="left") + np.searchsorted(uniq, window, side="right")
        self._keys = keys.astype(np.int64)
        self._key_counts = np.bincount(self._keys, minlength=n_keys).astype(np.int64)

    def _push(self, chunk: np.ndarray) -> None:
        if self._keys is None:
            super()._push(chunk)
            return
        kernel = kernel_module("detectors._ks_kernel")
        self._pos = kernel.push_keyed(self._window, self._keys, self._key_counts, self._upad, self._starts,
                                      self._grid, self._pos, chunk)

    def _add_reference(self, arr: np.ndarray) -> None:
        self._ref[self._n_ref : self._n_ref + arr.shape[0]] = arr

    def _finish_reference(self) -> None:
        self._ref.sort()

    def _evaluate(self, window: np.ndarray) -> tuple:
        # = detectors._stats.ks_2samp_asymp(self._ref, np.sort(window)), bit for bit (tested)
        if self._keys is None:
            self._track_window(window)
        kernel = kernel_module("detectors._ks_kernel")
        d = float(kernel.ks_statistic_counts(self._key_counts, self._f1, self._f2))
        p = self._p_value(d)
        return d, p, d, p < self.alpha, self.alpha, None

    def _p_value(self, d: float) -> float:
        p = self._p_values.get(d)
        if p is None:
            if len(self._p_values) >= _P_VALUE_MEMO_SIZE:
                self._p_values.clear()
            p = self._p_values[d] = kolmogorov_sf(self._sqrt_en * d)
        return p

    def _get_test_state(self) -> dict[str, Any]:
        # a user-supplied reference is rebuilt from the params; a learned one is saved (filled part only)
        if self.reference is not None:
            return {}
        return {"ref": self._ref[: self._n_ref].copy()}

    def _set_test_state(self, state: dict[str, Any]) -> None:
        if self.reference is None:
            ref = np.asarray(state["ref"], dtype=np.float64)
            self._ref = np.zeros(int(self.reference_size), dtype=np.float64)
            self._ref[: ref.shape[0]] = ref
        self._forget_derived()
