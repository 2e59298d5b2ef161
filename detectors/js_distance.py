"""Jensen-Shannon distance between reference and current category distributions (categorical drift).

With reference proportions ``p``, current-window proportions ``q`` and ``m = (p + q) / 2``,

    JSD(p, q) = (KL(p || m) + KL(q || m)) / 2        (logarithms base 2, so 0 <= JSD <= 1)

and the Jensen-Shannon *distance* is ``sqrt(JSD)``, a metric in [0, 1] (0: same distribution, 1: disjoint
support), as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. It is finite when a category appears in
only one of the two samples, so new and vanished categories need no smoothing. Drift is flagged when
``distance >= threshold`` (0.1 is a common monitoring default). The distance has no p-value and is biased
upwards in small samples: with no drift over ``k`` categories it is about
``sqrt((k - 1) * (1/n_ref + 1/n_cur) / (8 ln 2))`` (0.04 for k=4, n_ref=1000, n_cur=500, but 0.07 for
n_ref=n_cur=200), so choose the threshold with the window sizes in mind.

Categories are counted as in :class:`detectors.window.CategoricalWindowedTest`: at most ``max_categories``
named ones, the rest in ``"__other__"``; memory ``O(window_size + max_categories)``.

References: J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37, 1991;
D. Endres & J. Schindelin, "A new metric for probability distributions", IEEE Trans. Inf. Theory 49, 2003.

>>> from detectors.js_distance import JSDrift
>>> det = JSDrift(reference=["cat", "dog"] * 50, window_size=20, mode="tumbling", threshold=0.1)
>>> r = det.update_many(["cat", "dog"] * 10)[0]
>>> r.statistic, r.drift
(0.0, False)
>>> r = det.update_many(["bird"] * 20)[0]                  # disjoint support
>>> r.statistic, r.distance, r.drift
(1.0, 1.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._stats import js_distance_of_proportions, proportions
from detectors.window import CategoricalWindowedTest


class JSDrift(CategoricalWindowedTest):
    """Windowed Jensen-Shannon distance (base 2) on a categorical stream.

    Parameters
    ----------
    reference_size, window_size, step, mode
        As in :class:`detectors.ks_test.KSDrift`.
    threshold
        Drift iff ``distance >= threshold``.
    max_categories
        Named categories tracked; the rest are pooled into ``"__other__"``.
    reference
        Optional sequence of reference categories (reduced to counts).
    """

    _params = ("reference_size", "window_size", "step", "mode", "threshold", "max_categories", "reference")
    _test_name = "js"
    event_name = "JS"

    def __init__(
        self,
        reference_size: int = 1000,
        window_size: int = 500,
        step: int | None = None,
        mode: str = "sliding",
        threshold: float = 0.1,
        max_categories: int = 100,
        reference: Any = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        super().__init__(reference_size, window_size, step, mode, max_categories, reference)
        self.threshold = threshold
        self._reset()

    def _reset_reference(self) -> None:
        super()._reset_reference()
        self._ref_props: np.ndarray | None = None  # proportions(ref_counts), once they are final

    def _set_test_state(self, state: dict[str, Any]) -> None:
        super()._set_test_state(state)
        self._ref_props = None

    def _evaluate(self, window: np.ndarray) -> tuple:
        # = js_distance(self._ref_counts, np.bincount(window, ...)), bit for bit (tested)
        if self._ref_props is None:
            self._ref_props = proportions(self._ref_counts)
        d = js_distance_of_proportions(self._ref_props, proportions(self._current_counts(window)))
        return d, None, d, d >= self.threshold, self.threshold, None
