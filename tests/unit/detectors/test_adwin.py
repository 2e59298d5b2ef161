"""ADWIN: River-exact alarm positions and window statistics, fast path equivalence, checkpoints."""

from __future__ import annotations

import doctest
import functools
import pathlib
import subprocess
import sys

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift

import detectors.adwin as adwin_module
from detectors.base import InvalidInput
from detectors.adwin import ADWIN

PARAMS = [
    {},
    {"clock": 1},
    {"delta": 0.1, "clock": 7, "max_buckets": 2, "min_window_length": 2, "grace_period": 3},
    {"delta": 0.01, "clock": 16, "max_buckets": 3, "min_window_length": 10, "grace_period": 50},
]
FAMILIES = ["bernoulli_abrupt", "bernoulli_gradual", "gauss_mean", "gauss_var", "stationary"]
SEEDS = range(20)
N = 4000


def make_stream(family: str, seed: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if family == "bernoulli_abrupt":  # error rate rises, then falls below the start
        p = np.where(t < n // 3, 0.1, np.where(t < 2 * n // 3, 0.45, 0.05))
        return (rng.random(n) < p).astype(np.float64)
    if family == "bernoulli_gradual":  # ramps up over a quarter of the stream, later ramps down
        p = 0.1 + 0.4 * np.clip((t - n / 4) / (n / 4), 0, 1) - 0.4 * np.clip((t - 3 * n / 4) / (n / 8), 0, 1)
        return (rng.random(n) < p).astype(np.float64)
    if family == "gauss_mean":
        mean = np.where(t < n // 2, 0.0, 1.5)
        return rng.normal(mean, 1.0)
    if family == "gauss_var":
        sd = np.where(t < n // 2, 1.0, 4.0)
        return rng.normal(2.0, sd)
    if family == "stationary":
        return rng.normal(0.3, 1.0, 3 * n)
    raise ValueError(family)


@functools.lru_cache(maxsize=None)
def river_positions(params_key: tuple, family: str, seed: int) -> tuple[int, ...]:
    det = drift.ADWIN(**dict(params_key))
    out = []
    for i, x in enumerate(make_stream(family, seed).tolist()):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return tuple(out)


def positions_by_update(det: ADWIN, xs) -> list[int]:
    return [i for i, x in enumerate(xs) if det.update(x).drift_detected]


def positions_in_splits(det: ADWIN, xs: np.ndarray, rng: np.random.Generator) -> list[int]:
    cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=min(7, len(xs) - 1), replace=False))
    out: list[int] = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
        out.extend((det.update_many(xs[lo:hi]) + lo).tolist())
    return out


def key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "dflt")
def test_positions_match_river(params, family):
    n_alarms = 0
    for seed in SEEDS:
        xs = make_stream(family, seed)
        expected = list(river_positions(key(params), family, seed))
        n_alarms += len(expected)
        batch = ADWIN(**params)
        assert batch.update_many(xs).tolist() == expected, seed
        single = ADWIN(**params)
        assert positions_by_update(single, xs.tolist()) == expected, seed
        split = ADWIN(**params)
        assert positions_in_splits(split, xs, np.random.default_rng(seed)) == expected, seed
        # the three paths end in the same state
        assert batch.to_state() == single.to_state() == split.to_state()
    if family != "stationary":
        assert n_alarms > 0  # the streams do exercise detections


@pytest.mark.parametrize("params", PARAMS[:3])
def test_window_statistics_are_bit_identical_to_river(params):
    for family in FAMILIES:
        xs = make_stream(family, 7)
        ours, theirs = ADWIN(**params), drift.ADWIN(**params)
        for lo in range(0, len(xs), 997):
            ours.update_many(xs[lo : lo + 997])
            for x in xs[lo : lo + 997].tolist():
                theirs.update(x)
            assert ours.width == theirs.width
            assert ours.total == theirs.total
            assert ours.variance == theirs.variance
            assert ours.estimation == theirs.estimation
            assert ours.n_detections == theirs.n_detections
            assert ours.drift_detected == theirs.drift_detected


@pytest.mark.parametrize("family", FAMILIES)
def test_state_round_trip_through_orjson(family):
    params = PARAMS[2]
    for seed in range(8):
        xs = make_stream(family, seed)
        expected = ADWIN(**params).update_many(xs).tolist()
        rng = np.random.default_rng(1000 + seed)
        cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=5, replace=False))
        det = ADWIN(**params)
        got: list[int] = []
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
            blob = orjson.dumps(det.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            det = ADWIN.from_state(orjson.loads(blob))
            got.extend((det.update_many(xs[lo:hi]) + lo).tolist())
        assert got == expected


def test_state_round_trip_right_after_a_detection():
    # the reset after a detection is lazy: the checkpoint must carry the pending reset
    xs = make_stream("gauss_mean", 0)
    expected = ADWIN().update_many(xs).tolist()
    assert expected
    cut = expected[0] + 1
    det = ADWIN()
    det.update_many(xs[:cut])
    assert det.drift_detected
    restored = ADWIN.from_state(orjson.loads(orjson.dumps(det.to_state())))
    assert restored.drift_detected
    rest = restored.update_many(xs[cut:]) + cut
    assert [expected[0]] + rest.tolist() == expected


def test_from_state_rejects_other_types():
    with pytest.raises(ValueError):
        ADWIN.from_state({**ADWIN().to_state(), "type": "KSWIN"})


@pytest.mark.parametrize("params", [{"clock": 0}, {"max_buckets": 0}])
def test_parameters_river_cannot_run_are_rejected(params):
    with pytest.raises(ValueError):
        ADWIN(**params)


def test_get_params_round_trip():
    det = ADWIN(**PARAMS[2])
    assert ADWIN(**det.get_params()).get_params() == det.get_params()
    assert "clock=7" in repr(det)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(finite, max_size=80), params=st.sampled_from(PARAMS))
