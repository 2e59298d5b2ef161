"""KSWIN-specific tests: CPython's sampling methods and initial windows like River, the p-value table and
KS statistic against scipy, unseeded detectors, parameter validation, doctests.

The shared contract (River-exact positions and RNG state, fast path equivalence, checkpoints, input
validation) is in test_contract.py.
"""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift
from scipy import stats
from test_contract import kswin_river_state, river_drift_run

import detectors.kswin as kswin_module
from detectors.base import InvalidInput
from detectors.kswin import KSWIN


def test_large_population_uses_the_set_method_like_cpython():
    # window_size - stat_size = 670 > CPython's small-set threshold (277 for k=30): Random.sample switches
    # from the pool method to rejection on a set
    params = {"window_size": 700, "stat_size": 30, "alpha": 0.01, "seed": 5}
    assert not KSWIN(**params)._use_pool
    for seed in range(3):
        rng = np.random.default_rng(seed)
        xs = np.concatenate([rng.normal(0, 1, 900), rng.normal(0.8, 1, 600)])
        expected, river = river_drift_run(drift.KSWIN, params, xs.tolist())
        det = KSWIN(**params)
        assert det.update_many(xs).tolist() == expected
        assert det.to_state()["state"] == kswin_river_state(river)


def test_initial_window_is_used_like_river():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        warm = rng.normal(0, 1, 130).tolist()  # longer than the window: the deque keeps the last 100
        xs = np.concatenate([rng.normal(0, 1, 50), rng.normal(2, 1, 150)])
        params = {"seed": seed, "window": warm}
        expected, river = river_drift_run(drift.KSWIN, params, xs.tolist())
        det = KSWIN(**params)
        assert det.update_many(xs).tolist() == expected
        assert det.to_state()["state"] == kswin_river_state(river)


def ks_samples_with_statistic(n: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(n, dtype=np.float64)
    return a, (a + h - 0.5 if h else a.copy())  # max ECDF difference is exactly h / n


@pytest.mark.parametrize("n", [*range(1, 41), 50, 73, 100, 137])
def test_pvalue_table_matches_scipy_ks_2samp(n):
    from detectors._kswin_kernel import pvalue_table

    table = pvalue_table(n)
    for h in range(n + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            res = stats.ks_2samp(*ks_samples_with_statistic(n, h), method="auto")
        assert res.statistic * n == pytest.approx(h)
        if table[h] != res.pvalue:
            # scipy's exact value rounded above 1 and it fell back to the asymptotic distribution
            assert table[h] == 1.0 and res.pvalue >= 0.9999, (n, h, table[h], res.pvalue)


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    n=st.integers(min_value=1, max_value=40),
    values=st.lists(st.sampled_from([-1.5, 0.0, 0.25, 1.0, 2.0, 7.0]), min_size=2, max_size=2),
)
def test_integer_statistic_matches_scipy(data, n, values):
    from detectors._kswin_kernel import _ks_h

    pool = st.one_of(st.sampled_from(values), st.floats(-3, 3, allow_nan=False))
    a = np.array(data.draw(st.lists(pool, min_size=n, max_size=n)), dtype=np.float64)
    b = np.array(data.draw(st.lists(pool, min_size=n, max_size=n)), dtype=np.float64)
    h = _ks_h(np.sort(a), np.sort(b))
    with warnings.catch_warnings():  # scipy may fall back to 'asymp' for the p-value; not our concern here
        warnings.simplefilter("ignore", category=RuntimeWarning)
        assert h / n == stats.ks_2samp(a, b, method="exact").statistic


def test_unseeded_detector_runs_and_restores():
    xs = np.random.default_rng(0).normal(0, 1, 400)
    det = KSWIN(alpha=1e-12)  # no detection, so no reset drawing fresh OS entropy
    det.update_many(xs[:250])
    twin = KSWIN.from_state(orjson.loads(orjson.dumps(det.to_state())))
    assert det.update_many(xs[250:]).tolist() == twin.update_many(xs[250:]).tolist() == []
    assert det.to_state() == twin.to_state()


@pytest.mark.parametrize(
    "params",
    [
        {"alpha": -0.1},
        {"alpha": 1.5},
        {"window_size": 10, "stat_size": 20},
        {"window_size": 50, "stat_size": 30},  # random.sample(range(20), 30) fails in River
        {"stat_size": 0},
    ],
)
def test_invalid_parameters(params):
    with pytest.raises(ValueError):
        KSWIN(**params)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_initial_window_raises(bad):
    with pytest.raises(InvalidInput):
        KSWIN(window=[0.0, bad])


def test_doctest():
    result = doctest.testmod(kswin_module)
    assert result.attempted > 0 and result.failed == 0

