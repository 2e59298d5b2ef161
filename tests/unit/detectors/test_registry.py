"""The detectors' registry: complete, and what it derives (binary, numeric/categorical, names) agrees with
what the classes really do; no second table of names left in stream/ or benchmarks/."""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib

import numpy as np
import orjson
import pytest
from river import base as river_base
from river import drift as river_drift

import detectors
from detectors import registry
from detectors.base import DriftDetector, InvalidInput

REPO = pathlib.Path(__file__).parents[3]


def _detector_classes_defined_in_package() -> set[type]:
    """Every detector class defined in a public module of detectors/, less the bases others derive from."""
    found = set()
    for path in sorted((REPO / "detectors").glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = importlib.import_module(f"detectors.{path.stem}")
        found |= {obj for obj in vars(module).values()
                  if inspect.isclass(obj) and issubclass(obj, DriftDetector) and obj.__module__ == module.__name__}
    return {cls for cls in found if not any(other is not cls and issubclass(other, cls) for other in found)}


def test_every_detector_class_in_the_package_is_registered_once():
    registered = [*registry.CONCEPT_DETECTORS, *registry.DATA_DRIFT_TESTS]
    assert len(registered) == len(set(registered))
    assert set(registered) == _detector_classes_defined_in_package()


def test_binary_is_what_river_says_of_the_class_of_the_same_name():
    for name, cls in registry.DETECTORS.items():
        river_cls = getattr(river_drift, name, None) or getattr(river_drift.binary, name)
        assert (name in registry.BINARY) == issubclass(river_cls, river_base.BinaryDriftDetector), name
        assert registry.is_binary(cls) == (name in registry.BINARY)
    assert set(registry.REAL_VALUED) == set(registry.DETECTORS) - registry.BINARY


@pytest.mark.parametrize("name", registry.DETECTOR_NAMES)
def test_binary_detectors_refuse_values_outside_0_1_and_report_warnings(name):
    det = registry.make_detector(name)
    if name in registry.BINARY:
        with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
            det.update_many(np.array([0.0, 2.0]))
        drifts, warnings = det.update_many(np.zeros(10), warnings=True)
        assert hasattr(det, "warning_detected") and len(drifts) == len(warnings) == 0
    else:
        det.update_many(np.array([0.0, 2.0, -3.5]))
        assert not hasattr(det, "warning_detected")


def test_aliases_are_the_module_level_aliases_and_count_as_binary():
    from detectors import hddm_a, hddm_w

    assert registry.detector_class("HDDM_A") is hddm_a.HDDM_A is hddm_a.HDDMA
    assert registry.detector_class("HDDM_W") is hddm_w.HDDM_W is hddm_w.HDDMW
    assert {"HDDM_A", "HDDM_W"} <= registry.BINARY
    assert detectors.HDDM_A is hddm_a.HDDMA and detectors.KSDrift is registry.TESTS["ks"]


@pytest.mark.parametrize("name", registry.TESTS)
def test_numeric_and_categorical_tests_take_what_the_registry_says(name):
    cls = registry.drift_test_class(name)
    assert cls._test_name == name
    if name in registry.CATEGORICAL_TESTS:
        assert name not in registry.NUMERIC_TESTS
        results = cls(reference_size=4, window_size=4, step=4).update_many(["a", "b"] * 4)
    else:
        assert name in registry.NUMERIC_TESTS
        with pytest.raises((InvalidInput, ValueError)):
            cls(reference_size=4, window_size=4, step=4).update_many(["a", "b"])
        results = cls(reference_size=4, window_size=4, step=4).update_many([0.0, 1.0] * 4)
    assert [r.test for r in results] == [name]


def test_event_names_and_config_names_are_unique_and_set():
    events = [cls.event_name for cls in registry.DATA_DRIFT_TESTS]
    assert all(events) and len(set(events)) == len(events)
    assert set(registry.TESTS) == {cls._test_name for cls in registry.DATA_DRIFT_TESTS}
    assert all(registry.TESTS)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown detector 'Nope'"):
        registry.detector_class("Nope")
    with pytest.raises(ValueError, match="unknown data-drift test 'KS'"):
        registry.drift_test_class("KS")  # the event name, not the config name


def _plain(state: dict) -> bytes:
    return orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY)