def test_update_many_equals_update_and_river(xs, params):
    arr = np.asarray(xs, dtype=np.float64)
    river = drift.ADWIN(**params)
    expected = []
    for i, x in enumerate(xs):
        river.update(x)
        if river.drift_detected:
            expected.append(i)
    assert ADWIN(**params).update_many(arr).tolist() == expected
    assert positions_by_update(ADWIN(**params), xs) == expected


@settings(max_examples=30, deadline=None)
@given(prefix=st.lists(finite, max_size=50))
def test_empty_batch_is_a_no_op(prefix):
    det = ADWIN(clock=1, grace_period=2, min_window_length=1)
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = det.to_state()
    out = det.update_many(np.array([], dtype=np.float64))
    assert out.dtype == np.int64 and out.size == 0
    assert det.to_state() == before


@settings(max_examples=30, deadline=None)
@given(
    prefix=st.lists(finite, max_size=20),
    bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    where=st.integers(min_value=0, max_value=10),
)
def test_non_finite_values_raise(prefix, bad, where):
    det = ADWIN()
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = det.to_state()
    batch = [0.0] * where + [bad] + [1.0]
    with pytest.raises(InvalidInput):
        det.update_many(np.asarray(batch))
    with pytest.raises(InvalidInput):
        det.update(bad)
    assert det.to_state() == before


@settings(max_examples=20, deadline=None)
@given(value=finite, n=st.integers(min_value=0, max_value=300), params=st.sampled_from(PARAMS))
def test_constant_streams(value, n, params):
    xs = [value] * n
    river = drift.ADWIN(**params)
    expected = [i for i, x in enumerate(xs) if (river.update(x), river.drift_detected)[1]]
    assert ADWIN(**params).update_many(np.asarray(xs, dtype=np.float64)).tolist() == expected


def test_doctest():
    result = doctest.testmod(adwin_module)
    assert result.attempted > 0 and result.failed == 0


def test_import_does_not_pull_numba_river_or_scipy():
    code = (
        "import sys, detectors.page_hinkley; "
        "bad = [m for m in ('numba', 'river', 'scipy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(pathlib.Path(__file__).parents[3]))
