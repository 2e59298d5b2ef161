"""KSWIN: River-exact alarm positions, RNG draws and p-values, fast path equivalence, checkpoints.

River's KSWIN calls scipy's ks_2samp on every update (~0.3 ms each), so the River side dominates the run
time of this file: streams are short (a few hundred values) but there are many of them.
"""

from __future__ import annotations

import doctest
import functools
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift
from scipy import stats

import detectors.kswin as kswin_module
from detectors.base import InvalidInput
from detectors.kswin import KSWIN

PARAMS = [
    {"seed": 1},
    {"alpha": 0.0001, "seed": 42},
    {"alpha": 0.01, "window_size": 50, "stat_size": 10, "seed": 7},
]
FAMILIES = ["bernoulli_abrupt", "bernoulli_gradual", "gauss_mean", "gauss_var", "stationary"]
SEEDS = range(20)
N = 300


def make_stream(family: str, seed: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if family == "bernoulli_abrupt":  # error rate rises, then falls below the start
        p = np.where(t < n // 2, 0.1, np.where(t < 5 * n // 6, 0.6, 0.02))
        return (rng.random(n) < p).astype(np.float64)
    if family == "bernoulli_gradual":  # ramps up, later ramps down
        p = 0.1 + 0.6 * np.clip((t - n / 3) / (n / 6), 0, 1) - 0.6 * np.clip((t - 5 * n / 6) / (n / 12), 0, 1)
        return (rng.random(n) < p).astype(np.float64)
    if family == "gauss_mean":
        return rng.normal(np.where(t < n // 2, 0.0, 1.5), 1.0)
    if family == "gauss_var":
        return rng.normal(2.0, np.where(t < n // 2, 1.0, 4.0))
    if family == "stationary":
        return rng.normal(0.3, 1.0, 3 * n // 2)
    raise ValueError(family)


def run_river(params: dict, xs) -> tuple[list[int], drift.KSWIN]:
    det = drift.KSWIN(**params)
    out = []
    for i, x in enumerate(xs):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return out, det


def river_final_state(det: drift.KSWIN) -> dict:
    return {
        "window": [float(v) for v in det.window],
        "n": det.n,
        "p_value": float(det.p_value),
        "drift_detected": det.drift_detected,
        "rng_state": list(det._rng.getstate()[1]),
    }


@functools.lru_cache(maxsize=None)
def river_reference(params_key: tuple, family: str, seed: int) -> tuple[tuple[int, ...], str]:
    positions, det = run_river(dict(params_key), make_stream(family, seed).tolist())
    return tuple(positions), orjson.dumps(river_final_state(det)).decode()


def positions_by_update(det: KSWIN, xs) -> list[int]:
    return [i for i, x in enumerate(xs) if det.update(x).drift_detected]


def positions_in_splits(det: KSWIN, xs: np.ndarray, rng: np.random.Generator) -> list[int]:
    cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=min(7, len(xs) - 1), replace=False))
    out: list[int] = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
        out.extend((det.update_many(xs[lo:hi]) + lo).tolist())
    return out


def key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_positions_match_river(params, family):
    n_alarms = 0
    for seed in SEEDS:
        xs = make_stream(family, seed)
        expected, river_state = river_reference(key(params), family, seed)
        n_alarms += len(expected)
        batch = KSWIN(**params)
        assert batch.update_many(xs).tolist() == list(expected), seed
        single = KSWIN(**params)
        assert positions_by_update(single, xs.tolist()) == list(expected), seed
        split = KSWIN(**params)
        assert positions_in_splits(split, xs, np.random.default_rng(seed)) == list(expected), seed
        # same window, counter, p-value (bit for bit) and Mersenne Twister state as River
        assert batch.to_state()["state"] == orjson.loads(river_state), seed
        assert single.to_state() == batch.to_state() == split.to_state()
    if family != "stationary":
        assert n_alarms > 0  # the streams do exercise detections (and the resets after them)


def test_large_population_uses_the_set_method_like_cpython():
    # window_size - stat_size = 670 > CPython's small-set threshold (277 for k=30): Random.sample switches
    # from the pool method to rejection on a set
    params = {"window_size": 700, "stat_size": 30, "alpha": 0.01, "seed": 5}
    assert not KSWIN(**params)._use_pool
    for seed in range(3):
        rng = np.random.default_rng(seed)
        xs = np.concatenate([rng.normal(0, 1, 900), rng.normal(0.8, 1, 600)])
        expected, river = run_river(params, xs.tolist())
        det = KSWIN(**params)
        assert det.update_many(xs).tolist() == expected
        assert det.to_state()["state"] == river_final_state(river)


def test_initial_window_is_used_like_river():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        warm = rng.normal(0, 1, 130).tolist()  # longer than the window: the deque keeps the last 100
        xs = np.concatenate([rng.normal(0, 1, 50), rng.normal(2, 1, 150)])
        params = {"seed": seed, "window": warm}
        expected, river = run_river(params, xs.tolist())
        det = KSWIN(**params)
        assert det.update_many(xs).tolist() == expected
        assert det.to_state()["state"] == river_final_state(river)


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


@pytest.mark.parametrize("family", FAMILIES)
def test_state_round_trip_through_orjson(family):
    params = PARAMS[2]
    for seed in range(6):
        xs = make_stream(family, seed)
        expected = KSWIN(**params).update_many(xs).tolist()
        rng = np.random.default_rng(1000 + seed)
        cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=5, replace=False))
        det = KSWIN(**params)
        got: list[int] = []
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
            blob = orjson.dumps(det.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            det = KSWIN.from_state(orjson.loads(blob))
            got.extend((det.update_many(xs[lo:hi]) + lo).tolist())
        assert got == expected


def test_state_round_trip_right_after_a_detection():
    # the reset (empty window, re-seeded RNG) after a detection is lazy: the checkpoint carries it
    xs = make_stream("gauss_mean", 0, n=600)
    expected = KSWIN(seed=3).update_many(xs).tolist()
    assert len(expected) >= 1
    cut = expected[0] + 1
    det = KSWIN(seed=3)
    det.update_many(xs[:cut])
    assert det.drift_detected and len(det.current_window) == det.stat_size
    restored = KSWIN.from_state(orjson.loads(orjson.dumps(det.to_state())))
    assert restored.drift_detected
    assert [expected[0]] + (restored.update_many(xs[cut:]) + cut).tolist() == expected


def test_unseeded_detector_runs_and_restores():
    xs = np.random.default_rng(0).normal(0, 1, 400)
    det = KSWIN(alpha=1e-12)  # no detection, so no reset drawing fresh OS entropy
    det.update_many(xs[:250])
    twin = KSWIN.from_state(orjson.loads(orjson.dumps(det.to_state())))
    assert det.update_many(xs[250:]).tolist() == twin.update_many(xs[250:]).tolist() == []
    assert det.to_state() == twin.to_state()


def test_from_state_rejects_other_types():
    with pytest.raises(ValueError):
        KSWIN.from_state({**KSWIN(seed=1).to_state(), "type": "ADWIN"})


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


def test_get_params_round_trip():
    det = KSWIN(**PARAMS[2])
    assert KSWIN(**det.get_params()).get_params() == det.get_params()
    assert "seed=7" in repr(det)


SMALL = {"alpha": 0.05, "window_size": 20, "stat_size": 5, "seed": 3}
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(xs=st.lists(st.one_of(finite, st.sampled_from([0.0, 1.0])), max_size=80))
def test_update_many_equals_update_and_river(xs):
    expected, river = run_river(SMALL, xs)
    det = KSWIN(**SMALL)
    assert det.update_many(np.asarray(xs, dtype=np.float64)).tolist() == expected
    assert positions_by_update(KSWIN(**SMALL), xs) == expected
    assert det.to_state()["state"] == river_final_state(river)


@settings(max_examples=30, deadline=None)
@given(prefix=st.lists(finite, max_size=50))
def test_empty_batch_is_a_no_op(prefix):
    det = KSWIN(**SMALL)
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = det.to_state()
    out = det.update_many(np.array([], dtype=np.float64))
    assert out.dtype == np.int64 and out.size == 0
    assert det.to_state() == before


@settings(max_examples=30, deadline=None)
@given(
    prefix=st.lists(finite, max_size=30),
    bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    where=st.integers(min_value=0, max_value=10),
)
def test_non_finite_values_raise(prefix, bad, where):
    det = KSWIN(**SMALL)
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = det.to_state()
    with pytest.raises(InvalidInput):
        det.update_many(np.asarray([0.0] * where + [bad] + [1.0]))
    with pytest.raises(InvalidInput):
        det.update(bad)
    with pytest.raises(InvalidInput):
        KSWIN(window=[0.0, bad])
    assert det.to_state() == before


@settings(max_examples=15, deadline=None)
@given(value=finite, n=st.integers(min_value=0, max_value=120))
def test_constant_streams(value, n):
    xs = [value] * n
    expected, river = run_river(SMALL, xs)
    det = KSWIN(**SMALL)
    assert det.update_many(np.asarray(xs, dtype=np.float64)).tolist() == expected == []
    assert det.to_state()["state"] == river_final_state(river)


def test_doctest():
    result = doctest.testmod(kswin_module)
    assert result.attempted > 0 and result.failed == 0


def test_import_does_not_pull_numba_river_or_scipy():
    code = (
        "import sys, detectors.kswin; "
        "bad = [m for m in ('numba', 'river', 'scipy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(pathlib.Path(__file__).parents[3]))
