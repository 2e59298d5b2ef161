"""The contract every detector honours, checked once here for all of them.

Parametrized over the detectors: ours, the River class it reproduces, the parameter sets and the stream
families. Two groups share most of the checks:

* ``CONTINUOUS`` (ADWIN, PageHinkley, KSWIN): real-valued input, drift positions only.
* ``BINARY`` (DDM, EDDM, FHDDM, HDDM_A, HDDM_W): 0/1 error indicators (values in [0, 1]), drifts and warnings.

What only one detector has (its River quirks, parameter validation, doctests) lives in its own file.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import orjson
import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift
from river.drift import binary as river_binary

from detectors.adwin import ADWIN
from detectors.base import InvalidInput
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.fhddm import FHDDM
from detectors.hddm_a import HDDM_A
from detectors.hddm_w import HDDM_W
from detectors.kswin import KSWIN
from detectors.page_hinkley import PageHinkley

REPO = pathlib.Path(__file__).parents[3]
N_SEEDS = 20  # River differential tests: seeds per (detector, parameter set, stream family)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])


def _id(params: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "dflt"


def _property(max_examples: int, **strategies: Any) -> Callable:
    """``@settings(max_examples=...)`` + ``@given(...)`` for a check whose settings depend on the detector."""
    return lambda fn: settings(max_examples=max_examples, deadline=None)(given(**strategies)(fn))


def kswin_river_state(det: drift.KSWIN) -> dict:
    """River's KSWIN state in the layout of our ``to_state()["state"]`` (incl. the Mersenne Twister)."""
    return {
        "window": [float(v) for v in det.window],
        "n": det.n,
        "p_value": float(det.p_value),
        "drift_detected": det.drift_detected,
        "rng_state": list(det._rng.getstate()[1]),
    }


@dataclass(frozen=True)
class Spec:
    name: str
    ours: type
    river: type
    params: list[dict]  # the River differential grid

    def __str__(self) -> str:
        return self.name


# -- real-valued detectors -------------------------------------------------------------------------
@dataclass(frozen=True)
class Continuous(Spec):
    n: int
    stream: Callable[[str, int, int], np.ndarray]
    roundtrip_params: dict
    roundtrip_seeds: int
    detection_params: dict  # for the checkpoint right after a detection on gauss_mean seed 0
    detection_n: int
    other_type: str
    get_params_case: tuple[dict, str]  # parameters and a fragment of their repr
    # hypothesis: parameters (strategy), example counts, fixed parameter sets
    prop_params: Any
    prop_xs: Any
    equal_examples: int
    empty_params: dict
    bad_params: dict
    bad_prefix_size: int
    constant_examples: int
    constant_max_n: int
    plain_params: dict = field(default_factory=dict)  # a valid detector for type checks
    river_state: Optional[Callable[[Any], dict]] = None  # River's state, compared with ours (KSWIN)
    constant_is_silent: bool = False
    alarm_expected: Callable[[dict, str], bool] = lambda params, family: family != "stationary"
    after_detection: Optional[Callable[[Any], None]] = None  # extra check on the detector that just fired


ADWIN_PARAMS = [
    {},
    {"clock": 1},
    {"delta": 0.1, "clock": 7, "max_buckets": 2, "min_window_length": 2, "grace_period": 3},
    {"delta": 0.01, "clock": 16, "max_buckets": 3, "min_window_length": 10, "grace_period": 50},
]
PH_PARAMS = [
    {},
    {"mode": "up", "threshold": 10.0, "min_instances": 5},
    {"mode": "down", "delta": 0.1, "threshold": 5.0, "alpha": 0.99},
    {"threshold": 3.0, "alpha": 1.0, "min_instances": 1},
]
KSWIN_PARAMS = [
    {"seed": 1},
    {"alpha": 0.0001, "seed": 42},
    {"alpha": 0.01, "window_size": 50, "stat_size": 10, "seed": 7},
]
KSWIN_SMALL = {"alpha": 0.05, "window_size": 20, "stat_size": 5, "seed": 3}


