"""Two-sample Kolmogorov-Smirnov drift test over a reference sample and a sliding/tumbling window.

The statistic is ``D = sup_x |F_ref(x) - F_cur(x)|`` between the empirical CDFs of the reference sample
(size ``n``) and the current window (size ``m``); the two-sided p-value is the asymptotic one,
``Q_KS(sqrt(n m / (n + m)) * D)`` with ``Q_KS`` the survival function of Kolmogorov's distribution
(:func:`detectors._stats.kolmogorov_sf`). Drift is flagged when ``p_value < alpha``.

The reference (the first ``reference_size`` values, or ``reference``) is kept as a sorted sample, the window as
a ring buffer of raw values, so memory is ``O(reference_size + window_size)`` and a test costs
``O((n + m) log(n + m))``. ``update_many`` writes whole chunks into the ring buffer and only runs the tests the
schedule asks for (see :mod:`detectors.window`).

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

from typing import Any

import numpy as np

from detectors._stats import ks_2samp_asymp
from detectors.base import as_float_array, check_scalar
from detectors.window import WindowedDriftTest


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

    def _encode_one(self, x: Any) -> np.ndarray:
        return np.array([check_scalar(x)], dtype=np.float64)

    def _encode_many(self, xs: Any) -> np.ndarray:
        return as_float_array(xs)

    def _reset_reference(self) -> None:
        size = len(self.reference) if self.reference is not None else int(self.reference_size)
        self._ref = np.zeros(size, dtype=np.float64)

    def _add_reference(self, arr: np.ndarray) -> None:
        self._ref[self._n_ref : self._n_ref + arr.shape[0]] = arr

    def _finish_reference(self) -> None:
        self._ref.sort()

    def _evaluate(self, window: np.ndarray) -> tuple:
        d, p = ks_2samp_asymp(self._ref, np.sort(window))
        return d, p, d, p < self.alpha, self.alpha, None

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
