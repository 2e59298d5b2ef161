"""Numba kernel for :class:`detectors.kswin.KSWIN` (imported lazily: this module imports numba).

It reproduces, draw for draw, what River's ``KSWIN.update`` does with ``random.Random(seed)``:
CPython's Mersenne Twister (``genrand_uint32``), ``getrandbits(k)`` (top ``k`` bits of one 32-bit draw),
``_randbelow`` (rejection sampling) and ``Random.sample`` (pool method or set method, chosen exactly as
CPython does). The two-sample KS statistic is computed as an integer ``h = max |c1 - c2|`` over the
merged sorted samples, which is what ``scipy.stats.ks_2samp`` rounds its statistic to for equal sample
sizes; the p-value comes from a table indexed by ``h`` (see ``detectors.kswin``).

``istate = [head, length, n, drift_flag, mt_index]``; ``win`` is a ring buffer holding River's deque
(``win[(head + r) % window_size]`` is ``deque[r]``); ``mt`` holds the 624 Mersenne Twister words.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_N = 624
_M = 397
_MATRIX_A = 0x9908B0DF
_UPPER = 0x80000000
_LOWER = 0x7FFFFFFF
_MASK32 = 0xFFFFFFFF


@njit(cache=True, inline="always")
def _genrand_uint32(mt, mti):
    """CPython's ``genrand_uint32``; returns ``(value, new_index)``. Words are kept in int64."""
    if mti >= _N:
        for kk in range(_N - _M):
            y = (mt[kk] & _UPPER) | (mt[kk + 1] & _LOWER)
            mt[kk] = mt[kk + _M] ^ (y >> 1) ^ (_MATRIX_A if (y & 1) else 0)
        for kk in range(_N - _M, _N - 1):
            y = (mt[kk] & _UPPER) | (mt[kk + 1] & _LOWER)
            mt[kk] = mt[kk + (_M - _N)] ^ (y >> 1) ^ (_MATRIX_A if (y & 1) else 0)
        y = (mt[_N - 1] & _UPPER) | (mt[0] & _LOWER)
        mt[_N - 1] = mt[_M - 1] ^ (y >> 1) ^ (_MATRIX_A if (y & 1) else 0)
        mti = 0
    y = mt[mti]
    mti += 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C5680
    y ^= (y << 15) & 0xEFC60000
    y ^= y >> 18
    return y & _MASK32, mti


@njit(cache=True, inline="always")
def _randbelow(n, mt, mti):
    """CPython's ``Random._randbelow_with_getrandbits(n)`` for ``0 < n < 2**32``."""
    k = 0
    v = n
    while v:
        k += 1
        v >>= 1
    r, mti = _genrand_uint32(mt, mti)
    r >>= 32 - k
    while r >= n:
        r, mti = _genrand_uint32(mt, mti)
        r >>= 32 - k
    return r, mti


@njit(cache=True, error_model="numpy")
def pvalue_table(n):
    """``table[h]`` = p-value of ``scipy.stats.ks_2samp(a, b, method="auto")`` for ``len(a) == len(b) == n``
    and statistic ``h / n``, for ``n <= 10000`` (scipy's exact method).

    This is scipy's ``_compute_prob_outside_square`` with the same operation order (Python evaluates
    ``(n - k*h - j) * p1 / (n + k*h + j + 1)`` left to right in doubles, as here). Where that result
    is outside [0, 1] (rounding, only when the true p-value is ~1) scipy falls back to the asymptotic
    ``kstwo`` distribution, whose value there is above 0.9999; we store 1.0.
    """
    table = np.empty(n + 1, dtype=np.float64)
    table[0] = 1.0
    for h in range(1, n + 1):
        big_p = 0.0
        k = n // h
        while k >= 0:
            p1 = 1.0
            for j in range(h):
                p1 = float(n - k * h - j) * p1 / float(n + k * h + j + 1)
            big_p = p1 * (1.0 - big_p)
            k -= 1
        prob = 2 * big_p
        if not (0.0 <= prob <= 1.0):
            prob = 1.0
        table[h] = prob
    return table


@njit(cache=True)
def _ks_h(a, b):
    """``max |#(a <= v) - #(b <= v)|`` over all values ``v``; ``a`` and ``b`` sorted, same length."""
    s = a.shape[0]
    i = 0
    j = 0
    h = 0
    while i < s or j < s:
        if j >= s or (i < s and a[i] <= b[j]):
            v = a[i]
        else:
            v = b[j]
        while i < s and a[i] == v:
            i += 1
        while j < s and b[j] == v:
            j += 1
        d = i - j if i >= j else j - i
        if d > h:
            h = d
    return h


@njit(cache=True, error_model="numpy")
def update_many(
    xs,
    start,
    out,
    n_out,
    win,
    istate,
    pval,
    mt,
    ptable,
    window_size,
    stat_size,
    alpha,
    use_pool,
    pool,
    selected,
    picks,
    rnd,
    recent,
):
    """Run River's ``KSWIN.update`` over ``xs[start:]``.

    Stops early, returning ``(i, n_out)``, when element ``i`` must first reset the detector (the drift
    flag is set): the caller re-seeds the RNG and clears the window, then calls again from ``i``.
    Returns ``(len(xs), n_out)`` when done. Drift positions are appended to ``out`` from ``n_out``.
    ``pool``/``selected`` (int64, ``window_size - stat_size``; ``selected`` all zero), ``picks`` (int64,
    ``stat_size``), ``rnd``/``recent`` (float64, ``stat_size``) are scratch arrays.
    """
    head = istate[0]
    length = istate[1]
    n = istate[2]
    drift = istate[3] != 0
    mti = istate[4]
    w = window_size
    s = stat_size
    m = w - s
    i = start
    stop = xs.shape[0]
    while i < xs.shape[0]:
        if drift:
            stop = i
            break
        n += 1
        if length < w:
            win[(head + length) % w] = xs[i]
            length += 1
        else:
            win[head] = xs[i]
            head = (head + 1) % w
        if length >= w:
            # rnd_window = [window[r] for r in rng.sample(range(w - s), s)]
            if use_pool:
                for t in range(m):
                    pool[t] = t
                for t in range(s):
                    j, mti = _randbelow(m - t, mt, mti)
                    rnd[t] = win[(head + pool[j]) % w]
                    pool[j] = pool[m - t - 1]
            else:
                for t in range(s):
                    j, mti = _randbelow(m, mt, mti)
                    while selected[j] != 0:
                        j, mti = _randbelow(m, mt, mti)
                    selected[j] = 1
                    picks[t] = j
                    rnd[t] = win[(head + j) % w]
                for t in range(s):
                    selected[picks[t]] = 0
            for t in range(s):
                recent[t] = win[(head + m + t) % w]
            rnd.sort()
            recent.sort()
            h = _ks_h(rnd, recent)
            p = ptable[h]
            pval[0] = p
            if p <= alpha and h * 1.0 / s > 0.1:
                drift = True
                out[n_out] = i
                n_out += 1
                # window = deque(most_recent, maxlen=window_size)
                head = (head + m) % w
                length = s
            else:
                drift = False
        else:
            drift = False
        i += 1
    istate[0] = head
    istate[1] = length
    istate[2] = n
    istate[3] = 1 if drift else 0
    istate[4] = mti
    return stop, n_out
