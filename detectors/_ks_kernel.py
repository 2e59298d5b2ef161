"""Numba kernel for the two-sample KS statistic of sorted arrays (imported lazily: this module imports
numba). One merge pass instead of the two ``searchsorted`` calls over the concatenated samples of
:func:`detectors._stats.ks_2samp_statistic_numpy`; the supremum is taken over the same points (every
sample value) with the same expression ``|i / n1 - j / n2|``, so the result is bit-identical."""

from __future__ import annotations

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
