"""The per-call shortcuts of the windowed data-drift tests give exactly what the plain code gives: result objects
built without the dataclass ``__init__``, the cheaper finite check of ``as_float_array``, the compiled loops of
the chi-squared p-value and the no-test path of ``_ingest``."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from detectors._stats import _EPS, _FPMIN, _MAX_ITER, _gammaincc, chi2_sf
from detectors.base import InvalidInput, as_float_array
from detectors.chi2_test import ChiSquaredDrift
from detectors.ks_test import KSDrift
from detectors.window import DriftTestResult, _new_result

FIELDS = ("ks", 0.125, 0.5, 0.125, False, 0.05, 1000, 500, 5000, None)


@pytest.mark.parametrize("fields", [FIELDS, ("chi2", 3.5, 0.01, 0.2, True, 0.05, 10, 20, 40, 3)])
def test_fast_result_is_the_dataclass(fields):
    fast, plain = _new_result(*fields), DriftTestResult(*fields)
    assert type(fast) is DriftTestResult
    assert fast == plain and hash(fast) == hash(plain) and repr(fast) == repr(plain)
    assert vars(fast) == vars(plain) and list(vars(fast)) == list(vars(plain))
    assert fast.to_dict() == plain.to_dict() and DriftTestResult.from_dict(fast.to_dict()) == fast
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


def _series_sum(a, x):  # the compiled loops of detectors._window_kernel, in plain Python
    ap, term = a, 1.0 / a
    total = term
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            return total
    return math.nan


def _cf_h(a, x):
    b = x + 1.0 - a
    c, d = 1.0 / _FPMIN, 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = b + an / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    return math.nan


def test_chi2_sf_compiled_loops_are_bit_identical_to_python_ones():
    rng = np.random.default_rng(3)
    for dof in list(range(1, 40)) + [99, 100, 250]:
        xs = np.concatenate([[0.0, 1e-300, dof, dof + 2.0, math.inf], rng.uniform(0, 3 * dof + 20, 60),
                             10 ** rng.uniform(-10, 4, 30)])
        for x in xs:
            plain = _gammaincc(dof / 2.0, float(x) / 2.0, _series_sum, _cf_h)
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
