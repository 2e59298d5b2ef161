"""Special functions and two-sample statistics for the windowed data-drift tests.

Everything here is plain ``math``/numpy so that :mod:`detectors` never imports scipy. The functions are
cross-checked against scipy in ``tests/unit/detectors/test_stats.py``.

* :func:`kolmogorov_sf` -- survival function of Kolmogorov's limiting distribution,
  ``Q(x) = 2 * sum_{k>=1} (-1)**(k-1) * exp(-2 k**2 x**2)``. For ``x < 1`` the alternating series converges
  slowly, so the CDF is taken from the equivalent Jacobi-theta form
  ``K(x) = sqrt(2 pi) / x * sum_{k>=1} exp(-(2k-1)**2 pi**2 / (8 x**2))`` and ``Q = 1 - K``.
  (Kolmogorov 1933; Marsaglia, Tsang & Wang, "Evaluating Kolmogorov's distribution", J. Stat. Softw. 8(18),
  2003; Press et al., *Numerical Recipes* 3rd ed., section 14.3.3.) Same as ``scipy.special.kolmogorov``
  and ``scipy.stats.kstwobign.sf``.
* :func:`gammaincc` -- regularized upper incomplete gamma ``Q(a, x) = Gamma(a, x) / Gamma(a)``, by the power
  series for ``P = 1 - Q`` when ``x < a + 1`` and by Legendre's continued fraction (modified Lentz) otherwise
  (*Numerical Recipes* 3rd ed., section 6.2). :func:`chi2_sf` is ``Q(dof/2, x/2)``.
* :func:`ks_2samp_asymp` -- two-sample Kolmogorov-Smirnov statistic ``D = sup |F_ref - F_cur|`` (computed as in
  ``scipy.stats.ks_2samp``) and the asymptotic p-value ``Q(sqrt(n m / (n + m)) * D)`` (Smirnov 1948).
  Note: ``scipy.stats.ks_2samp(method='asymp')`` (scipy >= 1.5) uses the finite-n one-sample distribution
  ``kstwo.sf(D, round(nm/(n+m)))`` instead of its limit; the two agree to a few percent for the window sizes
  used in streaming (hundreds of values) and the limit is slightly conservative.
* :func:`chi2_homogeneity` -- Pearson's chi-squared test of homogeneity on the 2 x k table (reference counts,
  current counts), without Yates' correction, as ``scipy.stats.chi2_contingency(correction=False)``; columns
  empty in both rows are dropped. :func:`chi2_homogeneity_counts` is the same for int64 counts, bit for bit,
  with the table and the p-value's loops compiled (what the detector calls once per test).
* :func:`js_distance` -- Jensen-Shannon distance, base 2 (Lin 1991; Endres & Schindelin 2003), in [0, 1], as
  ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
* :func:`psi` -- Population Stability Index ``sum (q - p) * ln(q / p)`` over binned proportions, with
  proportions below ``epsilon`` raised to ``epsilon`` so empty bins do not give infinities (Yurdakul,
  "Statistical properties of population stability index", 2018).

>>> round(kolmogorov_sf(1.36), 4)      # the classic 5% critical value
0.0495
>>> round(chi2_sf(3.841458820694124, 1), 6)
0.05
>>> d, p = ks_2samp_asymp(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
>>> d, p
(0.0, 1.0)
>>> js_distance(np.array([1, 0]), np.array([0, 1]))
1.0
"""

from __future__ import annotations

import math

import numpy as np

from detectors.base import kernel_module

