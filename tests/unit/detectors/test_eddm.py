"""EDDM: differential tests against River 0.26.1, checkpoint round trips and property tests."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys

import numpy as np
import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import binary as river_binary

import detectors.eddm as module
from detectors.base import InvalidInput
from detectors.eddm import EDDM

OURS, RIVER = EDDM, river_binary.EDDM
PARAMS = [
    {},
    {"warm_start": 10, "alpha": 0.9, "beta": 0.8},
    {"warm_start": 50, "alpha": 0.8, "beta": 0.7},
]
#: small warm-ups so that short hypothesis examples still raise alarms
SMALL_PARAMS = [{"warm_start": 2}, {"warm_start": 0, "alpha": 0.99, "beta": 0.97}]
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


def test_alpha_below_beta_is_refused_like_river():
    with pytest.raises(ValueError):
        RIVER(alpha=0.5, beta=0.9)
    with pytest.raises(ValueError):
        OURS(alpha=0.5, beta=0.9)


def test_only_ones_count_as_errors_like_river():
    xs = [1.0, 0.5, 0.999, 1.0, 0.0, 1.0] * 50
    params = {"warm_start": 2, "alpha": 0.99, "beta": 0.97}
    assert streams.positions_by_update(OURS(**params), xs) == streams.positions_by_update(RIVER(**params), xs)
    det = OURS()
    det.update_many(np.array([0.5, 0.999, 0.0, 0.25] * 10))
    assert det.to_state()["state"]["n_errors"] == 0 and det.to_state()["state"]["n"] == 40


def _state_where_pow_and_sqrt_disagree(rng):
    """A running state after which the next error gives a variance whose ``** 0.5`` (River) is one ulp
    above ``math.sqrt``, and ``p' + 2 s'`` differs between the two."""
    while True:
        var_n = float(rng.integers(5, 500))
        var_mean = float(rng.uniform(1.0, 30.0))
        var_s = float(rng.uniform(1.0, 1e5))
        n = int(rng.integers(1000, 100000))
        last_error = n - int(rng.integers(1, 50))
        d = float(n + 1 - last_error)
        mean = var_mean + (1.0 / (var_n + 1.0)) * (d - var_mean)
        s = var_s + (d - var_mean) * (d - mean)
        var = s / (var_n + 1.0 - 1)
        p2s_pow, p2s_sqrt = mean + 2 * var**0.5, mean + 2 * math.sqrt(var)
        if p2s_pow > p2s_sqrt:
            return {"var_n": var_n, "var_mean": var_mean, "var_s": var_s, "n": n, "last_error": last_error,
                    "n_errors": n // 3, "p2s_prime_max": p2s_pow}


def test_standard_deviation_uses_pow_like_river_where_it_flips_the_alarm():
    # With alpha = beta = 1 and the running maximum equal to River's ``p' + 2 s'``, River sees level 1.0
    # (no alarm); a square root one ulp lower would give level < 1, i.e. a drift.
    rng = np.random.default_rng(11)
    params = {"warm_start": 0, "alpha": 1.0, "beta": 1.0}
    for _ in range(5):
        state = _state_where_pow_and_sqrt_disagree(rng)
        river = RIVER(**params)
        river._error_distances.mean.n = state["var_n"]
        river._error_distances.mean._mean = state["var_mean"]
        river._error_distances._S = state["var_s"]
        river._n, river._last_error = state["n"], state["last_error"]
        river._n_errors, river._p2s_prime_max = state["n_errors"], state["p2s_prime_max"]
        river.update(1)
        assert not river.drift_detected and not river.warning_detected

        full = {**state, "drift_detected": False, "warning_detected": False}
        snapshot = {"type": "EDDM", "version": 1, "params": params, "state": full}
        by_update = OURS.from_state(snapshot)
        by_update.update(1)
        fast = OURS.from_state(snapshot)
        drifts, warns = fast.update_many(np.array([1.0]), warnings=True)
        assert drifts.size == 0 and warns.size == 0
        assert not by_update.drift_detected and not by_update.warning_detected
        assert streams.state_bytes(fast) == streams.state_bytes(by_update)


def test_bool_and_int_inputs_are_accepted():
    xs = streams.bernoulli_stream("abrupt_rise", N, 3)
    expected = OURS().update_many(xs).tolist()
    assert OURS().update_many(xs.astype(bool)).tolist() == expected
    assert OURS().update_many(xs.astype(np.int64)).tolist() == expected
    assert streams.positions_by_update(OURS(), xs.astype(bool).tolist())[0] == expected


def test_params_are_public_and_listed():
    det = OURS(warm_start=7, alpha=0.9, beta=0.8)
    assert det.get_params() == {"warm_start": 7, "alpha": 0.9, "beta": 0.8}
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
    code = "import sys, detectors.eddm; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
