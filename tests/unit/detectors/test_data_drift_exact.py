"""The windowed tests' fast paths against the reference formulations of :mod:`detectors._stats`, bit for bit.

KSDrift ranks window values among the reference's distinct values and takes the statistic from rank counts
(no sort), and remembers p-values; the categorical tests and PSI keep the window's counts up to date instead
of a ``bincount`` per test; chi-squared builds its table in a compiled kernel. None of that may change a
single bit of a result: every result here is recomputed from the stream with the one-call formulas
(``ks_2samp_asymp`` on the sorted samples, ``chi2_homogeneity``, ``psi``, ``js_distance``) and compared
with ``==``.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import orjson
import pytest

from detectors import _ks_kernel, ks_test
from detectors._stats import (
    chi2_homogeneity,
    chi2_homogeneity_counts,
    js_distance,
    ks_2samp_asymp,
    ks_2samp_statistic,
    psi,
)
from detectors.base import InvalidInput
from detectors.chi2_test import ChiSquaredDrift
from detectors.js_distance import JSDrift
from detectors.ks_test import KSDrift
from detectors.psi import PSIDrift
from detectors.window import OTHER

NUMERIC_KINDS = ["continuous", "ties", "signed_zeros", "skewed", "constant", "huge", "rounded_shift"]


def numeric_sample(rng, kind, n):
    if kind == "continuous":
        return rng.normal(rng.uniform(-1, 1), 1.0, n)
    if kind == "ties":
        return rng.integers(0, 4, n).astype(float)
    if kind == "signed_zeros":  # -0.0 and 0.0 are one value
        return rng.choice([-0.0, 0.0, 1.0, -1.0], n)
    if kind == "skewed":  # crowds the equal-width buckets of the rank-key search
        return np.round(rng.lognormal(0.0, 2.0, n), 2)
    if kind == "constant":
        return np.full(n, 3.25)
    if kind == "huge":  # the span of the reference overflows to inf
        return rng.choice([-1e308, 1e308, 0.0, 5e-324, -5e-324, 1.5], n)
    x = np.round(rng.normal(0.0, 1.0, n), 3)
    x[n // 2 :] += 0.5
    return x


def category_sample(rng, n):
    pool = ["a", "b", "c", "d", 1, 2.5, True, None, OTHER][: int(rng.integers(1, 10))]
    return [pool[i] for i in rng.integers(0, len(pool), n)]


def feed(det, xs, rng, restore_at=None):
    """Feed ``xs`` in random batch sizes (some as lists), checkpointing once at ``restore_at``."""
    results, i = [], 0
    while i < len(xs):
        if restore_at is not None and i >= restore_at:
            state = orjson.loads(orjson.dumps(det.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
            det = type(det).from_state(state)
            restore_at = None
        size = int(rng.choice([1, 3, 10, 50, 100, 250]))
        chunk = xs[i : i + size]
        results.extend(det.update_many(chunk if rng.random() < 0.5 else list(chunk)))
        i += size
    return det, results


def windows(xs, results, window_size):
    """Each result with the window it tested: positions count the stream values, reference ones included."""
    for r in results:
        yield r, xs[r.position - window_size : r.position]


def random_config(rng, categorical=False):
    kw = {"window_size": int(rng.choice([1, 2, 3, 7, 40, 120]))}
    if rng.random() < 0.3:
        kw["mode"] = "tumbling"
    else:
        kw["step"] = int(rng.choice([1, 5, 13, 100]))
    if categorical:
        kw["max_categories"] = int(rng.choice([1, 3, 100]))
    return kw


@pytest.mark.parametrize("kind", NUMERIC_KINDS)
def test_ks_results_equal_ks_2samp_asymp_on_the_sorted_samples(kind):
    rng = np.random.default_rng(NUMERIC_KINDS.index(kind))
    for trial in range(12):
        kw = random_config(rng)
        xs = numeric_sample(rng, kind, int(rng.integers(300, 1500)))
        if trial % 3 == 0:  # a user-supplied reference
            ref = numeric_sample(rng, kind, int(rng.integers(1, 400)))
            det = KSDrift(reference=ref, **kw)
        else:
            ref = xs[: int(rng.integers(1, 300))]
            det = KSDrift(reference_size=len(ref), **kw)
        det, results = feed(det, xs, rng, restore_at=int(rng.integers(0, len(xs))))
        assert results
        ref_sorted = np.sort(ref)
        for r, window in windows(xs, results, kw["window_size"]):
            d, p = ks_2samp_asymp(ref_sorted, np.sort(window))
            assert (r.statistic, r.p_value, r.distance, r.drift) == (d, p, d, p < det.alpha)


def test_ks_rank_keys_and_counts_stay_equal_to_searchsorted():
    rng = np.random.default_rng(3)
    for kind in NUMERIC_KINDS:
        ref = numeric_sample(rng, kind, 300)
        det = KSDrift(reference=ref, window_size=50, step=7)
        uniq = np.unique(ref)
        for _ in range(30):
            det.update_many(np.concatenate([numeric_sample(rng, kind, 20), rng.choice(uniq, 5)]))
            if det._keys is None:
                continue
            want = np.searchsorted(uniq, det._window, "left") + np.searchsorted(uniq, det._window, "right")
            assert det._keys.tolist() == want.tolist()
            assert det._key_counts.tolist() == np.bincount(want, minlength=2 * uniq.shape[0] + 1).tolist()


@pytest.mark.parametrize("kind", ["continuous", "ties", "signed_zeros", "skewed"])
def test_ks_statistic_from_rank_counts_equals_the_merge_kernel(kind):
    rng = np.random.default_rng(17)
    for _ in range(300):
        n1, n2 = (int(v) for v in rng.integers(1, 200, 2))
        a, b = np.sort(numeric_sample(rng, kind, n1)), numeric_sample(rng, kind, n2)
        uniq = np.unique(a)
        keys = np.searchsorted(uniq, b, "left") + np.searchsorted(uniq, b, "right")
        counts = np.bincount(keys, minlength=2 * uniq.shape[0] + 1).astype(np.int64)
        cum = np.concatenate([[0], np.searchsorted(a, uniq, "right")])
        f1 = cum[(np.arange(counts.shape[0]) + 1) // 2] / n1
        f2 = np.arange(n2 + 1) / n2
        assert _ks_kernel.ks_statistic_counts(counts, f1, f2) == ks_2samp_statistic(a, np.sort(b))


def test_ks_p_value_memo_is_bounded_and_exact(monkeypatch):
    monkeypatch.setattr(ks_test, "_P_VALUE_MEMO_SIZE", 3)
    rng = np.random.default_rng(8)
    xs = numeric_sample(rng, "rounded_shift", 3000)
    det = KSDrift(reference_size=400, window_size=100, step=3)
    results = det.update_many(xs)
    assert len(det._p_values) <= 3
    ref_sorted = np.sort(xs[:400])
    for r, window in windows(xs, results, 100):
        assert (r.statistic, r.p_value) == ks_2samp_asymp(ref_sorted, np.sort(window))


def test_ks_takes_read_only_and_strided_arrays_without_changing_them():
    rng = np.random.default_rng(4)
    base = np.round(rng.normal(size=2000), 2)
    frozen = base.copy()
    frozen.flags.writeable = False
    want = KSDrift(reference_size=300, window_size=80, step=9).update_many(base[::2].copy())
    det = KSDrift(reference_size=300, window_size=80, step=9)
    got = det.update_many(frozen[::2][:400]) + det.update_many(frozen[::2][400:])
    assert got == want
    assert np.array_equal(frozen, base)


def category_buckets(det, values):
    index = {c: i for i, c in enumerate(det.categories)}
    other = int(det.max_categories)
    return np.array([other if (isinstance(v, str) and v == OTHER) else index.get(v, other) for v in values])


@pytest.mark.parametrize("cls", [ChiSquaredDrift, JSDrift])
def test_categorical_results_equal_the_one_call_formulas(cls):
    rng = np.random.default_rng(5)
    for _ in range(20):
        kw = random_config(rng, categorical=True)
        n_ref = int(rng.integers(1, 300))
        xs = category_sample(rng, int(rng.integers(300, 1200)))
        det, results = feed(cls(reference_size=n_ref, **kw), xs, rng, restore_at=int(rng.integers(0, len(xs))))
        n_buckets = int(det.max_categories) + 1
        ref_counts = np.bincount(category_buckets(det, xs[:n_ref]), minlength=n_buckets)
        for r, window in windows(xs, results, kw["window_size"]):
            cur = np.bincount(category_buckets(det, window), minlength=n_buckets)
            if cls is ChiSquaredDrift:
                stat, dof, p, v = chi2_homogeneity(ref_counts, cur)
                assert (r.statistic, r.dof, r.p_value, r.distance, r.drift) == (stat, dof, p, v, p < det.alpha)
            else:
                d = js_distance(ref_counts, cur)
                assert (r.statistic, r.distance, r.drift) == (d, d, d >= det.threshold)


@pytest.mark.parametrize("kind", NUMERIC_KINDS)
def test_psi_results_equal_the_one_call_formula(kind):
    rng = np.random.default_rng(6)
    for _ in range(8):
        kw = random_config(rng)
        n_ref = int(rng.integers(1, 300))
        xs = numeric_sample(rng, kind, int(rng.integers(300, 1200)))
        det = PSIDrift(reference_size=n_ref, n_bins=int(rng.integers(2, 12)), **kw)
        det, results = feed(det, xs, rng, restore_at=int(rng.integers(0, len(xs))))
        edges = det.bin_edges
        n_bins = edges.shape[0] + 1
        ref_counts = np.bincount(np.searchsorted(edges, xs[:n_ref], side="right"), minlength=n_bins)
        for r, window in windows(xs, results, kw["window_size"]):
            cur = np.bincount(np.searchsorted(edges, window, side="right"), minlength=n_bins)
            assert r.statistic == psi(ref_counts, cur, det.epsilon)


def test_chi2_homogeneity_counts_equals_chi2_homogeneity():
    rng = np.random.default_rng(9)
    for _ in range(3000):
        k = int(rng.integers(1, 12))
        ref = rng.integers(0, rng.choice([2, 10, 1000, 10**6]), k)
        cur = rng.integers(0, rng.choice([2, 10, 500]), k)
        zero = rng.random(k) < 0.3  # columns empty in both rows are dropped
        ref[zero], cur[zero] = 0, 0
        try:
            with np.errstate(all="ignore"):
                want = chi2_homogeneity(ref, cur)
        except ValueError:  # an empty row with two or more columns: a NaN statistic has no p-value
            with pytest.raises(ValueError):
                chi2_homogeneity_counts(ref.astype(np.int64), cur.astype(np.int64))
            continue
        assert chi2_homogeneity_counts(ref.astype(np.int64), cur.astype(np.int64)) == want


def test_categorical_fast_encoding_keeps_the_validation():
    det = ChiSquaredDrift(reference=["a", "b"] * 20, window_size=10, step=5)
    twin = ChiSquaredDrift(reference=["a", "b"] * 20, window_size=10, step=5)
    assert det.update_many([np.str_("a"), np.str_("b")] * 5) == twin.update_many(["a", "b"] * 5)
    assert det.update_many(["a", 1, "b", None] * 3) == twin.update_many(["a", 1, "b", None] * 3)
    with pytest.raises(InvalidInput):
        det.update_many(["a", Decimal(1)])
    with pytest.raises(InvalidInput):
        det.update_many(["a", float("nan")])
    dump = lambda d: orjson.dumps(d.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)  # noqa: E731
    assert dump(det) == dump(twin)


# -- pinned on the implementation before the fast paths (np.sort + merge, one bincount per test) ------
def test_default_data_drift_config_results_are_pinned():
    rng = np.random.default_rng(2024)
    x = np.round(np.concatenate([rng.normal(0, 1, 3000), rng.normal(0.25, 1, 1500)]), 2)
    ks = KSDrift(reference_size=1000, window_size=500, step=100, alpha=1e-4)
    res = [r for i in range(0, len(x), 50) for r in ks.update_many(x[i : i + 50].tolist())]
    assert len(res) == 31 and [r.position for r in res if r.drift][:5] == [3400, 3500, 3600, 3700, 3800]
    assert sum(r.drift for r in res) == 11
    assert [(r.position, r.statistic.hex(), r.p_value.hex()) for r in (res[0], res[17], res[-1])] == [
        (1500, "0x1.89374bc6a7ef8p-5", "0x1.b46b28914b2e4p-2"),
        (3200, "0x1.a9fbe76c8b440p-5", "0x1.501e33735d690p-2"),
        (4500, "0x1.1eb851eb851eap-3", "0x1.1bcf853bb7998p-18"),
    ]
    cats = np.array(["a", "b", "c", "d", "e"])
    y = np.concatenate([rng.choice(cats, 3000, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
                        rng.choice(cats, 1500, p=[0.3, 0.3, 0.2, 0.1, 0.1])]).tolist()
    chi = ChiSquaredDrift(reference_size=1000, window_size=500, step=100, alpha=1e-4)
    res = [r for i in range(0, len(y), 50) for r in chi.update_many(y[i : i + 50])]
    assert len(res) == 31 and [r.position for r in res if r.drift][:5] == [3300, 3400, 3500, 3600, 3700]
    assert sum(r.drift for r in res) == 13
    assert [(r.position, r.statistic.hex(), r.p_value.hex(), r.distance.hex(), r.dof)
            for r in (res[0], res[17], res[-1])] == [
        (1500, "0x1.1ebf04d015470p+3", "0x1.fc9c823d1e868p-5", "0x1.3c9559c1673a4p-4", 4),
        (3200, "0x1.ce3e493f24151p+3", "0x1.8957fdc9a6df3p-8", "0x1.91f3d19535607p-4", 4),
        (4500, "0x1.c260d27c33834p+4", "0x1.867880c21ad02p-17", "0x1.188d40fd9e144p-3", 4),
    ]


@pytest.mark.parametrize("cls", [ChiSquaredDrift, JSDrift])
def test_full_category_table_pools_new_strings_like_update_does(cls):
    # once max_categories are named, a batch of strings with unseen ones stays on the fast path
    rng = np.random.default_rng(12)
    xs = [f"user{i}" for i in rng.zipf(1.5, 3000)] + [OTHER, "user1"]
    batch = cls(reference_size=200, window_size=100, step=10, max_categories=20)
    single = cls(reference_size=200, window_size=100, step=10, max_categories=20)
    got = [r for i in range(0, len(xs), 64) for r in batch.update_many(xs[i : i + 64])]
    want = []
    for x in xs:
        single.update(x)
        if single.last_result is not None and single.last_result.position == single.n_seen:
            want.append(single.last_result)
    assert got == want and len(batch.categories) == 20
    dump = lambda d: orjson.dumps(d.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)  # noqa: E731
    assert dump(batch) == dump(single)
