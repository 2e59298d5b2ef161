"""Chi-squared test of homogeneity between reference and current category counts (categorical drift).

For the 2 x k table whose rows are the reference counts and the current-window counts over the categories
seen so far (columns empty in both rows dropped), Pearson's statistic is

    X^2 = sum_ij (O_ij - E_ij)^2 / E_ij,   E_ij = row_i * col_j / N,

with ``k - 1`` degrees of freedom and p-value ``Q((k-1)/2, X^2/2)`` (regularized upper incomplete gamma,
:func:`detectors._stats.gammaincc`); no Yates correction, as ``scipy.stats.chi2_contingency(correction=False)``.
Drift is flagged when ``p_value < alpha``. ``distance`` is Cramer's V, ``sqrt(X^2 / N)`` for two rows.

Categories seen only in the current window (new labels, new predicted classes) get their own column with a
zero reference count, which is exactly the kind of change the test should catch. At most ``max_categories``
categories are tracked; later new ones share the ``"__other__"`` bucket (see
:class:`detectors.window.CategoricalWindowedTest`), so memory is ``O(window_size + max_categories)``.
As with every chi-squared test, the p-value is an approximation that wants expected counts of about 5 or more.

References: K. Pearson, "On the criterion that a given system of deviations...", Phil. Mag. 50, 1900;
Rabanser et al., "Failing loudly", NeurIPS 2019 (chi-squared for label / prediction shift).

>>> from detectors.chi2_test import ChiSquaredDrift
>>> det = ChiSquaredDrift(reference=["a"] * 60 + ["b"] * 40, window_size=50, mode="tumbling", alpha=0.01)
>>> r = det.update_many(["a"] * 30 + ["b"] * 20)[0]
>>> r.statistic, r.dof, r.p_value, r.drift
(0.0, 1, 1.0, False)
>>> r = det.update_many(["a"] * 10 + ["b"] * 20 + ["c"] * 20)[0]     # "c" never seen in the reference
>>> r.dof, r.drift, r.position
(2, True, 100)
>>> det.categories
['a', 'b', 'c']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._stats import chi2_sf, chi2_table_counts
from detectors.window import CategoricalWindowedTest

#: p-values remembered per detector (one per distinct (statistic, dof); cleared when full)
_P_VALUE_MEMO_SIZE = 4096


class ChiSquaredDrift(CategoricalWindowedTest):
    """Windowed chi-squared test of homogeneity on a categorical stream.

    Parameters
    ----------
    reference_size, window_size, step, mode
        As in :class:`detectors.ks_test.KSDrift`.
    alpha
        Significance level: drift iff ``p_value < alpha``.
    max_categories
        Named categories tracked; the rest are pooled into ``"__other__"``.
    reference
        Optional sequence of reference categories (reduced to counts).
    """

    _params = ("reference_size", "window_size", "step", "mode", "alpha", "max_categories", "reference")
    _test_name = "chi2"
    event_name = "chi2"

    def __init__(
        self,
        reference_size: int = 1000,
        window_size: int = 500,
        step: int | None = None,
        mode: str = "sliding",
        alpha: float = 0.05,
        max_categories: int = 100,
        reference: Any = None,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        super().__init__(reference_size, window_size, step, mode, max_categories, reference)
        self.alpha = alpha
        self._reset()

    def _reset_reference(self) -> None:
        super()._reset_reference()
        #: chi2_sf per (statistic, dof) seen (not checkpointed): with few categories the window's counts, and so
        #: the statistic, take few values
        self._p_values: dict[tuple[float, int], float] = {}

    def _evaluate(self, window: np.ndarray) -> tuple:
        # = chi2_homogeneity(self._ref_counts, np.bincount(window, ...)), bit for bit (tested)
        stat, dof, cramers_v = chi2_table_counts(self._ref_counts, self._current_counts(window))
        p = self._p_values.get((stat, dof))
        if p is None:
            if len(self._p_values) >= _P_VALUE_MEMO_SIZE:
                self._p_values.clear()
            p = self._p_values[stat, dof] = chi2_sf(stat, dof)
        return stat, p, cramers_v, p < self.alpha, self.alpha, dof