_EPS = 1e-16
_FPMIN = 1e-300
_MAX_ITER = 100_000
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def kolmogorov_sf(x: float) -> float:
    """``P(K > x)`` for Kolmogorov's limiting distribution ``K = lim sqrt(n) D_n``."""
    x = float(x)
    if math.isnan(x):
        raise ValueError("kolmogorov_sf of NaN")
    if x <= 0.0:
        return 1.0
    if x < 1.0:
        # theta-function form of the CDF: terms fall like exp(-(2k-1)^2 * c) with c >= pi^2/8.
        c = -(math.pi**2) / (8.0 * x * x)
        total = 0.0
        for k in range(1, _MAX_ITER):
            term = math.exp(c * (2 * k - 1) ** 2)
            total += term
            if term <= _EPS * total or term == 0.0:
                break
        return min(1.0, max(0.0, 1.0 - _SQRT_2PI / x * total))
    total = 0.0
    sign = 1.0
    for k in range(1, _MAX_ITER):
        term = math.exp(-2.0 * k * k * x * x)
        total += sign * term
        if term <= _EPS * abs(total) or term == 0.0:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


def _log_prefactor(a: float, x: float) -> float:
    return -x + a * math.log(x) - math.lgamma(a)


def gammaincc(a: float, x: float) -> float:
    """Regularized upper incomplete gamma function ``Q(a, x)``, for ``a > 0`` and ``x >= 0``. Its two loops
    (the power series of ``P`` and Legendre's continued fraction of ``Q``, modified Lentz) are compiled:
    :func:`detectors._window_kernel.gammainc_series_sum` / ``gammaincc_cf_h``."""
    kernel = kernel_module("detectors._window_kernel")
    return _gammaincc(a, x, kernel.gammainc_series_sum, kernel.gammaincc_cf_h)


def _gammaincc(a: float, x: float, series_sum, cf_h) -> float:
    """:func:`gammaincc` with its two loops passed in (``series_sum(a, x)``: the power series of the lower
    regularized ``P(a, x) = series * exp(_log_prefactor(a, x))``, for ``x < a + 1``; ``cf_h(a, x)``: the
    continued fraction with ``Q(a, x) = exp(_log_prefactor(a, x)) * cf``; NaN when they do not converge).
    The tests pass plain Python loops and compare bit for bit."""
    a = float(a)
    x = float(x)
    if not a > 0.0 or math.isinf(a):
        raise ValueError(f"gammaincc needs a finite a > 0, got {a!r}")
    if not x >= 0.0:
        raise ValueError(f"gammaincc needs x >= 0, got {x!r}")
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        total = series_sum(a, x)
        if math.isnan(total):  # pragma: no cover
            raise ArithmeticError(f"gammainc series did not converge for a={a}, x={x}")
        return min(1.0, max(0.0, 1.0 - total * math.exp(_log_prefactor(a, x))))
    h = cf_h(a, x)
    if math.isnan(h):  # pragma: no cover
        raise ArithmeticError(f"gammaincc continued fraction did not converge for a={a}, x={x}")
    return min(1.0, max(0.0, math.exp(_log_prefactor(a, x)) * h))


def chi2_sf(x: float, dof: int) -> float:
    """``P(X > x)`` for ``X ~ chi2(dof)``; ``dof = 0`` (a degenerate table) gives 1."""
    if dof == 0:
        return 1.0
    return gammaincc(dof / 2.0, max(float(x), 0.0) / 2.0)


