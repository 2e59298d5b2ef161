"""Pure drift-detection algorithms (numpy only; no I/O, no clocks, no global random state).

Concept-drift detectors with River's API (``update``, ``drift_detected``, ``warning_detected``) plus a fast
``update_many`` and exact ``to_state``/``from_state``; windowed two-sample tests for data drift.

Importing this package imports numpy only: the detector modules are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from detectors.base import BinaryDriftDetector, DriftDetector, InvalidInput

#: detector class name -> module that defines it
DETECTORS: dict[str, str] = {
    "ADWIN": "detectors.adwin",
    "PageHinkley": "detectors.page_hinkley",
    "KSWIN": "detectors.kswin",
    "DDM": "detectors.ddm",
    "EDDM": "detectors.eddm",
    "HDDMA": "detectors.hddm_a",
    "HDDMW": "detectors.hddm_w",
    "FHDDM": "detectors.fhddm",
}

#: detectors that take 0/1 values and also report warnings
BINARY = frozenset({"DDM", "EDDM", "HDDMA", "HDDMW", "FHDDM", "HDDM_A", "HDDM_W"})

#: earlier driftstream names, still accepted in configs and states
ALIASES: dict[str, str] = {"HDDM_A": "HDDMA", "HDDM_W": "HDDMW"}


def detector_class(name: str) -> type[DriftDetector]:
    name = ALIASES.get(name, name)
    try:
        module = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None
    return getattr(importlib.import_module(module), name)


def make_detector(name: str, **params: Any) -> DriftDetector:
    """Build a detector by its class name, e.g. ``make_detector("ADWIN", delta=0.002)``."""
    return detector_class(name)(**params)


def detector_from_state(state: dict[str, Any]) -> DriftDetector:
    """Rebuild any detector from ``to_state()`` output."""
    return detector_class(state["type"]).from_state(state)


def warm_up(names: Any = None) -> None:
    """Load the compiled kernels of these detectors (default: all) now rather than on the first
    ``update_many``: numba loads its on-disk cache, or compiles, once per process and signature, which
    takes up to seconds. A service calls this at start-up so that its first batch is not late."""
    import numpy as np

    xs = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0] * 8)
    for name in names if names is not None else DETECTORS:
        det = make_detector(name)
        if ALIASES.get(name, name) in BINARY:
            det.update_many(xs, warnings=True)
        det.update_many(xs)
    from detectors._stats import chi2_sf, ks_2samp_statistic

    ks_2samp_statistic(np.sort(xs), np.sort(xs[::2]))
    chi2_sf(1.0, 1), chi2_sf(10.0, 1)  # both loops (series, continued fraction)
    if names is None:  # the windowed data-drift tests: two tests each, so that every kernel runs
        from detectors.chi2_test import ChiSquaredDrift
        from detectors.js_distance import JSDrift
        from detectors.ks_test import KSDrift
        from detectors.psi import PSIDrift

        for numeric in (KSDrift, PSIDrift):
            numeric(reference_size=8, window_size=8, step=4).update_many(xs[:24])
        labels = ["a" if x else "b" for x in xs[:24]]
        for categorical in (ChiSquaredDrift, JSDrift):
            categorical(reference_size=8, window_size=8, step=4).update_many(labels)


def __getattr__(name: str) -> Any:
    if name in DETECTORS:
        return detector_class(name)
    raise AttributeError(name)


__all__ = ["BINARY", "DETECTORS", "BinaryDriftDetector", "DriftDetector", "InvalidInput",
           "detector_class", "detector_from_state", "make_detector", "warm_up", *DETECTORS]