def _kswin_reset_done(det: KSWIN) -> None:
    assert len(det.current_window) == det.stat_size


CONTINUOUS = [
    Continuous(
        name="ADWIN", ours=ADWIN, river=drift.ADWIN, params=ADWIN_PARAMS, n=4000, stream=streams.mixed_stream,
        roundtrip_params=ADWIN_PARAMS[2], roundtrip_seeds=8, detection_params={}, detection_n=4000,
        other_type="KSWIN", get_params_case=(ADWIN_PARAMS[2], "clock=7"),
        prop_params=st.sampled_from(ADWIN_PARAMS), prop_xs=st.lists(finite, max_size=80), equal_examples=60,
        empty_params={"clock": 1, "grace_period": 2, "min_window_length": 1}, bad_params={}, bad_prefix_size=20,
        constant_examples=20, constant_max_n=300,
    ),
    Continuous(
        name="PageHinkley", ours=PageHinkley, river=drift.PageHinkley, params=PH_PARAMS, n=3000,
        stream=streams.mixed_stream, roundtrip_params=PH_PARAMS[1], roundtrip_seeds=8, detection_params={},
        detection_n=3000, other_type="ADWIN", get_params_case=(PH_PARAMS[2], "mode='down'"),
        prop_params=st.sampled_from(PH_PARAMS), prop_xs=st.lists(finite, max_size=80), equal_examples=60,
        empty_params={"min_instances": 3, "threshold": 1.0}, bad_params={}, bad_prefix_size=20,
        constant_examples=20, constant_max_n=300,
        # a "down" detector cannot fire on these streams, whose changes all raise the statistic first
        alarm_expected=lambda params, family: family != "stationary" and params.get("mode", "both") != "down",
    ),
    Continuous(
        # River's KSWIN calls scipy's ks_2samp on every update (~0.3 ms each), so the River side dominates:
        # streams are short (a few hundred values) but there are many of them.
        name="KSWIN", ours=KSWIN, river=drift.KSWIN, params=KSWIN_PARAMS, n=300, stream=streams.sharp_mixed_stream,
        roundtrip_params=KSWIN_PARAMS[2], roundtrip_seeds=6, detection_params={"seed": 3}, detection_n=600,
        other_type="ADWIN", get_params_case=(KSWIN_PARAMS[2], "seed=7"), plain_params={"seed": 1},
        prop_params=st.just(KSWIN_SMALL), prop_xs=st.lists(st.one_of(finite, st.sampled_from([0.0, 1.0])), max_size=80),
        equal_examples=40, empty_params=KSWIN_SMALL, bad_params=KSWIN_SMALL, bad_prefix_size=30,
        constant_examples=15, constant_max_n=120, river_state=kswin_river_state, constant_is_silent=True,
        after_detection=_kswin_reset_done,  # the reset (empty window, re-seeded RNG) is lazy too
    ),
]
GRID = [(spec, params, family) for spec in CONTINUOUS for params in spec.params for family in streams.MIXED_FAMILIES]


def river_drift_run(river_cls: type, params: dict, xs: list) -> tuple[list[int], Any]:
    """Drift positions of a River detector fed ``xs`` one by one, and the detector itself."""
    river = river_cls(**params)
    out = []
    for i, x in enumerate(xs):
        river.update(x)
        if river.drift_detected:
            out.append(i)
    return out, river


