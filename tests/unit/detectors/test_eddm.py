"""EDDM-specific tests: its River quirks, parameter validation and doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation) is in
test_contract.py.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from river.drift import binary as river_binary

import detectors.eddm as module
from detectors.eddm import EDDM

OURS, RIVER = EDDM, river_binary.EDDM


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


def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
