"""The one table of detectors: every other list of names (config choices, binary vs real-valued, numeric vs
categorical tests, the names in events) is derived from it, so they cannot drift apart.

Two families:

* **concept-drift detectors** (River's API) on a model's error stream. A detector is *binary* (takes 0/1
  errors and also reports warnings) iff its class derives from
  :class:`~detectors.base.BinaryDriftDetector`; nothing else says so.
* **data-drift tests**: windowed two-sample tests on features, predictions and labels. A test is
  *categorical* iff its class derives from :class:`~detectors.window.CategoricalWindowedTest`, else numeric.
  Config chooses one by its ``_test_name`` (``"ks"``); events name it by its ``event_name`` (``"KS"``).

To add a detector or a test: write its module (one class, see :mod:`detectors.base` or
:mod:`detectors.window`) and add the class to :data:`CONCEPT_DETECTORS` or :data:`DATA_DRIFT_TESTS`.

The detector modules import numpy only (their numba kernels load on first use), so importing this is cheap.

>>> from detectors.registry import ALIASES, BINARY, CATEGORICAL_TESTS, NUMERIC_TESTS, REAL_VALUED
>>> sorted(BINARY - set(ALIASES))
['DDM', 'EDDM', 'FHDDM', 'HDDMA', 'HDDMW']
>>> REAL_VALUED, NUMERIC_TESTS, CATEGORICAL_TESTS
(('ADWIN', 'PageHinkley', 'KSWIN'), ('ks', 'psi'), ('chi2', 'js'))
"""

from __future__ import annotations

from typing import Any

from detectors.adwin import ADWIN
from detectors.base import BinaryDriftDetector, DriftDetector
from detectors.chi2_test import ChiSquaredDrift
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.fhddm import FHDDM
from detectors.hddm_a import HDDMA
from detectors.hddm_w import HDDMW
from detectors.js_distance import JSDrift
from detectors.ks_test import KSDrift
from detectors.kswin import KSWIN
from detectors.page_hinkley import PageHinkley
from detectors.psi import PSIDrift
from detectors.window import CategoricalWindowedTest, WindowedDriftTest

#: concept-drift detectors, in the order they are listed to users
CONCEPT_DETECTORS: tuple[type[DriftDetector], ...] = (ADWIN, PageHinkley, KSWIN, DDM, EDDM, HDDMA, HDDMW, FHDDM)

#: windowed data-drift tests, in the order they are listed to users
DATA_DRIFT_TESTS: tuple[type[WindowedDriftTest], ...] = (KSDrift, PSIDrift, ChiSquaredDrift, JSDrift)

#: earlier driftstream names of concept detectors, still accepted in configs and states
ALIASES: dict[str, str] = {"HDDM_A": "HDDMA", "HDDM_W": "HDDMW"}


def is_binary(cls: type) -> bool:
    """Whether detectors of ``cls`` take 0/1 values (and report warnings)."""
    return issubclass(cls, BinaryDriftDetector)


def is_categorical_test(cls: type) -> bool:
    """Whether the data-drift test ``cls`` compares category counts (else numeric values)."""
    return issubclass(cls, CategoricalWindowedTest)


# -- derived tables -----------------------------------------------------------------------------------
#: concept detector class name -> class
DETECTORS: dict[str, type[DriftDetector]] = {cls.__name__: cls for cls in CONCEPT_DETECTORS}

#: every name a config may use for a concept detector: class names, then aliases
DETECTOR_NAMES: tuple[str, ...] = (*DETECTORS, *ALIASES)

#: names (aliases included) of the detectors that take 0/1 values and also report warnings
BINARY: frozenset[str] = frozenset(n for n in DETECTOR_NAMES if is_binary(DETECTORS[ALIASES.get(n, n)]))

#: detectors of real values (e.g. a regression model's absolute errors, a feature's values)
REAL_VALUED: tuple[str, ...] = tuple(n for n, cls in DETECTORS.items() if not is_binary(cls))

#: real-valued detectors that are deterministic with their default parameters (no ``seed``): the ones a
#: setting without parameters (``data_drift.mean_detector``) can name and still replay identically
DETERMINISTIC_REAL_VALUED: tuple[str, ...] = tuple(n for n in REAL_VALUED if "seed" not in DETECTORS[n]._params)

#: data-drift test by its config name ("ks", "psi", "chi2", "js")
TESTS: dict[str, type[WindowedDriftTest]] = {cls._test_name: cls for cls in DATA_DRIFT_TESTS}

#: config names of the numeric tests and of the categorical tests
NUMERIC_TESTS: tuple[str, ...] = tuple(n for n, cls in TESTS.items() if not is_categorical_test(cls))
CATEGORICAL_TESTS: tuple[str, ...] = tuple(n for n, cls in TESTS.items() if is_categorical_test(cls))

#: every class of both families by class name (what ``to_state()["type"]`` holds), aliases included
CLASSES: dict[str, type[DriftDetector]] = {
    **DETECTORS,
    **{alias: DETECTORS[name] for alias, name in ALIASES.items()},
    **{cls.__name__: cls for cls in DATA_DRIFT_TESTS},
}


def detector_class(name: str) -> type[DriftDetector]:
    """The class of a concept detector or data-drift test by its class name (or an alias)."""
    try:
        return CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None


def drift_test_class(name: str) -> type[WindowedDriftTest]:
    """The data-drift test chosen in config by ``name`` (``"ks"``, ``"psi"``, ``"chi2"``, ``"js"``)."""
    try:
        return TESTS[name]
    except KeyError:
        raise ValueError(f"unknown data-drift test {name!r}; known: {', '.join(TESTS)}") from None


def make_detector(name: str, **params: Any) -> DriftDetector:
    """Build a detector by its class name, e.g. ``make_detector("ADWIN", delta=0.002)``."""
    return detector_class(name)(**params)


def detector_from_state(state: dict[str, Any]) -> DriftDetector:
    """Rebuild any detector or data-drift test from ``to_state()`` output."""
    return detector_class(state["type"]).from_state(state)