@pytest.mark.parametrize("spec,params,family", GRID, ids=[f"{s}-{_id(p)}-{f}" for s, p, f in GRID])
def test_continuous_positions_match_river(spec, params, family):
    n_alarms = 0
    for seed in range(N_SEEDS):
        xs = spec.stream(family, seed, spec.n)
        expected, river = river_drift_run(spec.river, params, xs.tolist())
        n_alarms += len(expected)
        batch = spec.ours(**params)
        assert batch.update_many(xs).tolist() == expected, seed
        single = spec.ours(**params)
        assert streams.drift_positions(single, xs.tolist()) == expected, seed
        split = spec.ours(**params)
        assert streams.drift_positions_in_splits(split, xs, np.random.default_rng(seed)) == expected, seed
        if spec.river_state is not None:  # same window, counter, p-value (bit for bit) and RNG state
            assert batch.to_state()["state"] == spec.river_state(river), seed
        # the three paths end in the same state
        assert batch.to_state() == single.to_state() == split.to_state()
    if spec.alarm_expected(params, family):
        assert n_alarms > 0  # the streams do exercise detections (and the resets after them)


@pytest.mark.parametrize("family", streams.MIXED_FAMILIES)
@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_state_round_trip_through_orjson(spec, family):
    params = spec.roundtrip_params
    for seed in range(spec.roundtrip_seeds):
        xs = spec.stream(family, seed, spec.n)
        expected = spec.ours(**params).update_many(xs).tolist()
        rng = np.random.default_rng(1000 + seed)
        cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=5, replace=False))
        det = spec.ours(**params)
        got: list[int] = []
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
            det = spec.ours.from_state(orjson.loads(streams.state_bytes(det)))
            got.extend((det.update_many(xs[lo:hi]) + lo).tolist())
        assert got == expected


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_state_round_trip_right_after_a_detection(spec):
    # the reset after a detection is lazy: the checkpoint must carry the pending reset
    xs = spec.stream("gauss_mean", 0, spec.detection_n)
    expected = spec.ours(**spec.detection_params).update_many(xs).tolist()
    assert expected
    cut = expected[0] + 1
    det = spec.ours(**spec.detection_params)
    det.update_many(xs[:cut])
    assert det.drift_detected
    if spec.after_detection is not None:
        spec.after_detection(det)
    restored = spec.ours.from_state(orjson.loads(orjson.dumps(det.to_state())))
    assert restored.drift_detected
    assert [expected[0]] + (restored.update_many(xs[cut:]) + cut).tolist() == expected


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_from_state_rejects_other_types(spec):
    with pytest.raises(ValueError):
        spec.ours.from_state({**spec.ours(**spec.plain_params).to_state(), "type": spec.other_type})


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_get_params_round_trip(spec):
    params, fragment = spec.get_params_case
    det = spec.ours(**params)
    assert spec.ours(**det.get_params()).get_params() == det.get_params()
    assert fragment in repr(det)


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_update_many_equals_update_and_river(spec):
    @_property(spec.equal_examples, xs=spec.prop_xs, params=spec.prop_params)
    def check(xs, params):
        expected, river = river_drift_run(spec.river, params, xs)
        det = spec.ours(**params)
        assert det.update_many(np.asarray(xs, dtype=np.float64)).tolist() == expected
        assert streams.drift_positions(spec.ours(**params), xs) == expected
        if spec.river_state is not None:
            assert det.to_state()["state"] == spec.river_state(river)

    check()


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_empty_batch_is_a_no_op(spec):
    @_property(30, prefix=st.lists(finite, max_size=50))
    def check(prefix):
        det = spec.ours(**spec.empty_params)
        det.update_many(np.asarray(prefix, dtype=np.float64))
        before = det.to_state()
        out = det.update_many(np.array([], dtype=np.float64))
        assert out.dtype == np.int64 and out.size == 0
        assert det.to_state() == before

    check()


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_non_finite_values_raise(spec):
    @_property(
        30,
        prefix=st.lists(finite, max_size=spec.bad_prefix_size),
        bad=non_finite,
        where=st.integers(min_value=0, max_value=10),
    )
    def check(prefix, bad, where):
        det = spec.ours(**spec.bad_params)
        det.update_many(np.asarray(prefix, dtype=np.float64))
        before = det.to_state()
        with pytest.raises(InvalidInput):
            det.update_many(np.asarray([0.0] * where + [bad] + [1.0]))
        with pytest.raises(InvalidInput):
            det.update(bad)
        assert det.to_state() == before

    check()


