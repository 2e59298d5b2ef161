"""Numba kernels of the windowed two-sample tests (imported lazily: this module imports numba).

* :func:`push_counted` -- write a chunk of small non-negative ints (category buckets, PSI bins) into the
  ring buffer and keep the per-value counts of the window up to date, so a test needs no ``np.bincount`` of
  the whole window. Values are written one by one at ``pos, pos + 1, ...`` (mod the window size), which
  leaves the buffer exactly as the slice writes of :meth:`detectors.window.WindowedDriftTest._push`.
* :func:`chi2_terms` -- the table of Pearson terms ``(O - E)**2 / E`` of
  :func:`detectors._stats.chi2_homogeneity`, element by element with the same IEEE operations in the same
  order (row, column and grand totals are sums of integers, hence exact in any order), so that ``np.sum``
  of it is bit-identical to that function's statistic.
* :func:`chi2_statistic` -- the sum of those terms as ``np.sum`` adds them (:func:`numpy_sum`), in the same
  call.
* :func:`gammainc_series_sum` / :func:`gammaincc_cf_h` -- the loops of :func:`detectors._stats.gammaincc`
  (and so of ``chi2_sf``). No fast-math: no contraction into fused multiply-adds and no reassociation, hence
  the same floats as the same loops in plain Python (tested against such a copy).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from detectors._stats import _EPS, _FPMIN, _MAX_ITER


@njit(cache=True)
def push_counted(window, counts, pos, chunk):
    """Write ``chunk`` into the ring ``window`` from ``pos``; ``counts[v]`` = occurrences of ``v`` in it.

    The window must be full (every slot counted). Returns the next write position."""
    w = window.shape[0]
    for t in range(chunk.shape[0]):
        v = chunk[t]
        counts[window[pos]] -= 1
        counts[v] += 1
        window[pos] = v
        pos += 1
        if pos == w:
            pos = 0
    return pos


@njit(cache=True, error_model="numpy")
def chi2_terms(ref_counts, cur_counts):
    """``((O - E)**2 / E, N)`` for the 2 x k table of the columns non-empty in either row; ``k`` may be < 2.

    An empty row gives 0 / 0 = NaN terms, as numpy does (``error_model="numpy"``: no ZeroDivisionError)."""
    m = ref_counts.shape[0]
    k = 0
    row0 = 0.0
    row1 = 0.0
    for i in range(m):
        if ref_counts[i] + cur_counts[i] > 0:
            k += 1
            row0 += ref_counts[i]
            row1 += cur_counts[i]
    total = row0 + row1
    terms = np.empty((2, k), dtype=np.float64)
    c = 0
    for i in range(m):
        if ref_counts[i] + cur_counts[i] > 0:
            o0 = float(ref_counts[i])
            o1 = float(cur_counts[i])
            col = o0 + o1
            e0 = row0 * col / total
            e1 = row1 * col / total
            d0 = o0 - e0
            d1 = o1 - e1
            terms[0, c] = d0 * d0 / e0
            terms[1, c] = d1 * d1 / e1
            c += 1
    return terms, total


@njit(cache=True)
def numpy_sum(a):
    """``np.add.reduce(a)`` of a contiguous 1-D float64 array, bit for bit (tested): ``0.0 +`` numpy's pairwise
    summation, which splits the array in halves cut at a multiple of 8 until at most 128 values are left and
    sums those with :func:`_block_sum`. The recursion runs on an explicit stack: numba does not load a cached
    recursive function called from another one."""
    start_of = np.empty(192, dtype=np.int64)  # pending parts; size -1 means "add the last two partial sums"
    size_of = np.empty(192, dtype=np.int64)  # (a split adds 3 entries per level, 2**63 values need < 64 levels)
    sums = np.empty(96, dtype=np.float64)
    start_of[0] = 0
    size_of[0] = a.shape[0]
    n_parts = 1
    n_sums = 0
    while n_parts > 0:
        n_parts -= 1
        start = start_of[n_parts]
        n = size_of[n_parts]
        if n < 0:
            n_sums -= 1
            sums[n_sums - 1] = sums[n_sums - 1] + sums[n_sums]
        elif n <= 128:
            sums[n_sums] = _block_sum(a, start, n)
            n_sums += 1
        else:  # left half, then right half, then their sum (pushed in reverse)
            half = n // 2
            half -= half % 8
            start_of[n_parts] = 0
            size_of[n_parts] = -1
            start_of[n_parts + 1] = start + half
            size_of[n_parts + 1] = n - half
            start_of[n_parts + 2] = start
            size_of[n_parts + 2] = half
            n_parts += 3
    return 0.0 + sums[0]


@njit(cache=True)
def _block_sum(a, start, n):
    """numpy's ``pairwise_sum`` of at most 128 values: a plain loop below 8, else eight interleaved
    accumulators combined as a tree, then the rest one by one."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = start + 8
    end8 = start + n - n % 8
    while i < end8:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        res += a[i]
        i += 1
    return res


@njit(cache=True, error_model="numpy")
def chi2_statistic(ref_counts, cur_counts):
    """``(float(np.sum(terms)), k, N)`` for ``terms, N = chi2_terms(...)`` with ``k`` columns, in one call."""
    terms, total = chi2_terms(ref_counts, cur_counts)
    return numpy_sum(terms.reshape(terms.size)), terms.shape[1], total


@njit(cache=True)
def gammainc_series_sum(a, x):
    """The power series of the lower regularized ``P(a, x) = series * exp(_log_prefactor(a, x))``
    (converges quickly for ``x < a + 1``); NaN if it does not converge."""
    ap = a
    term = 1.0 / a
    total = term
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            return total
    return np.nan


@njit(cache=True)
def gammaincc_cf_h(a, x):
    """Legendre's continued fraction of the upper regularized ``Q(a, x) = exp(_log_prefactor(a, x)) * cf``,
    modified Lentz (``x >= a + 1``); NaN if it does not converge."""
    b = x + 1.0 - a
    c = 1.0 / _FPMIN
    d = 1.0 / b
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
    return np.nan
