"""HDDM_A-specific tests: doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation, the
two-sided test shared with HDDM_W) is in test_contract.py.
"""

from __future__ import annotations

import doctest

import detectors.hddm_a as module


def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_warm_start_holds_the_tests_and_both_paths_agree():
    """driftstream's warm_start (0 = River): no warning or drift within the first warm_start values after a
    (re)start; the statistics still run, so afterwards the same stream gives the same alarms as River's
    would on the statistics it kept. Fast path and update() agree, across batch cuts and a checkpoint."""
    import numpy as np

    from detectors.hddm_a import HDDMA

    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.random(300) < 0.1, rng.random(3000) < 0.7]).astype(float)
    plain = HDDMA().update_many(xs)
    assert plain.size and plain[0] < 400
    det = HDDMA(warm_start=500)
    drifts, warns = det.update_many(xs, warnings=True)
    assert drifts.size and drifts[0] >= 500  # the first test comes after the warm-up
    starts = np.concatenate([[0], drifts[:-1] + 1])
    for start, d in zip(starts, drifts):
        assert d - start >= 500  # after every restart too
    assert all(w - s >= 500 for w in warns for s in starts[starts <= w][-1:])
    one = HDDMA(warm_start=500)
    by_update, by_update_w = [], []
    for i, x in enumerate(xs):
        one.update(x)
        if one.drift_detected:
            by_update.append(i)
        if one.warning_detected:
            by_update_w.append(i)
    assert by_update == drifts.tolist() and by_update_w == warns.tolist()
    half = HDDMA(warm_start=500)
    first = half.update_many(xs[:1234])
    resumed = HDDMA.from_state(half.to_state())
    assert np.concatenate([first, resumed.update_many(xs[1234:]) + 1234]).tolist() == drifts.tolist()
    import pytest

    with pytest.raises(ValueError):
        HDDMA(warm_start=-1)