@pytest.mark.parametrize("spec", CONTINUOUS, ids=str)
def test_continuous_constant_streams(spec):
    @_property(
        spec.constant_examples,
        value=finite,
        n=st.integers(min_value=0, max_value=spec.constant_max_n),
        params=spec.prop_params,
    )
    def check(value, n, params):
        xs = [value] * n
        expected, river = river_drift_run(spec.river, params, xs)
        det = spec.ours(**params)
        assert det.update_many(np.asarray(xs, dtype=np.float64)).tolist() == expected
        if spec.constant_is_silent:
            assert expected == []
        if spec.river_state is not None:
            assert det.to_state()["state"] == spec.river_state(river)

    check()


# -- binary (error-indicator) detectors ------------------------------------------------------------
@dataclass(frozen=True)
class Binary(Spec):
    small_params: list[dict]  # small warm-ups / windows / loose confidences: short examples still alarm
    listed_params: dict  # non-default values for the get_params check


BINARY = [
    Binary(
        "DDM", DDM, river_binary.DDM,
        params=[
            {},
            {"warm_start": 10, "warning_threshold": 1.5, "drift_threshold": 2.5},
            {"warm_start": 100, "warning_threshold": 2.5, "drift_threshold": 4.0},
        ],
        small_params=[{"warm_start": 3}, {"warm_start": 0, "warning_threshold": 1.0, "drift_threshold": 1.5}],
        listed_params={"warm_start": 7, "warning_threshold": 1.1, "drift_threshold": 2.2},
    ),
    Binary(
        "EDDM", EDDM, river_binary.EDDM,
        params=[{}, {"warm_start": 10, "alpha": 0.9, "beta": 0.8}, {"warm_start": 50, "alpha": 0.8, "beta": 0.7}],
        small_params=[{"warm_start": 2}, {"warm_start": 0, "alpha": 0.99, "beta": 0.97}],
        listed_params={"warm_start": 7, "alpha": 0.9, "beta": 0.8},
    ),
    Binary(
        "FHDDM", FHDDM, river_binary.FHDDM,
        params=[
            {},
            {"sliding_window_size": 50, "confidence_level": 1e-4, "short_window_size": 10},
            {"sliding_window_size": 200, "short_window_size": 50},
            {"sliding_window_size": 30, "confidence_level": 0.01},
        ],
        small_params=[
            {"sliding_window_size": 10, "confidence_level": 0.1, "short_window_size": 4},
            {"sliding_window_size": 5, "confidence_level": 0.3},
        ],
        listed_params={"sliding_window_size": 40, "confidence_level": 0.001, "short_window_size": 8},
    ),
    Binary(
        "HDDM_A", HDDM_A, river_binary.HDDMA,
        params=[
            {},
            {"two_sided_test": True},
            {"drift_confidence": 0.01, "warning_confidence": 0.05, "two_sided_test": True},
            {"drift_confidence": 0.0001, "warning_confidence": 0.001},
        ],
        small_params=[
            {"drift_confidence": 0.1, "warning_confidence": 0.2, "two_sided_test": True},
            {"drift_confidence": 0.05, "warning_confidence": 0.3},
        ],
        listed_params={"drift_confidence": 0.01, "warning_confidence": 0.02, "two_sided_test": True, "warm_start": 9},
    ),
    Binary(
        "HDDM_W", HDDM_W, river_binary.HDDMW,
        params=[
            {},
            {"two_sided_test": True},
            {"drift_confidence": 0.01, "warning_confidence": 0.05, "lambda_val": 0.1, "two_sided_test": True},
            {"lambda_val": 0.01},
        ],
        small_params=[
            {"drift_confidence": 0.1, "warning_confidence": 0.3, "lambda_val": 0.3, "two_sided_test": True},
            {"lambda_val": 0.5},
        ],
        listed_params={"drift_confidence": 0.01, "warning_confidence": 0.02, "lambda_val": 0.2, "two_sided_test": True},
    ),
]
N, N_STATIONARY = 3000, 6000
ROUNDTRIP_KINDS = ["abrupt_rise", "gradual_fall", "stationary"]
B_GRID = [(spec, params) for spec in BINARY for params in spec.params]
B_IDS = [f"{s}-{p!r}" for s, p in B_GRID]

