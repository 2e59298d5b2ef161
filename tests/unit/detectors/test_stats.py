"""Cross-checks of detectors._stats against scipy, plus the modules' doctests."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from detectors import _stats, chi2_test, js_distance, ks_test, psi, window
from detectors._stats import (
    chi2_homogeneity,
    chi2_sf,
    gammaincc,
    js_distance as js_dist,
    kolmogorov_sf,
    ks_2samp_asymp,
    ks_2samp_statistic,
    psi as psi_value,
)

REPO = Path(__file__).resolve().parents[3]


# -- Kolmogorov distribution ----------------------------------------------------------------------
def test_kolmogorov_sf_matches_scipy_on_a_dense_grid():
    xs = np.concatenate([np.linspace(0.0, 9.0, 9001), [1e-3, 0.04, 0.99999999, 1.0, 1.00000001, 27.0]])
    ours = np.array([kolmogorov_sf(x) for x in xs])
    ref = special.kolmogorov(xs)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(ours, stats.kstwobign.sf(xs), rtol=1e-9, atol=1e-300)


def test_kolmogorov_sf_limits_and_nan():
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(-1.0) == 1.0
    assert kolmogorov_sf(50.0) == 0.0
    with pytest.raises(ValueError):
        kolmogorov_sf(float("nan"))


# -- incomplete gamma -----------------------------------------------------------------------------
def test_gammaincc_matches_scipy_on_random_inputs():
    rng = np.random.default_rng(12)
    a = np.concatenate([rng.uniform(0.01, 3.0, 3000), rng.uniform(0.5, 600.0, 3000), rng.integers(1, 400, 3000) / 2])
    scale = rng.choice([0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 3.0], size=a.shape[0])
    x = a * scale * rng.uniform(0.8, 1.2, a.shape[0])
    ref = special.gammaincc(a, x)
    ours = np.array([gammaincc(ai, xi) for ai, xi in zip(a, x)])
    ok = ref > 1e-290  # below that scipy and we both underflow differently; not a useful p-value range
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9)
    assert np.all(ours[~ok] < 1e-280)


def test_gammaincc_edges():
    assert gammaincc(2.5, 0.0) == 1.0
    assert gammaincc(2.5, math.inf) == 0.0
    for bad_a, bad_x in [(0.0, 1.0), (-1.0, 1.0), (math.nan, 1.0), (1.0, -0.5), (1.0, math.nan)]:
        with pytest.raises(ValueError):
            gammaincc(bad_a, bad_x)


def test_chi2_sf_matches_scipy():
    rng = np.random.default_rng(5)
    for dof in range(1, 120):
        xs = rng.uniform(0.0, 4.0 * dof + 20.0, 10)
        np.testing.assert_allclose([chi2_sf(x, dof) for x in xs], stats.chi2.sf(xs, dof), rtol=1e-9, atol=1e-300)
    assert chi2_sf(3.0, 0) == 1.0


# -- KS two-sample --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["continuous", "ties", "shifted"])
def test_ks_statistic_and_asymptotic_p_value_match_scipy(kind):
    rng = np.random.default_rng({"continuous": 1, "ties": 2, "shifted": 3}[kind])
    for _ in range(300):
        n1, n2 = (int(v) for v in rng.integers(1, 400, 2))
        if kind == "ties":
            a, b = rng.integers(0, 5, n1).astype(float), rng.integers(0, 6, n2).astype(float)
        else:
            shift = rng.uniform(0, 0.8) if kind == "shifted" else 0.0
            a, b = rng.normal(size=n1), rng.normal(shift, 1.0, n2)
        d, p = ks_2samp_asymp(np.sort(a), np.sort(b))
        ref = stats.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(float(ref.statistic), rel=1e-12, abs=1e-15)
        # same formula: Kolmogorov's limiting distribution at sqrt(n m / (n + m)) D
        en = n1 * n2 / (n1 + n2)
        assert p == pytest.approx(float(stats.kstwobign.sf(math.sqrt(en) * d)), rel=1e-9, abs=1e-300)
        # scipy's 'asymp' uses the finite-n distribution kstwo(round(en)); close for moderate samples
        if en >= 75:
            assert abs(p - float(ref.pvalue)) < 0.05


def test_ks_identical_constant_samples():
    a = np.full(10, 3.0)
    assert ks_2samp_statistic(a, a[:4]) == 0.0
    assert ks_2samp_asymp(a, a[:4]) == (0.0, 1.0)
    d, p = ks_2samp_asymp(a, np.full(10, 4.0))
    assert d == 1.0 and p < 0.001


# -- chi-squared homogeneity ----------------------------------------------------------------------
def test_chi2_homogeneity_matches_chi2_contingency():
    rng = np.random.default_rng(8)
    for _ in range(400):
        k = int(rng.integers(2, 30))
        ref = rng.multinomial(int(rng.integers(5, 2000)), rng.dirichlet(np.ones(k)))
        cur = rng.multinomial(int(rng.integers(5, 2000)), rng.dirichlet(np.ones(k) * rng.uniform(0.2, 5)))
        keep = (ref + cur) > 0
        stat, dof, p, v = chi2_homogeneity(ref, cur)
        table = np.stack([ref[keep], cur[keep]])
        if table.shape[1] < 2:
            assert (stat, dof, p) == (0.0, 0, 1.0)
            continue
        res = stats.chi2_contingency(table, correction=False)
        assert dof == res.dof == table.shape[1] - 1
        assert stat == pytest.approx(res.statistic, rel=1e-9, abs=1e-12)
        assert p == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)
        assert v == pytest.approx(stats.contingency.association(table, method="cramer"), rel=1e-9, abs=1e-12)


def test_chi2_homogeneity_degenerate_tables():
    assert chi2_homogeneity(np.array([5, 0]), np.array([3, 0])) == (0.0, 0, 1.0, 0.0)
    # a category only in the current sample: one column with a zero reference count
    stat, dof, p, _ = chi2_homogeneity(np.array([10, 10, 0]), np.array([10, 10, 10]))
    res = stats.chi2_contingency(np.array([[10, 10, 0], [10, 10, 10]]), correction=False)
    assert dof == 2 and stat == pytest.approx(res.statistic, rel=1e-12) and p == pytest.approx(res.pvalue, rel=1e-9)


# -- Jensen-Shannon -------------------------------------------------------------------------------
def test_js_distance_matches_scipy():
    rng = np.random.default_rng(9)
    for _ in range(500):
        k = int(rng.integers(1, 40))
        p = rng.multinomial(int(rng.integers(1, 500)), rng.dirichlet(np.ones(k) * 0.5))
        q = rng.multinomial(int(rng.integers(1, 500)), rng.dirichlet(np.ones(k) * 0.5))
        ours = js_dist(p, q)
        assert 0.0 <= ours <= 1.0
        assert ours == pytest.approx(float(jensenshannon(p, q, base=2)), rel=1e-9, abs=1e-10)
    assert js_dist(np.array([3, 0]), np.array([0, 7])) == pytest.approx(1.0, rel=1e-15)
    assert js_dist(np.array([2, 4]), np.array([1, 2])) == 0.0


# -- PSI ------------------------------------------------------------------------------------------
def _psi_by_hand(ref_counts, cur_counts, eps):
    total_r, total_c = sum(ref_counts), sum(cur_counts)
    out = 0.0
    for r, c in zip(ref_counts, cur_counts):
        p, q = max(r / total_r, eps), max(c / total_c, eps)
        out += (q - p) * math.log(q / p)
    return out


def test_psi_matches_textbook_formula():
    rng = np.random.default_rng(10)
    for _ in range(300):
        k = int(rng.integers(2, 20))
        ref = rng.multinomial(int(rng.integers(1, 1000)), rng.dirichlet(np.ones(k)))
        cur = rng.multinomial(int(rng.integers(1, 1000)), rng.dirichlet(np.ones(k)))
        eps = float(rng.choice([1e-6, 1e-4, 1e-2]))
        assert psi_value(ref, cur, eps) == pytest.approx(_psi_by_hand(ref, cur, eps), rel=1e-9, abs=1e-15)
    assert psi_value(np.array([5, 5]), np.array([1, 1]), 1e-4) == 0.0


# -- doctests and purity --------------------------------------------------------------------------
@pytest.mark.parametrize("module", [_stats, window, ks_test, psi, chi2_test, js_distance])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_detectors_work_without_scipy():
    # SciPy is a test dependency only. numba probes for it at import (a version check), so "never
    # imported" is not the property; "works when it is not installed" is.
    code = (
        "import sys\nsys.modules['scipy'] = None  # any import of scipy now raises ImportError\n"
        "import numpy as np\n"
        "from detectors.ks_test import KSDrift\nfrom detectors.psi import PSIDrift\n"
        "from detectors.chi2_test import ChiSquaredDrift\nfrom detectors.js_distance import JSDrift\n"
        "x = np.random.default_rng(0).normal(size=300)\n"
        "KSDrift(reference_size=100, window_size=50).update_many(x)\n"
        "PSIDrift(reference_size=100, window_size=50).update_many(x)\n"
        "ChiSquaredDrift(reference_size=100, window_size=50).update_many((x > 0).tolist())\n"
        "JSDrift(reference_size=100, window_size=50).update_many((x > 0).tolist())\n"
        "import detectors\ndetectors.warm_up()\n"
        "assert sys.modules['scipy'] is None\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.parametrize("kind", ["continuous", "ties", "shifted", "zeros"])
def test_ks_merge_kernel_is_bit_identical_to_the_searchsorted_formulation(kind):
    from detectors._stats import ks_2samp_statistic_numpy

    rng = np.random.default_rng(11)
    for _ in range(400):
        n1, n2 = (int(v) for v in rng.integers(1, 300, 2))
        if kind == "ties":
            a, b = rng.integers(0, 4, n1).astype(float), rng.integers(0, 5, n2).astype(float)
        elif kind == "zeros":  # -0.0 and 0.0 are one value for both
            a, b = rng.choice([-0.0, 0.0, 1.0], n1), rng.choice([0.0, -0.0, 2.0], n2)
        else:
            a, b = rng.normal(size=n1), rng.normal(rng.uniform(0, 1) if kind == "shifted" else 0.0, 1.0, n2)
        a, b = np.sort(a), np.sort(b)
        assert ks_2samp_statistic(a, b) == ks_2samp_statistic_numpy(a, b)
