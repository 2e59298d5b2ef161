"""Pure drift-detection algorithms (numpy only; no I/O, no clocks, no global random state).

Concept-drift detectors with River's API (``update``, ``drift_detected``, ``warning_detected``) plus a fast
``update_many`` and exact ``to_state``/``from_state``; windowed two-sample tests for data drift.
:mod:`detectors.registry` is the one table of both families; the names here come from it.

Importing this package imports numpy only: the detectors' numba kernels are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from detectors.base import BinaryDriftDetector, DriftDetector, InvalidInput
from detectors.registry import (ALIASES, BINARY, CATEGORICAL_TESTS, CLASSES, DATA_DRIFT_TESTS, DETECTORS,
                                NUMERIC_TESTS, REAL_VALUED, TESTS, detector_class, detector_from_state,
                                drift_test_class, is_binary, is_categorical_test, make_detector)


def warm_up(names: Any = None) -> None:
    """Load the compiled kernels of these detectors (default: all) now rather than on the first
    ``update_many``: numba loads its on-disk cache, or compiles, once per process and signature, which
    takes up to seconds. A service calls this at start-up so that its first batch is not late."""
    import numpy as np

    xs = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0] * 8)
    for name in names if names is not None else DETECTORS:
        det = make_detector(name)
        if name in BINARY:
            det.update_many(xs, warnings=True)
        det.update_many(xs)
    from detectors._stats import chi2_sf, ks_2samp_statistic

    ks_2samp_statistic(np.sort(xs), np.sort(xs[::2]))
    chi2_sf(1.0, 1), chi2_sf(10.0, 1)  # both loops (series, continued fraction)
    if names is None:  # the windowed data-drift tests: two tests each, so that every kernel runs
        labels = ["a" if x else "b" for x in xs[:24]]
        for test in DATA_DRIFT_TESTS:
            test(reference_size=8, window_size=8, step=4).update_many(labels if is_categorical_test(test) else xs[:24])


__all__ = ["ALIASES", "BINARY", "CATEGORICAL_TESTS", "CLASSES", "DATA_DRIFT_TESTS", "DETECTORS", "NUMERIC_TESTS",
           "REAL_VALUED", "TESTS", "BinaryDriftDetector", "DriftDetector", "InvalidInput", "detector_class",
           "detector_from_state", "drift_test_class", "is_binary", "is_categorical_test", "make_detector", "warm_up",
           *CLASSES]


def __getattr__(name: str) -> Any:
    if name in CLASSES:  # detectors.ADWIN, detectors.KSDrift, ...
        return CLASSES[name]
    raise AttributeError(name)