bits = st.lists(st.integers(0, 1), max_size=300)
unit_floats = st.lists(st.floats(0.0, 1.0), max_size=200)
out_of_range = non_finite | st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v < 0.0 or v > 1.0)


def _any_params(spec: Binary) -> Any:
    return st.sampled_from(spec.small_params + spec.params)


@pytest.mark.parametrize("kind", streams.BERNOULLI_KINDS)
@pytest.mark.parametrize("spec,params", B_GRID, ids=B_IDS)
def test_binary_positions_match_river(spec, params, kind):
    rng = np.random.default_rng(1)
    n = N_STATIONARY if kind == "stationary" else N
    alarms = 0
    for seed in range(N_SEEDS):
        xs = streams.bernoulli_stream(kind, n, seed)
        drifts, warns = streams.assert_matches_river(lambda: spec.ours(**params), lambda: spec.river(**params), xs, rng)
        alarms += len(drifts) + len(warns)
    if kind != "stationary":  # a stationary stream may legitimately stay silent
        assert alarms > 0  # the comparison exercised alarms, not only silence


@pytest.mark.parametrize("kind", ROUNDTRIP_KINDS)
@pytest.mark.parametrize("spec,params", B_GRID, ids=B_IDS)
def test_binary_state_round_trip_continues_exactly(spec, params, kind):
    rng = np.random.default_rng(2)
    for seed in range(5):
        xs = streams.bernoulli_stream(kind, N, 100 + seed)
        streams.assert_roundtrip_continues(lambda: spec.ours(**params), xs, rng)


@pytest.mark.parametrize("spec", BINARY, ids=str)
def test_binary_round_trip_right_after_a_drift_keeps_the_lazy_reset(spec):
    xs = streams.bernoulli_stream("abrupt_rise", N, 7, p_low=0.05, p_high=0.6)
    drifts = spec.ours().update_many(xs)
    assert drifts.size > 0
    first = int(drifts[0])
    det = spec.ours()
    det.update_many(xs[: first + 1])
    assert det.drift_detected
    restored = streams.roundtrip(det)
    assert restored.drift_detected
    assert (restored.update_many(xs[first + 1 :]) + first + 1).tolist() == drifts[1:].tolist()


@pytest.mark.parametrize("spec", BINARY, ids=str)
def test_binary_bool_and_int_inputs_are_accepted(spec):
    xs = streams.bernoulli_stream("abrupt_rise", N, 3)
    expected = spec.ours().update_many(xs).tolist()
    assert spec.ours().update_many(xs.astype(bool)).tolist() == expected
    assert spec.ours().update_many(xs.astype(np.int64)).tolist() == expected
    assert streams.positions_by_update(spec.ours(), xs.astype(bool).tolist())[0] == expected


@pytest.mark.parametrize("spec", BINARY, ids=str)
def test_binary_params_are_public_and_listed(spec):
    det = spec.ours(**spec.listed_params)
    assert det.get_params() == spec.listed_params
    assert spec.ours.from_state(det.to_state()).get_params() == det.get_params()


@pytest.mark.parametrize("spec", BINARY, ids=str)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), xs=bits, cut=st.integers(0, 300))
def test_binary_update_many_equals_update_and_river_on_small_bit_lists(spec, data, xs, cut):
    params = data.draw(_any_params(spec), label="params")
    arr = np.asarray(xs, dtype=np.float64)
    expected = streams.positions_by_update(spec.river(**params), xs)
    assert streams.positions_by_update(spec.ours(**params), xs) == expected
    cut = min(cut, len(xs))
    assert streams.positions_by_batches(spec.ours(**params), arr, [(0, cut), (cut, len(xs))]) == expected


