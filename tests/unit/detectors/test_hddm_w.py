"""HDDM_W: differential tests against River 0.26.1, checkpoint round trips and property tests."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import binary as river_binary

import detectors.hddm_w as module
from detectors.base import InvalidInput
from detectors.hddm_w import HDDM_W

OURS, RIVER = HDDM_W, river_binary.HDDMW
PARAMS = [
    {},
    {"two_sided_test": True},
    {"drift_confidence": 0.01, "warning_confidence": 0.05, "lambda_val": 0.1, "two_sided_test": True},
    {"lambda_val": 0.01},
]
#: loose confidences so that short hypothesis examples still raise alarms
SMALL_PARAMS = [
    {"drift_confidence": 0.1, "warning_confidence": 0.3, "lambda_val": 0.3, "two_sided_test": True},
    {"lambda_val": 0.5},
]
N, N_STATIONARY, N_SEEDS = 3000, 6000, 20


def _make(params):
    return lambda: OURS(**params), lambda: RIVER(**params)


@pytest.mark.parametrize("kind", streams.BERNOULLI_KINDS)
@pytest.mark.parametrize("params", PARAMS, ids=repr)
def test_positions_match_river(params, kind):
    make_ours, make_river = _make(params)
    rng = np.random.default_rng(1)
    n = N_STATIONARY if kind == "stationary" else N
    alarms = 0
    for seed in range(N_SEEDS):
        xs = streams.bernoulli_stream(kind, n, seed)
        drifts, warns = streams.assert_matches_river(make_ours, make_river, xs, rng)
        alarms += len(drifts) + len(warns)
    if kind != "stationary":  # a stationary stream may legitimately stay silent
        assert alarms > 0  # the comparison exercised alarms, not only silence


@pytest.mark.parametrize("kind", ["abrupt_rise", "gradual_fall", "stationary"])
@pytest.mark.parametrize("params", PARAMS, ids=repr)
def test_state_round_trip_continues_exactly(params, kind):
    rng = np.random.default_rng(2)
    for seed in range(5):
        xs = streams.bernoulli_stream(kind, N, 100 + seed)
        streams.assert_roundtrip_continues(lambda: OURS(**params), xs, rng)


def test_round_trip_right_after_a_drift_keeps_the_lazy_reset():
    xs = streams.bernoulli_stream("abrupt_rise", N, 7, p_low=0.05, p_high=0.6)
    det = OURS()
    drifts = det.update_many(xs)
    assert drifts.size > 0
    first = int(drifts[0])
    det = OURS()
    det.update_many(xs[: first + 1])
    assert det.drift_detected
    restored = streams.roundtrip(det)
    assert restored.drift_detected
    assert (restored.update_many(xs[first + 1 :]) + first + 1).tolist() == drifts[1:].tolist()


@pytest.mark.parametrize("lambda_val", [-0.1, 1.5])
def test_lambda_outside_unit_interval_is_refused_like_river(lambda_val):
    with pytest.raises(ValueError):
        RIVER(lambda_val=lambda_val)
    with pytest.raises(ValueError):
        OURS(lambda_val=lambda_val)


def test_two_sided_test_sees_a_fall_that_one_sided_ignores():
    xs = np.array([1.0] * 1000 + [0.0] * 1000)
    for two_sided in (False, True):
        expected = streams.positions_by_update(RIVER(two_sided_test=two_sided), xs.astype(np.int64).tolist())
        assert streams.positions_by_batches(OURS(two_sided_test=two_sided), xs, [(0, xs.size)]) == expected
        assert bool(expected[0]) is two_sided


def test_bool_and_int_inputs_are_accepted():
    xs = streams.bernoulli_stream("abrupt_rise", N, 3)
    expected = OURS().update_many(xs).tolist()
    assert OURS().update_many(xs.astype(bool)).tolist() == expected
    assert OURS().update_many(xs.astype(np.int64)).tolist() == expected
    assert streams.positions_by_update(OURS(), xs.astype(bool).tolist())[0] == expected


def test_params_are_public_and_listed():
    det = OURS(drift_confidence=0.01, warning_confidence=0.02, lambda_val=0.2, two_sided_test=True)
    assert det.get_params() == {
        "drift_confidence": 0.01, "warning_confidence": 0.02, "lambda_val": 0.2, "two_sided_test": True
    }
    assert OURS.from_state(det.to_state()).get_params() == det.get_params()


# -- properties ------------------------------------------------------------------------------------
bits = st.lists(st.integers(0, 1), max_size=300)
unit_floats = st.lists(st.floats(0.0, 1.0), max_size=200)
params_strategy = st.sampled_from(SMALL_PARAMS + PARAMS)


@settings(max_examples=60, deadline=None)
@given(params=params_strategy, xs=bits, cut=st.integers(0, 300))
def test_update_many_equals_update_and_river_on_small_bit_lists(params, xs, cut):
    arr = np.asarray(xs, dtype=np.float64)
    expected = streams.positions_by_update(RIVER(**params), xs)
    assert streams.positions_by_update(OURS(**params), xs) == expected
    cut = min(cut, len(xs))
    assert streams.positions_by_batches(OURS(**params), arr, [(0, cut), (cut, len(xs))]) == expected


@settings(max_examples=40, deadline=None)
@given(params=params_strategy, xs=unit_floats)
def test_values_inside_the_unit_interval_follow_river(params, xs):
    arr = np.asarray(xs, dtype=np.float64)
    expected = streams.positions_by_update(RIVER(**params), xs)
    assert streams.positions_by_update(OURS(**params), xs) == expected
    assert streams.positions_by_batches(OURS(**params), arr, [(0, len(xs))]) == expected


@settings(max_examples=30, deadline=None)
@given(params=params_strategy, prefix=bits)
def test_empty_batch_changes_nothing(params, prefix):
    det = OURS(**params)
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = streams.state_bytes(det)
    drifts = det.update_many(np.array([], dtype=np.float64))
    assert drifts.dtype == np.int64 and drifts.size == 0
    drifts, warns = det.update_many([], warnings=True)
    assert drifts.size == 0 and warns.size == 0 and warns.dtype == np.int64
    assert streams.state_bytes(det) == before


@settings(max_examples=40, deadline=None)
@given(
    prefix=bits,
    bad=st.sampled_from([float("nan"), float("inf"), -float("inf")])
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v < 0.0 or v > 1.0),
    where=st.integers(0, 10),
)
def test_invalid_values_raise_and_leave_state_untouched(prefix, bad, where):
    det = OURS(**SMALL_PARAMS[0])
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = streams.state_bytes(det)
    batch = np.zeros(11)
    batch[where] = bad
    with pytest.raises(InvalidInput):
        det.update_many(batch)
    with pytest.raises(InvalidInput):
        det.update_many(batch, warnings=True)
    with pytest.raises(InvalidInput):
        det.update(bad)
    assert streams.state_bytes(det) == before


@pytest.mark.parametrize("bad", ["a", None, [0, 1]])
def test_non_numbers_raise(bad):
    with pytest.raises(InvalidInput):
        OURS().update(bad)


def test_two_dimensional_input_raises():
    with pytest.raises(InvalidInput):
        OURS().update_many(np.zeros((2, 2)))


@settings(max_examples=20, deadline=None)
@given(params=params_strategy, value=st.sampled_from([0, 1]), n=st.integers(0, 3000))
def test_constant_streams_never_alarm_and_match_river(params, value, n):
    xs = [value] * n
    expected = streams.positions_by_update(RIVER(**params), xs)
    assert expected == ([], [])
    assert streams.positions_by_batches(OURS(**params), np.asarray(xs, dtype=np.float64), [(0, n)]) == expected


# -- docs and packaging ----------------------------------------------------------------------------
def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_import_does_not_load_numba():
    code = "import sys, detectors.hddm_w; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