def ks_2samp_statistic(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """``sup_x |F_ref(x) - F_cur(x)|`` for two *sorted*, non-empty, NaN-free float arrays (one merge pass,
    compiled; equal to :func:`ks_2samp_statistic_numpy`)."""
    from detectors._ks_kernel import ks_statistic_sorted  # lazy: imports numba

    return float(ks_statistic_sorted(np.ascontiguousarray(ref_sorted, dtype=np.float64),
                                     np.ascontiguousarray(cur_sorted, dtype=np.float64)))


def ks_2samp_statistic_numpy(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """The reference formulation (as in SciPy's ``ks_2samp``): both empirical CDFs at every sample value."""
    data_all = np.concatenate([ref_sorted, cur_sorted])
    cdf1 = np.searchsorted(ref_sorted, data_all, side="right") / ref_sorted.shape[0]
    cdf2 = np.searchsorted(cur_sorted, data_all, side="right") / cur_sorted.shape[0]
    return float(np.max(np.abs(cdf1 - cdf2)))


def ks_2samp_asymp(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sided two-sample KS statistic and its asymptotic (Kolmogorov) p-value; inputs sorted."""
    d = ks_2samp_statistic(ref_sorted, cur_sorted)
    n1 = float(ref_sorted.shape[0])
    n2 = float(cur_sorted.shape[0])
    en = n1 * n2 / (n1 + n2)
    return d, kolmogorov_sf(math.sqrt(en) * d)


def chi2_homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, int, float, float]:
    """Pearson chi-squared test of homogeneity of two count vectors over the same categories.

    Returns ``(statistic, dof, p_value, cramers_v)``; categories with zero count in both rows are dropped,
    and a table with fewer than two non-empty columns gives ``(0.0, 0, 1.0, 0.0)``.
    """
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    keep = (ref + cur) > 0
    ref = ref[keep]
    cur = cur[keep]
    k = int(ref.shape[0])
    if k < 2:
        return 0.0, 0, 1.0, 0.0
    observed = np.stack([ref, cur])
    row = observed.sum(axis=1, keepdims=True)
    col = observed.sum(axis=0, keepdims=True)
    total = float(observed.sum())
    expected = row * col / total
    stat = float(np.sum((observed - expected) ** 2 / expected))
    dof = k - 1
    return stat, dof, chi2_sf(stat, dof), math.sqrt(stat / total)


def chi2_homogeneity_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, int, float, float]:
    """:func:`chi2_homogeneity` of two int64 count vectors of one length, with the table built by a compiled
    kernel (:func:`detectors._window_kernel.chi2_statistic`: same operations, then the same sum as ``np.sum``),
    so the result is bit-identical at a fraction of the cost of a dozen small numpy calls."""
    stat, dof, cramers_v = chi2_table_counts(ref_counts, cur_counts)
    return stat, dof, chi2_sf(stat, dof), cramers_v


def chi2_table_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, int, float]:
    """``(statistic, dof, cramers_v)`` of :func:`chi2_homogeneity_counts`: all but the p-value, which is
    ``chi2_sf(statistic, dof)`` (1.0 for a table with fewer than two non-empty columns, where ``dof = 0``)."""
    stat, k, total = kernel_module("detectors._window_kernel").chi2_statistic(ref_counts, cur_counts)
    if k < 2:
        return 0.0, 0, 0.0
    return stat, k - 1, math.sqrt(stat / total)


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two non-negative count (or weight) vectors."""
    return js_distance_of_proportions(proportions(p_counts), proportions(q_counts))


def proportions(counts: np.ndarray) -> np.ndarray:
    """``counts / counts.sum()`` as float64 (a detector keeps the reference's)."""
    c = np.asarray(counts, dtype=np.float64)
    return c / c.sum()


def js_distance_of_proportions(p: np.ndarray, q: np.ndarray) -> float:
    """:func:`js_distance` for two :func:`proportions` vectors."""
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    js = (float(np.sum(left)) + float(np.sum(right))) / math.log(2.0)
    return math.sqrt(max(js / 2.0, 0.0))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float) -> float:
    """Population Stability Index between two count vectors over the same bins."""
    return psi_of_proportions(psi_proportions(ref_counts, epsilon), psi_proportions(cur_counts, epsilon))


def psi_proportions(counts: np.ndarray, epsilon: float) -> np.ndarray:
    """Bin proportions raised to at least ``epsilon``, as :func:`psi` uses them (a detector keeps the
    reference's)."""
    c = np.asarray(counts, dtype=np.float64)
    return np.maximum(c / c.sum(), epsilon)


def psi_of_proportions(p: np.ndarray, q: np.ndarray) -> float:
    """``sum (q - p) * ln(q / p)`` for :func:`psi_proportions` ``p`` (reference) and ``q`` (current)."""
    return float(np.sum((q - p) * np.log(q / p)))
