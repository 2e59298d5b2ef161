"""The per-call shortcuts of the windowed data-drift tests give exactly what the plain code gives: result objects
built without the dataclass ``__init__``, the cheaper finite check of ``as_float_array``, the compiled loops of
the chi-squared p-value and statistic, the no-test path of ``_ingest``, KSDrift's one-kernel batches and the
byte-packed category buckets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import orjson
import pytest
from test_data_drift_exact import NUMERIC_KINDS, category_sample, numeric_sample, random_config

from detectors import _window_kernel, chi2_test, ks_test
from detectors._stats import _gammaincc, chi2_homogeneity, chi2_sf, chi2_table_counts
from detectors.base import InvalidInput, as_float_array
from detectors.chi2_test import ChiSquaredDrift
from detectors.js_distance import JSDrift
from detectors.ks_test import KSDrift
from detectors.window import DriftTestResult, WindowedDriftTest, _new_result

FIELDS = ("ks", 0.125, 0.5, 0.125, False, 0.05, 1000, 500, 5000, None)


@pytest.mark.parametrize("fields", [FIELDS, ("chi2", 3.5, 0.01, 0.2, True, 0.05, 10, 20, 40, 3)])
def test_fast_result_is_the_dataclass(fields):
    fast, plain = _new_result(*fields), DriftTestResult(*fields)
    assert type(fast) is DriftTestResult
    assert fast == plain and hash(fast) == hash(plain) and repr(fast) == repr(plain)
    assert vars(fast) == vars(plain) and list(vars(fast)) == list(vars(plain))
    assert fast.to_dict() == plain.to_dict() and DriftTestResult.from_dict(fast.to_dict()) == fast
    for r in (fast, plain):  # what dataclasses.asdict gives, key order included, and a copy
        assert list(r.to_dict().items()) == list(dataclasses.asdict(r).items())
        assert r.to_dict() is not vars(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.drift = True  # type: ignore[misc]


@pytest.mark.parametrize("bad, at", [([1.0, math.nan, 2.0], 1), ([math.inf], 0), ([1e200, -math.inf], 1),
                                     ([1e300, 1e300, math.nan], 2), (np.array([0.0, 0.0, -math.inf]), 2)])
def test_as_float_array_rejects_non_finite(bad, at):
    with pytest.raises(InvalidInput, match=f"at position {at}"):
        as_float_array(bad)


def test_as_float_array_accepts_extreme_finite_values():
    xs = [1e200, -1e300, 1.7976931348623157e308, 0.0, -0.0, 5e-324]
    assert as_float_array(xs).tolist() == xs
    assert as_float_array([]).shape == (0,)


def test_chi2_sf_compiled_loops_are_bit_identical_to_python_ones():
    rng = np.random.default_rng(3)
    for dof in list(range(1, 40)) + [99, 100, 250]:
        xs = np.concatenate([[0.0, 1e-300, dof, dof + 2.0, math.inf], rng.uniform(0, 3 * dof + 20, 60),
                             10 ** rng.uniform(-10, 4, 30)])
        for x in xs:
            # the same loops run by the interpreter (numba keeps the Python function as ``py_func``)
            plain = _gammaincc(dof / 2.0, float(x) / 2.0, _window_kernel.gammainc_series_sum.py_func,
                               _window_kernel.gammaincc_cf_h.py_func)
            assert chi2_sf(float(x), dof) == plain, (dof, float(x).hex())
    assert chi2_sf(5.0, 0) == 1.0
    with pytest.raises(ValueError):
        chi2_sf(math.nan, 3)


@pytest.mark.parametrize("make, data", [
    (lambda: KSDrift(reference_size=30, window_size=20, step=7, alpha=0.2),
     lambda rng: np.round(np.concatenate([rng.normal(0, 1, 80), rng.normal(1.5, 1, 80)]), 1).tolist()),
    (lambda: ChiSquaredDrift(reference_size=30, window_size=20, step=7, alpha=0.2),
     lambda rng: [str(v) for v in np.concatenate([rng.integers(0, 3, 80), rng.integers(1, 5, 80)])]),
])
def test_batches_with_and_without_tests_match_one_by_one(make, data):
    rng = np.random.default_rng(5)
    xs = data(rng)
    one = make()
    flags, results = [], []
    for x in xs:
        one.update(x)
        flags.append(one.drift_detected)
        if one.last_result is not None and one.last_result.position == one.n_seen:
            results.append(one.last_result)
    many = make()
    got, i = [], 0
    for size in rng.integers(1, 12, 1000):  # most batches run no test, some one, a few two
        if i >= len(xs):
            break
        batch = xs[i : i + int(size)]
        got += many.update_many(batch)
        i += len(batch)
        assert many.drift_detected == flags[i - 1]
    assert got == results and any(r.drift for r in got) and not all(r.drift for r in got)
    s1, s2 = one.to_state(), many.to_state()
    assert s1["state"]["until_test"] == s2["state"]["until_test"]
    assert np.array_equal(s1["state"]["window"], s2["state"]["window"])
    assert s1["state"]["last_result"] == s2["state"]["last_result"]


def _dump(det):
    return orjson.dumps(det.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)


def _restored(det):
    return type(det).from_state(orjson.loads(_dump(det)))


def _batch(rng, xs, i, window_size):
    """A batch from ``xs[i:]`` of random size (empty ones too) as a list or a plain, read-only or strided array."""
    size = int(rng.choice([0, 1, 2, int(rng.integers(1, 3 * window_size + 2)), int(rng.integers(60, 260))]))
    chunk = np.asarray(xs[i : i + size], dtype=np.float64)
    form = rng.integers(0, 4)
    if form == 0:
        return chunk.tolist()
    if form == 1:
        chunk.flags.writeable = False
    elif form == 2:
        chunk = np.repeat(chunk, 2)[::2]  # strided view
    return chunk


@pytest.mark.parametrize("kind", NUMERIC_KINDS)
def test_ks_one_kernel_batches_equal_the_general_path(kind):
    # once the window is tracked, KSDrift.update_many is one ingest_keyed call; the oracle is the general path
    # (WindowedDriftTest.update_many: encode, then push and test chunk by chunk) on a twin, batch for batch
    rng = np.random.default_rng(100 + NUMERIC_KINDS.index(kind))
    fast_batches = 0
    for _ in range(6):
        kw = random_config(rng)
        n_ref = int(rng.integers(1, 300))
        xs = numeric_sample(rng, kind, int(rng.integers(600, 2500)))
        fast, plain = KSDrift(reference_size=n_ref, **kw), KSDrift(reference_size=n_ref, **kw)
        i = 0
        while i < len(xs):
            batch = _batch(rng, xs, i, kw["window_size"])
            fast_batches += fast._keys is not None and len(batch) > 0
            if len(batch) and rng.random() < 0.1:  # a non-finite value somewhere: same error, nothing changes
                bad = list(batch)
                bad[int(rng.integers(0, len(bad)))] = float(rng.choice([np.nan, np.inf, -np.inf]))
                before = _dump(fast)
                with pytest.raises(InvalidInput) as got:
                    fast.update_many(bad)
                with pytest.raises(InvalidInput) as want:
                    WindowedDriftTest.update_many(plain, bad)
                assert str(got.value) == str(want.value) and _dump(fast) == before
            results = fast.update_many(batch)
            assert results == WindowedDriftTest.update_many(plain, batch)
            assert fast.drift_detected == plain.drift_detected and fast.last_result == plain.last_result
            assert _dump(fast) == _dump(plain)
            if rng.random() < 0.05:  # a checkpoint mid-stream: the restored one goes back to the general path
                fast = _restored(fast)
            i += len(batch)
    assert fast_batches > 30


def test_ks_one_kernel_batches_keep_the_p_value_memo(monkeypatch):
    monkeypatch.setattr(ks_test, "_P_VALUE_MEMO_SIZE", 2)
    rng = np.random.default_rng(21)
    xs = numeric_sample(rng, "rounded_shift", 4000).tolist()
    fast, plain = (KSDrift(reference_size=300, window_size=50, step=1) for _ in range(2))
    for i in range(0, len(xs), 170):
        assert fast.update_many(xs[i : i + 170]) == WindowedDriftTest.update_many(plain, xs[i : i + 170])
        assert fast._p_values == plain._p_values and len(fast._p_values) <= 2


@pytest.mark.parametrize("cls", [ChiSquaredDrift, JSDrift])
def test_categorical_batches_equal_one_by_one_updates(cls):
    # strings already named go through itemgetter + bytearray (uint8 buckets); everything else the general way
    rng = np.random.default_rng(31)
    for trial in range(12):
        kw = random_config(rng, categorical=True)
        if trial % 3 == 0:
            kw["max_categories"] = 300  # too many buckets for a byte: the int64 path
        n_ref = int(rng.integers(1, 300))
        xs = category_sample(rng, 1500) if trial % 2 else [str(v) for v in rng.integers(0, 7, 1500)]
        batched, single = cls(reference_size=n_ref, **kw), cls(reference_size=n_ref, **kw)
        i = 0
        while i < len(xs):
            batch = xs[i : i + int(rng.choice([0, 1, 2, 5, int(rng.integers(1, 300))]))]
            got = batched.update_many(batch)
            want = []
            for x in batch:
                single.update(x)
                if single.last_result is not None and single.last_result.position == single.n_seen:
                    want.append(single.last_result)
            assert got == want
            if batch:
                assert batched.drift_detected == single.drift_detected
            assert _dump(batched) == _dump(single)
            if rng.random() < 0.05:
                batched = _restored(batched)
            i += len(batch)


def test_numpy_sum_is_np_add_reduce():
    rng = np.random.default_rng(41)
    sizes = list(range(0, 300)) + [511, 512, 513, 1000, 4097, 8192, 8193, 30001]
    for n in sizes:
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)
        assert _window_kernel.numpy_sum(a) == np.add.reduce(a, axis=None), n
        if n % 2 == 0:  # the (2, k) table of chi2_terms, flattened
            assert _window_kernel.numpy_sum(a) == np.add.reduce(a.reshape(2, -1), axis=None), n
    assert str(_window_kernel.numpy_sum(np.array([-0.0]))) == str(np.add.reduce(np.array([-0.0])))


def test_chi2_statistic_sums_the_terms_as_numpy_does():
    rng = np.random.default_rng(43)
    for _ in range(2000):
        m = int(rng.integers(1, 250))
        ref = rng.integers(0, rng.choice([2, 50, 10**6]), m) * (rng.random(m) < 0.7)
        cur = rng.integers(0, rng.choice([2, 50, 500]), m) * (rng.random(m) < 0.7)
        terms, total = _window_kernel.chi2_terms(ref, cur)
        stat, k, total2 = _window_kernel.chi2_statistic(ref, cur)
        with np.errstate(all="ignore"):
            want = float(np.add.reduce(terms, axis=None))
        assert (stat == want or (math.isnan(stat) and math.isnan(want))) and (k, total2) == (terms.shape[1], total)
    assert chi2_table_counts(np.array([5, 0], dtype=np.int64), np.array([3, 0], dtype=np.int64)) == (0.0, 0, 0.0)


def test_chi2_p_value_memo_is_bounded_and_exact(monkeypatch):
    monkeypatch.setattr(chi2_test, "_P_VALUE_MEMO_SIZE", 3)
    rng = np.random.default_rng(44)
    xs = [str(v) for v in np.concatenate([rng.integers(0, 3, 1500), rng.integers(0, 4, 1500)])]
    det = ChiSquaredDrift(reference_size=300, window_size=100, step=7)
    results = [r for i in range(0, len(xs), 90) for r in det.update_many(xs[i : i + 90])]
    assert len(det._p_values) <= 3 and len(results) > 300
    bucket = {c: i for i, c in enumerate(det.categories)}  # columns in bucket order, as the detector sums them
    ref = np.bincount([bucket[v] for v in xs[:300]], minlength=101)
    for r in results:
        cur = np.bincount([bucket[v] for v in xs[r.position - 100 : r.position]], minlength=101)
        assert (r.statistic, r.dof, r.p_value, r.distance) == chi2_homogeneity(ref, cur)
