"""PageHinkley: River-exact alarm positions, fast path equivalence, checkpoints."""

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

import detectors.page_hinkley as ph_module
from detectors.base import InvalidInput
from detectors.page_hinkley import PageHinkley

PARAMS = [
    {},
    {"mode": "up", "threshold": 10.0, "min_instances": 5},
    {"mode": "down", "delta": 0.1, "threshold": 5.0, "alpha": 0.99},
    {"threshold": 3.0, "alpha": 1.0, "min_instances": 1},
]
FAMILIES = ["bernoulli_abrupt", "bernoulli_gradual", "gauss_mean", "gauss_var", "stationary"]
SEEDS = range(20)
N = 3000


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
    det = drift.PageHinkley(**dict(params_key))
    out = []
    for i, x in enumerate(make_stream(family, seed).tolist()):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return tuple(out)


def positions_by_update(det: PageHinkley, xs) -> list[int]:
    return [i for i, x in enumerate(xs) if det.update(x).drift_detected]


def positions_in_splits(det: PageHinkley, xs: np.ndarray, rng: np.random.Generator) -> list[int]:
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
        batch = PageHinkley(**params)
        assert batch.update_many(xs).tolist() == expected, seed
        single = PageHinkley(**params)
        assert positions_by_update(single, xs.tolist()) == expected, seed
        split = PageHinkley(**params)
        assert positions_in_splits(split, xs, np.random.default_rng(seed)) == expected, seed
        # the three paths end in the same state
        assert batch.to_state() == single.to_state() == split.to_state()
    if family != "stationary" and params.get("mode", "both") != "down":
        assert n_alarms > 0  # the streams do exercise detections


def test_running_sums_are_bit_identical_to_river():
    xs = make_stream("gauss_mean", 3)
    ours, theirs = PageHinkley(), drift.PageHinkley()
    ours.update_many(xs)
    for x in xs.tolist():
        theirs.update(x)
    assert ours._sum_increase == theirs._sum_increase
    assert ours._sum_decrease == theirs._sum_decrease
    assert ours._min_increase == theirs._min_increase
    assert ours._max_decrease == theirs._max_decrease
    assert ours._mean == theirs._x_mean.get()
    assert ours.drift_detected == theirs.drift_detected


@pytest.mark.parametrize("family", FAMILIES)
def test_state_round_trip_through_orjson(family):
    params = PARAMS[1]
    for seed in range(8):
        xs = make_stream(family, seed)
        expected = PageHinkley(**params).update_many(xs).tolist()
        rng = np.random.default_rng(1000 + seed)
        cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=5, replace=False))
        det = PageHinkley(**params)
        got: list[int] = []
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
            blob = orjson.dumps(det.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            det = PageHinkley.from_state(orjson.loads(blob))
            got.extend((det.update_many(xs[lo:hi]) + lo).tolist())
        assert got == expected


def test_state_round_trip_right_after_a_detection():
    # the reset after a detection is lazy: the checkpoint must carry the pending reset
    xs = make_stream("gauss_mean", 0)
    expected = PageHinkley().update_many(xs).tolist()
    assert expected
    cut = expected[0] + 1
    det = PageHinkley()
    det.update_many(xs[:cut])
    assert det.drift_detected
    restored = PageHinkley.from_state(orjson.loads(orjson.dumps(det.to_state())))
    assert restored.drift_detected
    rest = restored.update_many(xs[cut:]) + cut
    assert [expected[0]] + rest.tolist() == expected


def test_fresh_state_has_infinity_and_survives_json():
    state = orjson.loads(orjson.dumps(PageHinkley().to_state()))
    det = PageHinkley.from_state(state)
    assert det._min_increase == float("inf")
    assert det.update_many(np.zeros(40)).tolist() == PageHinkley().update_many(np.zeros(40)).tolist()


def test_from_state_rejects_other_types():
    with pytest.raises(ValueError):
        PageHinkley.from_state({**PageHinkley().to_state(), "type": "ADWIN"})


def test_invalid_mode():
    with pytest.raises(ValueError):
        PageHinkley(mode="sideways")


def test_get_params_round_trip():
    det = PageHinkley(**PARAMS[2])
    assert PageHinkley(**det.get_params()).get_params() == det.get_params()
    assert "mode='down'" in repr(det)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(finite, max_size=80), params=st.sampled_from(PARAMS))
def test_update_many_equals_update_and_river(xs, params):
    arr = np.asarray(xs, dtype=np.float64)
    river = drift.PageHinkley(**params)
    expected = []
    for i, x in enumerate(xs):
        river.update(x)
        if river.drift_detected:
            expected.append(i)
    assert PageHinkley(**params).update_many(arr).tolist() == expected
    assert positions_by_update(PageHinkley(**params), xs) == expected


@settings(max_examples=30, deadline=None)
@given(prefix=st.lists(finite, max_size=50))
def test_empty_batch_is_a_no_op(prefix):
    det = PageHinkley(min_instances=3, threshold=1.0)
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
    det = PageHinkley()
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
    river = drift.PageHinkley(**params)
    expected = [i for i, x in enumerate(xs) if (river.update(x), river.drift_detected)[1]]
    assert PageHinkley(**params).update_many(np.asarray(xs, dtype=np.float64)).tolist() == expected


def test_doctest():
    result = doctest.testmod(ph_module)
    assert result.attempted > 0 and result.failed == 0


def test_import_does_not_pull_numba_river_or_scipy():
    code = (
        "import sys, detectors.page_hinkley; "
        "bad = [m for m in ('numba', 'river', 'scipy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(pathlib.Path(__file__).parents[3]))
