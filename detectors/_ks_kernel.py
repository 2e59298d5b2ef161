"""Numba kernels for the two-sample KS statistic (imported lazily: this module imports numba).

* :func:`ks_statistic_sorted` -- two sorted arrays: one merge pass instead of the two ``searchsorted`` calls
  over the concatenated samples of :func:`detectors._stats.ks_2samp_statistic_numpy`; the supremum is taken
  over the same points (every sample value) with the same expression ``|i / n1 - j / n2|``, so the result is
  bit-identical.
* :func:`push_keyed` / :func:`ks_statistic_counts` -- the windowed test, where the reference is fixed: each
  window value gets its rank among the reference's distinct values once, when it enters the window, and a
  test is one pass over the ``2K + 1`` rank keys (``K`` distinct reference values) with no sort of the
  window. Same result as the merge kernel, bit for bit (argument in :func:`ks_statistic_counts`).
  :func:`ingest_keyed` runs them for a whole batch in one call.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def ks_statistic_sorted(a, b):
    n1 = a.shape[0]
    n2 = b.shape[0]
    i = 0
    j = 0
    d = 0.0
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and a[i] <= b[j]):
            x = a[i]
        else:
            x = b[j]
        while i < n1 and a[i] <= x:
            i += 1
        while j < n2 and b[j] <= x:
            j += 1
        v = abs(i / n1 - j / n2)
        if v > d:
            d = v
    return d


# -- the windowed test (:class:`detectors.ks_test.KSDrift`): window values kept as rank keys ---------------
# With the reference's distinct values u_1 < ... < u_K, a value x gets the key 2k - 1 if x == u_k and 2k if
# u_k < x < u_{k+1} (u_0 = -inf, u_{K+1} = +inf), i.e. ``searchsorted(u, x, "left") +
# searchsorted(u, x, "right")``. Keys order values as the values do, up to ties inside one gap.
#
# Finding k: a binary search over ~1000 values costs ~35 ns (ten mispredicted branches), so the range of u
# is cut into equal-width buckets (about two per value) and ``starts[g]`` is the number of u in buckets
# before g; the search is then over the few u of x's own bucket (~6 ns; skewed data crowds some buckets).
# The bucket of a value is a monotonic function of it (rounded subtraction and multiplication are
# monotonic, so are clipping and truncation), so every u in an earlier bucket is <= x and every u in a
# later one is > x: the count is exact whatever the rounding. ``grid`` is ``(lo, scale)``; ``scale == 0``
# (one distinct value, or a span that overflows) puts everything in bucket 0.


@njit(cache=True)
def bucket_of(x, lo, scale, g_max):
    if scale == 0.0:
        return 0
    t = (x - lo) * scale
    if t <= 0.0:
        return 0
    if t >= g_max:  # also +inf when x - lo overflows
        return g_max
    return int(t)


@njit(cache=True)
def bucket_starts(uniq, lo, scale, n_buckets):
    """``starts[g]`` = number of ``uniq`` values in buckets ``< g``, for ``g = 0 .. n_buckets``."""
    starts = np.zeros(n_buckets + 1, dtype=np.int64)
    for i in range(uniq.shape[0]):
        starts[bucket_of(uniq[i], lo, scale, n_buckets - 1) + 1] += 1
    for g in range(1, n_buckets + 1):
        starts[g] += starts[g - 1]
    return starts


@njit(cache=True)
def rank_key(upad, starts, lo, scale, x):
    """Key of ``x``; ``upad`` is ``[-inf, u_1, ..., u_K, +inf, +inf]`` (see above)."""
    g = bucket_of(x, lo, scale, starts.shape[0] - 2)
    a = starts[g]  # the number of u <= x is in [starts[g], starts[g + 1]]; u_i is upad[i]
    b = starts[g + 1]
    while b - a > 2:  # rare: a crowded bucket
        mid = (a + b) >> 1
        if upad[mid + 1] <= x:
            a = mid + 1
        else:
            b = mid
    # at most two candidates left, counted without branches (mispredicted branches are the cost here);
    # the +inf sentinels make the reads safe, the -inf one makes "u_0 == x" false
    k = a + ((a < b) & (upad[a + 1] <= x)) + ((a + 1 < b) & (upad[a + 2] <= x))
    return 2 * k - (upad[k] == x)


@njit(cache=True)
def push_keyed(window, keys, counts, upad, starts, grid, pos, chunk):
    """Write ``chunk`` into the full ring ``window`` from ``pos``, keeping ``keys[i]`` = key of ``window[i]``
    and ``counts[t]`` = number of window values with key ``t``. Returns the next write position."""
    w = window.shape[0]
    lo = grid[0]
    scale = grid[1]
    for i in range(chunk.shape[0]):
        x = chunk[i]
        t = rank_key(upad, starts, lo, scale, x)
        counts[keys[pos]] -= 1
        counts[t] += 1
        keys[pos] = t
        window[pos] = x
        pos += 1
        if pos == w:
            pos = 0
    return pos


@njit(cache=True)
def ks_statistic_counts(counts, f1, f2):
    """``sup |F_ref - F_cur|`` from the window's key counts; bit-identical to :func:`ks_statistic_sorted`.

    ``f1[t]`` is ``i / n1`` with ``i`` the number of reference values <= any value of key ``t``, ``f2[j]`` is
    ``j / n2``. With ``j`` the number of window values of key <= ``t``, ``|f1[t] - f2[j]|`` is the merge
    kernel's ``|i / n1 - j / n2|`` at the point ``u_k`` (odd ``t``) or at the largest window value of gap ``k``
    (even ``t``; if the gap holds none, the value at ``u_k`` again, or 0 for ``t = 0``). The merge's other
    points are window values inside a gap before its largest one: there ``i`` is fixed and ``j`` lies between
    its values at ``u_k`` and at the largest one, and ``|fl(c - fl(j / n2))|`` is largest at an end of a
    range of ``j`` (rounded division and subtraction are monotonic). So the maximum is the same float."""
    n = counts.shape[0]
    j = 0
    d0 = 0.0
    d1 = 0.0
    t = 0
    # two accumulators: the max is exact, so the order does not matter, and the loop-carried chain halves
    while t + 1 < n:
        j += counts[t]
        v = abs(f1[t] - f2[j])
        if v > d0:
            d0 = v
        j += counts[t + 1]
        v = abs(f1[t + 1] - f2[j])
        if v > d1:
            d1 = v
        t += 2
    if t < n:
        j += counts[t]
        v = abs(f1[t] - f2[j])
        if v > d0:
            d0 = v
    return d0 if d0 > d1 else d1


@njit(cache=True)
def ingest_keyed(window, keys, counts, upad, starts, grid, f1, f2, pos, until, step, chunk, stats):
    """A whole batch of the tracked window in one call (the per-call overhead is what costs on small batches):
    ``push_keyed`` of ``chunk`` in runs of ``until`` values, then of ``step``, with ``ks_statistic_counts``
    written to ``stats[0], stats[1], ...`` after each run (``stats`` needs ``chunk.shape[0] // step + 1``
    slots). Returns ``(number of tests, pos, until)``; ``(-1, pos, until)``, with nothing changed, if the chunk
    holds a non-finite value."""
    n = chunk.shape[0]
    for i in range(n):
        if not np.isfinite(chunk[i]):
            return -1, pos, until
    n_tests = 0
    j = 0
    while n - j >= until:
        pos = push_keyed(window, keys, counts, upad, starts, grid, pos, chunk[j : j + until])
        j += until
        stats[n_tests] = ks_statistic_counts(counts, f1, f2)
        n_tests += 1
        until = step
    pos = push_keyed(window, keys, counts, upad, starts, grid, pos, chunk[j:])
    return n_tests, pos, until - (n - j)