@pytest.mark.parametrize("spec", BINARY, ids=str)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), xs=unit_floats)
def test_binary_values_inside_the_unit_interval_follow_river(spec, data, xs):
    params = data.draw(_any_params(spec), label="params")
    arr = np.asarray(xs, dtype=np.float64)
    expected = streams.positions_by_update(spec.river(**params), xs)
    assert streams.positions_by_update(spec.ours(**params), xs) == expected
    assert streams.positions_by_batches(spec.ours(**params), arr, [(0, len(xs))]) == expected


@pytest.mark.parametrize("spec", BINARY, ids=str)
@settings(max_examples=30, deadline=None)
@given(data=st.data(), prefix=bits)
def test_binary_empty_batch_changes_nothing(spec, data, prefix):
    det = spec.ours(**data.draw(_any_params(spec), label="params"))
    det.update_many(np.asarray(prefix, dtype=np.float64))
    before = streams.state_bytes(det)
    drifts = det.update_many(np.array([], dtype=np.float64))
    assert drifts.dtype == np.int64 and drifts.size == 0
    drifts, warns = det.update_many([], warnings=True)
    assert drifts.size == 0 and warns.size == 0 and warns.dtype == np.int64
    assert streams.state_bytes(det) == before


@pytest.mark.parametrize("spec", BINARY, ids=str)
@settings(max_examples=40, deadline=None)
@given(prefix=bits, bad=out_of_range, where=st.integers(0, 10))
def test_binary_invalid_values_raise_and_leave_state_untouched(spec, prefix, bad, where):
    det = spec.ours(**spec.small_params[0])
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


@pytest.mark.parametrize("spec", [s for s in BINARY if s.name.startswith("HDDM")], ids=str)
def test_hddm_two_sided_test_sees_a_fall_that_one_sided_ignores(spec):
    xs = np.array([1.0] * 1000 + [0.0] * 1000)
    for two_sided in (False, True):
        expected = streams.positions_by_update(spec.river(two_sided_test=two_sided), xs.astype(np.int64).tolist())
        assert streams.positions_by_batches(spec.ours(two_sided_test=two_sided), xs, [(0, xs.size)]) == expected
        assert bool(expected[0]) is two_sided


@pytest.mark.parametrize("bad", ["a", None, [0, 1]])
@pytest.mark.parametrize("spec", BINARY, ids=str)
def test_binary_non_numbers_raise(spec, bad):
    with pytest.raises(InvalidInput):
        spec.ours().update(bad)


@pytest.mark.parametrize("spec", BINARY, ids=str)
def test_binary_two_dimensional_input_raises(spec):
    with pytest.raises(InvalidInput):
        spec.ours().update_many(np.zeros((2, 2)))


@pytest.mark.parametrize("spec", BINARY, ids=str)
@settings(max_examples=20, deadline=None)
@given(data=st.data(), value=st.sampled_from([0, 1]), n=st.integers(0, 3000))
def test_binary_constant_streams_never_alarm_and_match_river(spec, data, value, n):
    params = data.draw(_any_params(spec), label="params")
    xs = [value] * n
    expected = streams.positions_by_update(spec.river(**params), xs)
    assert expected == ([], [])
    assert streams.positions_by_batches(spec.ours(**params), np.asarray(xs, dtype=np.float64), [(0, n)]) == expected


# -- packaging -------------------------------------------------------------------------------------
IMPORTS = [
    ("detectors.adwin", ("numba", "river", "scipy")),
    ("detectors.page_hinkley", ("numba", "river", "scipy")),
    ("detectors.kswin", ("numba", "river", "scipy")),
    *((f"detectors.{name}", ("numba",)) for name in ("ddm", "eddm", "fhddm", "hddm_a", "hddm_w")),
]


@pytest.mark.parametrize("module,forbidden", IMPORTS, ids=[m for m, _ in IMPORTS])
def test_import_does_not_pull_heavy_dependencies(module, forbidden):
    code = f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))
