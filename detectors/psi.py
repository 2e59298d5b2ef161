"""Population Stability Index (PSI) drift test over reference-quantile bins and a sliding/tumbling window.

The reference (the first ``reference_size`` values, or ``reference``) fixes ``n_bins - 1`` interior bin edges
at its quantiles ``1/n_bins, ..., (n_bins-1)/n_bins`` (``np.quantile``, linear interpolation). Equal edges
(ties, constant features) are merged, so there may be fewer bins; a constant reference ``c`` gives the two
bins ``(-inf, c)`` and ``[c, inf)``. Bins are left-closed: ``[e_{i-1}, e_i)`` with ``e_{-1} = -inf`` and
``e_{k} = +inf``, so every current value falls in some bin.

With reference proportions ``p_i`` and current-window proportions ``q_i``, each raised to at least
``epsilon`` so that an empty bin does not give an infinity,

    PSI = sum_i (q_i - p_i) * ln(q_i / p_i)

(a symmetrised Kullback-Leibler divergence). Conventional reading: below 0.1 no significant change,
0.1 to 0.25 moderate shift, 0.25 and above significant shift; drift is flagged when ``PSI >= threshold``.

After the reference is complete only the edges and bin counts are kept, and the window stores bin indices,
so memory is ``O(window_size + n_bins)`` (plus ``reference_size`` floats while the reference fills).

References: N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006 (PSI and its 0.1 / 0.25 rule of thumb);
B. Yurdakul, "Statistical properties of population stability index", PhD thesis, Western Michigan U., 2018.

>>> import numpy as np
>>> from detectors.psi import PSIDrift
>>> rng = np.random.default_rng(3)
>>> det = PSIDrift(reference_size=1000, window_size=500, mode="tumbling")
>>> [(r.position, r.drift) for r in det.update_many(rng.normal(0.0, 1.0, 1500))]
[(1500, False)]
>>> [(r.position, r.drift) for r in det.update_many(rng.normal(1.0, 1.0, 500))]
[(2000, True)]
>>> len(det.bin_edges)
9
>>> const = PSIDrift(reference=[2.0] * 50, window_size=10, mode="tumbling")
>>> const.bin_edges.tolist()
[2.0]
>>> const.update_many([2.0] * 10)[0].statistic
0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._stats import psi_of_proportions, psi_proportions
from detectors.base import as_float_array, check_scalar
from detectors.window import WindowedDriftTest


class PSIDrift(WindowedDriftTest):
    """Windowed Population Stability Index on a numeric stream.

    Parameters
    ----------
    reference_size, window_size, step, mode, reference
        As in :class:`detectors.ks_test.KSDrift`; a given ``reference`` is reduced to bin edges and counts.
    n_bins
        Number of quantile bins before merging equal edges (>= 2).
    threshold
        Drift iff ``PSI >= threshold`` (0.25 = "significant shift"; 0.1 is the usual warning level).
    epsilon
        Floor applied to bin proportions so that empty bins give a finite PSI.
    """

    _params = ("reference_size", "window_size", "step", "mode", "n_bins", "threshold", "epsilon", "reference")
    _test_name = "psi"
    event_name = "PSI"
    _window_dtype = np.int64

    def __init__(
        self,
        reference_size: int = 1000,
        window_size: int = 500,
        step: int | None = None,
        mode: str = "sliding",
        n_bins: int = 10,
        threshold: float = 0.25,
        epsilon: float = 1e-4,
        reference: Any = None,
    ) -> None:
        if int(n_bins) != n_bins or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        if not threshold > 0.0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
        super().__init__(reference_size, window_size, step, mode, reference)
        self.n_bins = n_bins
        self.threshold = threshold
        self.epsilon = epsilon
        self._reset()

    @property
    def bin_edges(self) -> np.ndarray | None:
        """Interior bin edges (``None`` until the reference is complete)."""
        return None if self._edges is None else self._edges.copy()

    def _encode_one(self, x: Any) -> np.ndarray:
        return np.array([check_scalar(x)], dtype=np.float64)

    def _encode_many(self, xs: Any) -> np.ndarray:
        return as_float_array(xs)

    def _reset_reference(self) -> None:
        size = len(self.reference) if self.reference is not None else int(self.reference_size)
        self._ref_buf = np.zeros(size, dtype=np.float64)
        self._edges: np.ndarray | None = None
        self._ref_counts = np.zeros(0, dtype=np.int64)
        self._ref_props: np.ndarray | None = None  # psi_proportions(ref_counts), once they are final

    def _add_reference(self, arr: np.ndarray) -> None:
        self._ref_buf[self._n_ref : self._n_ref + arr.shape[0]] = arr

    def _finish_reference(self) -> None:
        ref = self._ref_buf[: self._n_ref]
        qs = np.arange(1, int(self.n_bins)) / int(self.n_bins)
        self._edges = np.unique(np.quantile(ref, qs))
        bins = np.searchsorted(self._edges, ref, side="right")
        self._ref_counts = np.bincount(bins, minlength=self._edges.shape[0] + 1).astype(np.int64)
        self._ref_buf = np.zeros(0, dtype=np.float64)  # the raw reference is no longer needed

    def _to_window(self, arr: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._edges, arr, side="right").astype(np.int64)

    def _evaluate(self, window: np.ndarray) -> tuple:
        # = psi(self._ref_counts, np.bincount(window, ...), epsilon), bit for bit (tested)
        if self._ref_props is None:
            self._ref_props = psi_proportions(self._ref_counts, float(self.epsilon))
        cur = self._window_counts(window, self._ref_counts.shape[0])
        value = psi_of_proportions(self._ref_props, psi_proportions(cur, float(self.epsilon)))
        return value, None, value, value >= self.threshold, self.threshold, None

    def _get_test_state(self) -> dict[str, Any]:
        return {
            "ref_buf": self._ref_buf[: 0 if self._ref_ready else self._n_ref].copy(),
            "edges": None if self._edges is None else self._edges.copy(),
            "ref_counts": self._ref_counts.copy(),
        }

    def _set_test_state(self, state: dict[str, Any]) -> None:
        if not self._ref_ready:
            buf = np.asarray(state["ref_buf"], dtype=np.float64)
            self._ref_buf = np.zeros(int(self.reference_size), dtype=np.float64)
            self._ref_buf[: buf.shape[0]] = buf
        else:
            self._ref_buf = np.zeros(0, dtype=np.float64)
        self._edges = None if state["edges"] is None else np.asarray(state["edges"], dtype=np.float64)
        self._ref_counts = np.asarray(state["ref_counts"], dtype=np.int64).copy()
        self._ref_props = None