def test_detector_from_state_rebuilds_both_families():
    for name in registry.DETECTORS:
        det = registry.make_detector(name)
        det.update_many(np.array([0.0, 1.0, 1.0, 0.0]))
        again = registry.detector_from_state(det.to_state())
        assert type(again) is type(det) and _plain(again.to_state()) == _plain(det.to_state())
    for cls in registry.DATA_DRIFT_TESTS:
        test = cls(reference_size=4, window_size=4, step=2)
        test.update_many(["a", "b", "a"] if registry.is_categorical_test(cls) else [0.5, 1.0, 2.0])
        again = registry.detector_from_state(test.to_state())
        assert type(again) is cls
        assert _plain(again.to_state()) == _plain(test.to_state())


def test_deterministic_real_valued_are_those_without_a_seed():
    for name in registry.REAL_VALUED:
        takes_seed = "seed" in inspect.signature(registry.DETECTORS[name]).parameters
        assert (name in registry.DETERMINISTIC_REAL_VALUED) == (not takes_seed), name
    assert "KSWIN" not in registry.DETERMINISTIC_REAL_VALUED  # random subsamples: needs a seed to replay


def test_config_choices_are_the_registry_names():
    import typing

    from stream import config

    def choices(alias):
        if typing.get_origin(alias) is typing.Annotated:
            alias = typing.get_args(alias)[0]
        return typing.get_args(alias)

    assert choices(config.DetectorName) == registry.DETECTOR_NAMES
    assert choices(config.OnlineDetectorName) == ("auto", *registry.DETECTOR_NAMES)
    assert choices(config.MeanDetectorName) == ("", *registry.DETERMINISTIC_REAL_VALUED)
    assert choices(config.NumericTestName) == registry.NUMERIC_TESTS
    assert choices(config.CategoricalTestName) == registry.CATEGORICAL_TESTS


def _registry_names() -> set[str]:
    return {*registry.DETECTOR_NAMES, *registry.TESTS, *(c.event_name for c in registry.DATA_DRIFT_TESTS),
            *(c.__name__ for c in registry.DATA_DRIFT_TESTS)}


def _name_lists(source: str, where: str, names: set[str]) -> list[str]:
    """Set, list and tuple literals (and dict literals' keys) in ``source`` holding two or more registry names."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        hits = {e.value for e in items if isinstance(e, ast.Constant) and e.value in names}
        if len(hits) >= 2:
            found.append(f"{where}:{node.lineno}: {sorted(hits)}")
    return found


#: tables that are about something else than which detectors exist
_ALLOWED = {
    "stream/tools/demo.py",  # plot markers for some detectors
}


def test_no_second_table_of_detector_names_in_stream_or_benchmarks():
    names = _registry_names()
    found = []
    for f in [*sorted((REPO / "stream").rglob("*.py")), *sorted((REPO / "benchmarks").rglob("*.py"))]:
        where = f.relative_to(REPO).as_posix()
        if where not in _ALLOWED:
            found += _name_lists(f.read_text(), where, names)
    assert not found, found


def test_the_name_scan_sees_the_tables_the_registry_replaced():
    source = ('BINARY = {"DDM", "EDDM", "HDDMA"}\nNAMES = {"KSDrift": "KS", "PSIDrift": "PSI"}\n'
              'def f(x):\n    return x in ("ks", "psi")\nONE = ("ks",)\nOTHER = {"a": "ADWIN", "b": "DDM"}\n')
    assert [hit.split(":")[1] for hit in _name_lists(source, "probe", _registry_names())] == ["1", "2", "4"]


@pytest.mark.parametrize("name", registry.TESTS)
def test_the_data_drift_monitor_builds_each_registered_test_with_its_settings(name):
    """A p-value test takes data_drift.alpha, a distance test its data_drift.<name>_threshold: a new test
    without either setting fails here, not in the service."""
    from stream.config import DataDriftConfig
    from stream.datadrift import DataDriftMonitor

    numeric = name in registry.NUMERIC_TESTS
    cfg = DataDriftConfig(alpha=0.0123, psi_threshold=0.3456, js_threshold=0.0789, reference_size=7,
                          **({"numeric_test": name} if numeric else {"categorical_test": name}))
    test = DataDriftMonitor("m", "classification", cfg)._make_test(numeric)
    assert type(test) is registry.drift_test_class(name)
    assert (test.reference_size, test.window_size, test.step) == (7, cfg.window_size, cfg.step)
    if "alpha" in type(test)._params:
        assert test.alpha == cfg.alpha
    else:
        assert test.threshold == getattr(cfg, f"{name}_threshold")
