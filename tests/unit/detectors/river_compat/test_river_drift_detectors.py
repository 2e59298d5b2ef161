"""The scenarios of River's own detector tests (``river/drift/test_drift_detectors.py`` in the River
repository: three fixed-seed streams, the detectors at the settings tested there, River's element-by-element
loop, and KSWIN's argument checks), run against our classes.

That file is not shipped in River's wheel, and the alarm positions it pins are those of the River version it
was written for; here they are the positions River 0.26.1 (the version this project pins) produces. Each
test asserts both that installed River still gives them (so a River upgrade that moves them is seen as
such) and that ours give the same.
"""

from __future__ import annotations

import numpy as np
import pytest

from ours_as_river import drift as ours


def _streams() -> dict[str, np.ndarray]:
    # River seeds the global generator (np.random.seed(12345)); a RandomState with the same seed draws the
    # same numbers without touching global state
    r = np.random.RandomState(12345)
    one = np.concatenate((r.randint(2, size=1000), r.randint(8, size=1000)))
    r = np.random.RandomState(12345)
    two = np.concatenate([[r.binomial(1, 0.2) for _ in range(1000)],
                          [r.binomial(1, 0.8) for _ in range(1000)]]).astype(int)
    r = np.random.RandomState(12345)
    three = np.concatenate((r.normal(0.0, 0.1, 500) > 0, r.normal(0.25, 0.1, 500) > 0,
                            r.normal(0.0, 0.1, 500) > 0, r.normal(0.25, 0.1, 500) > 0)).astype(int)
    return {"data_stream_1": one, "data_stream_2": two, "data_stream_3": three}


STREAMS = _streams()


def perform_test(drift_detector, data_stream) -> list[int]:
    """River's loop: ``update`` as a statement, then read ``drift_detected``."""
    detected_indices = []
    for i, val in enumerate(data_stream):
        drift_detector.update(val)
        if drift_detector.drift_detected:
            detected_indices.append(i)
    return detected_indices


# (detector path in River's namespace, constructor arguments, stream, alarm positions of River 0.26.1)
CASES = [
    ("ADWIN", {}, "data_stream_1", [1023]),
    ("binary.DDM", {}, "data_stream_2", [1049]),
    ("binary.EDDM", {}, "data_stream_2", [663, 828, 1007, 1078]),
    ("binary.HDDMA", {}, "data_stream_2", [1047]),
    ("binary.HDDMA", {"two_sided_test": True}, "data_stream_3", [531, 1015, 1545]),
    ("binary.HDDMW", {}, "data_stream_2", [1018]),
    ("binary.HDDMW", {"two_sided_test": True}, "data_stream_3", [507, 1032, 1508]),
    ("KSWIN", {"alpha": 0.0001, "window_size": 200, "stat_size": 100, "seed": 42}, "data_stream_1", [1042]),
    ("PageHinkley", {}, "data_stream_1", [1020, 1397, 1548, 1988]),
    # FHDDM watches for a falling error rate only when given correct predictions: no alarm on a rising one
    ("binary.FHDDM", {}, "data_stream_2", []),
    ("binary.FHDDM", {"short_window_size": 20}, "data_stream_2", []),
]


def _lookup(namespace, path: str):
    for part in path.split("."):
        namespace = getattr(namespace, part)
    return namespace


@pytest.mark.parametrize(("path", "kwargs", "stream", "expected"), CASES,
                         ids=[f"{c[0]}-{c[2]}-{'-'.join(map(str, c[1].values())) or 'default'}" for c in CASES])
def test_alarm_positions(path, kwargs, stream, expected):
    assert perform_test(_lookup(ours, path)(**kwargs), STREAMS[stream]) == expected
    river_drift = pytest.importorskip("river.drift")
    assert perform_test(_lookup(river_drift, path)(**kwargs), STREAMS[stream]) == expected


def test_update_returns_none_as_river_does():
    for path, kwargs, stream, _ in CASES:
        det = _lookup(ours, path)(**kwargs)
        assert det.update(STREAMS[stream][0]) is None, path


def test_kswin_coverage():
    with pytest.raises(ValueError):
        ours.KSWIN(alpha=-0.1)
    with pytest.raises(ValueError):
        ours.KSWIN(alpha=1.1)
    assert ours.KSWIN(alpha=0.5).alpha == 0.5
    with pytest.raises(ValueError):
        ours.KSWIN(window_size=-10)
    with pytest.raises(ValueError):
        ours.KSWIN(window_size=10, stat_size=30)
