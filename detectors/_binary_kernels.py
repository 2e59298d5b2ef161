"""Numba kernels behind ``update_many`` of the binary detectors (DDM, EDDM, HDDM_A, HDDM_W, FHDDM).

Private module: it imports numba, so the detector modules import it lazily inside ``update_many``.

Every kernel is a literal transcription of the matching River 0.26.1 ``update`` loop, including the
lazy reset at the start of the update that follows a drift, and keeps River's floating-point operation
order so that alarm decisions are bit-for-bit the same. Constants that River recomputes with ``math.log``
or ``**`` on every call are computed once in Python by the caller (same libm, same value) and passed in.

Each kernel first checks the whole batch: if a value is NaN, infinite or outside [0, 1] it returns at
once with that position and leaves the state untouched. Otherwise it takes the running state packed in
a float64 array (``st``, updated in place; some also an int64 array) and returns
``(-1, drift_positions, warning_positions)``; the warning array is empty unless ``want_warnings``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def first_invalid(xs):
    """Position of the first value that is not in [0, 1] (NaN included), or -1."""
    for i in range(xs.size):
        x = xs[i]
        if not (x >= 0.0 and x <= 1.0):
            return i
    return -1


@njit(cache=True)
def ddm_kernel(xs, st, warm_start, warning_threshold, drift_threshold, want_warnings):
    # st = [n, mean, p_min (nan = None), s_min (nan = None), ps_min, drift, warning]
    n = st[0]
    mean = st[1]
    p_min = st[2]
    s_min = st[3]
    ps_min = st[4]
    drift = st[5] != 0.0
    warning = st[6] != 0.0
    bad = first_invalid(xs)
    if bad >= 0:
        return bad, np.empty(0, np.int64), np.empty(0, np.int64)
    size = xs.size
    dpos = np.empty(size, np.int64)
    wpos = np.empty(size if want_warnings else 0, np.int64)
    nd = 0
    nw = 0
    for i in range(size):
        x = xs[i]
        if drift:
            n = 0.0
            mean = 0.0
            p_min = np.nan
            s_min = np.nan
            ps_min = np.inf
            drift = False
            warning = False
        # river.stats.Mean.update with w = 1.0
        n += 1.0
        mean += (1.0 / n) * (x - mean)
        p_i = mean
        s_i = math.sqrt(p_i * (1 - p_i) / n)
        if n > warm_start:
            if p_i + s_i <= ps_min:
                p_min = p_i
                s_min = s_i
                ps_min = p_min + s_min
            warning = p_i + s_i > p_min + warning_threshold * s_min
            if p_i + s_i > p_min + drift_threshold * s_min:
                drift = True
                warning = False
        if drift:
            dpos[nd] = i
            nd += 1
        if want_warnings and warning:
            wpos[nw] = i
            nw += 1
    st[0] = n
    st[1] = mean
    st[2] = p_min
    st[3] = s_min
    st[4] = ps_min
    st[5] = 1.0 if drift else 0.0
    st[6] = 1.0 if warning else 0.0
    return -1, dpos[:nd].copy(), wpos[:nw].copy()


@njit(cache=True)
def eddm_kernel(xs, fst, ist, warm_start, alpha, beta, half, want_warnings):
    # fst = [var_n, var_mean, var_S, p2s_max]; ist = [n, last_error, n_errors, drift, warning]
    # ``half`` is 0.5 passed at run time: River takes the standard deviation as ``var ** 0.5``, i.e.
    # libm ``pow``, which is not always equal to ``sqrt``; with a literal 0.5 LLVM would turn the
    # power into a square root.
    var_n = fst[0]
    var_mean = fst[1]
    var_s = fst[2]
    p2s_max = fst[3]
    n = ist[0]
    last_error = ist[1]
    n_errors = ist[2]
    drift = ist[3] != 0
    warning = ist[4] != 0
    bad = first_invalid(xs)
    if bad >= 0:
        return bad, np.empty(0, np.int64), np.empty(0, np.int64)
    size = xs.size
    dpos = np.empty(size, np.int64)
    wpos = np.empty(size if want_warnings else 0, np.int64)
    nd = 0
    nw = 0
    for i in range(size):
        x = xs[i]
        if drift:
            var_n = 0.0
            var_mean = 0.0
            var_s = 0.0
            p2s_max = -1.0
            n = 0
            last_error = 0
            n_errors = 0
            drift = False
            warning = False
        n += 1
        if x == 1.0:
            n_errors += 1
            # river.stats.Var.update (Welford, w = 1.0)
            d = float(n - last_error)
            mean_old = var_mean
            var_n += 1.0
            var_mean += (1.0 / var_n) * (d - var_mean)
            var_s += (d - mean_old) * (d - var_mean)
            if n > warm_start:
                pi_prime = var_mean
                var = var_s / (var_n - 1.0) if var_n > 1.0 else 0.0
                si_prime = var**half
                p2s_prime = pi_prime + 2 * si_prime
                if p2s_prime > p2s_max:
                    p2s_max = p2s_prime
                elif n_errors > warm_start:
                    level = p2s_prime / p2s_max
                    if level < beta:
                        drift = True
                    elif level < alpha:
                        warning = True
                    else:
                        warning = False
            last_error = n
        if drift:
            dpos[nd] = i
            nd += 1
        if want_warnings and warning:
            wpos[nw] = i
            nw += 1
    fst[0] = var_n
    fst[1] = var_mean
    fst[2] = var_s
    fst[3] = p2s_max
    ist[0] = n
    ist[1] = last_error
    ist[2] = n_errors
    ist[3] = 1 if drift else 0
    ist[4] = 1 if warning else 0
    return -1, dpos[:nd].copy(), wpos[:nw].copy()


@njit(cache=True)
def _hddm_a_incr(z_n, z_mean, c_n, c_mean, log_term):
    # HDDMA._mean_incr; log_term = log(2.0 / confidence)
    if c_n == z_n:
        return False
    m = (z_n - c_n) / c_n * (1.0 / z_n)
    eps = math.sqrt(m / 2 * log_term)
    return z_mean - c_mean >= eps


@njit(cache=True)
def _hddm_a_decr(z_n, z_mean, c_n, c_mean, log_term):
    # HDDMA._mean_decr
    if c_n == z_n:
        return False
    m = (z_n - c_n) / c_n * (1.0 / z_n)
    eps = math.sqrt(m / 2 * log_term)
    return c_mean - z_mean >= eps


@njit(cache=True)
def hddm_a_kernel(xs, st, log_inv_drift, log2_drift, log2_warning, two_sided, want_warnings, warm_start):
    # st = [z_n, z_mean, xmin_n, xmin_mean, xmax_n, xmax_mean, drift, warning]
    # log_inv_drift = log(1 / drift_confidence), log2_* = log(2 / *_confidence)
    z_n = st[0]
    z_mean = st[1]
    a_n = st[2]
    a_mean = st[3]
    b_n = st[4]
    b_mean = st[5]
    drift = st[6] != 0.0
    warning = st[7] != 0.0
    bad = first_invalid(xs)
    if bad >= 0:
        return bad, np.empty(0, np.int64), np.empty(0, np.int64)
    size = xs.size
    dpos = np.empty(size, np.int64)
    wpos = np.empty(size if want_warnings else 0, np.int64)
    nd = 0
    nw = 0
    for i in range(size):
        x = xs[i]
        if drift:
            z_n = 0.0
            z_mean = 0.0
            a_n = 0.0
            a_mean = 0.0
            b_n = 0.0
            b_mean = 0.0
            drift = False
            warning = False
        z_n += 1.0
        z_mean += (1.0 / z_n) * (x - z_mean)
        if a_n == 0.0:
            a_n = z_n
            a_mean = z_mean
        if b_n == 0.0:
            b_n = z_n
            b_mean = z_mean
        eps_z = math.sqrt(1.0 / (2 * z_n) * log_inv_drift)
        eps_x = math.sqrt(1.0 / (2 * a_n) * log_inv_drift)
        if a_mean + eps_x >= z_mean + eps_z:
            a_n = z_n
            a_mean = z_mean
        eps_x = math.sqrt(1.0 / (2 * b_n) * log_inv_drift)
        if b_mean - eps_x <= z_mean - eps_z:
            b_n = z_n
            b_mean = z_mean
        if z_n <= warm_start:  # driftstream's warm-up (0 = River): statistics kept, tests wait
            warning = False
            drift = False
            continue
        if _hddm_a_incr(z_n, z_mean, a_n, a_mean, log2_drift):
            warning = False
            drift = True
        elif _hddm_a_incr(z_n, z_mean, a_n, a_mean, log2_warning):
            warning = True
            drift = False
        else:
            warning = False
            drift = False
        if two_sided:
            if _hddm_a_decr(z_n, z_mean, b_n, b_mean, log2_drift):
                drift = True
            elif _hddm_a_decr(z_n, z_mean, b_n, b_mean, log2_warning):
                warning = True
        if drift:
            dpos[nd] = i
            nd += 1
        if want_warnings and warning:
            wpos[nw] = i
            nw += 1
    st[0] = z_n
    st[1] = z_mean
    st[2] = a_n
    st[3] = a_mean
    st[4] = b_n
    st[5] = b_mean
    st[6] = 1.0 if drift else 0.0
    st[7] = 1.0 if warning else 0.0
    return -1, dpos[:nd].copy(), wpos[:nw].copy()


@njit(cache=True)
def _hddm_w_changed(s1_ewma, s1_init, s1_ibc, s2_ewma, s2_init, s2_ibc, log_term):
    # HDDMW._has_mean_changed; log_term = log(1 / confidence)
    if not (s1_init and s2_init):
        return False
    ibc_sum = s1_ibc + s2_ibc
    bound = math.sqrt(ibc_sum * log_term / 2)
    return s2_ewma - s1_ewma > bound


@njit(cache=True)
def hddm_w_kernel(xs, st, lam, one_minus_lam, lam_sq, c_lam_sq, log_inv_drift, log_inv_warning,
                  two_sided, want_warnings):
    # st = [total(ewma, init, ibc), s1_incr(3), s2_incr(3), s1_decr(3), s2_decr(3),
    #       incr_cutpoint, decr_cutpoint, drift, warning]   (19 values)
    t_e = st[0]
    t_i = st[1] != 0.0
    t_b = st[2]
    s1i_e = st[3]
    s1i_i = st[4] != 0.0
    s1i_b = st[5]
    s2i_e = st[6]
    s2i_i = st[7] != 0.0
    s2i_b = st[8]
    s1d_e = st[9]
    s1d_i = st[10] != 0.0
    s1d_b = st[11]
    s2d_e = st[12]
    s2d_i = st[13] != 0.0
    s2d_b = st[14]
    incr_cut = st[15]
    decr_cut = st[16]
    drift = st[17] != 0.0
    warning = st[18] != 0.0
    bad = first_invalid(xs)
    if bad >= 0:
        return bad, np.empty(0, np.int64), np.empty(0, np.int64)
    size = xs.size
    dpos = np.empty(size, np.int64)
    wpos = np.empty(size if want_warnings else 0, np.int64)
    nd = 0
    nw = 0
    for i in range(size):
        x = xs[i]
        if drift:
            t_e, t_i, t_b = 0.0, False, 1.0
            s1i_e, s1i_i, s1i_b = 0.0, False, 1.0
            s2i_e, s2i_i, s2i_b = 0.0, False, 1.0
            s1d_e, s1d_i, s1d_b = 0.0, False, 1.0
            s2d_e, s2d_i, s2d_b = 0.0, False, 1.0
            incr_cut = np.inf
            decr_cut = -np.inf
            drift = False
            warning = False
        # SampleInfo.update on the total: River's (Rust) EWMean takes the first value as is
        t_e = x if not t_i else lam * x + one_minus_lam * t_e
        t_i = True
        t_b = lam_sq + c_lam_sq * t_b
        # _update_incr_stats
        eps = math.sqrt(t_b * log_inv_drift / 2)
        if t_e + eps < incr_cut:
            incr_cut = t_e + eps
            s1i_e, s1i_i, s1i_b = t_e, t_i, t_b
            s2i_e, s2i_i, s2i_b = 0.0, False, 1.0
        else:
            s2i_e = x if not s2i_i else lam * x + one_minus_lam * s2i_e
            s2i_i = True
            s2i_b = lam_sq + c_lam_sq * s2i_b
        if _hddm_w_changed(s1i_e, s1i_i, s1i_b, s2i_e, s2i_i, s2i_b, log_inv_drift):
            warning = False
            drift = True
        elif _hddm_w_changed(s1i_e, s1i_i, s1i_b, s2i_e, s2i_i, s2i_b, log_inv_warning):
            warning = True
            drift = False
        else:
            warning = False
            drift = False
        # _update_decr_stats
        eps = math.sqrt(t_b * log_inv_drift / 2)
        if t_e - eps > decr_cut:
            decr_cut = t_e - eps
            s1d_e, s1d_i, s1d_b = t_e, t_i, t_b
            s2d_e, s2d_i, s2d_b = 0.0, False, 1.0
        else:
            s2d_e = x if not s2d_i else lam * x + one_minus_lam * s2d_e
            s2d_i = True
            s2d_b = lam_sq + c_lam_sq * s2d_b
        if two_sided:
            if _hddm_w_changed(s2d_e, s2d_i, s2d_b, s1d_e, s1d_i, s1d_b, log_inv_drift):
                drift = True
            elif _hddm_w_changed(s2d_e, s2d_i, s2d_b, s1d_e, s1d_i, s1d_b, log_inv_warning):
                warning = True
        if drift:
            dpos[nd] = i
            nd += 1
        if want_warnings and warning:
            wpos[nw] = i
            nw += 1
    st[0] = t_e
    st[1] = 1.0 if t_i else 0.0
    st[2] = t_b
    st[3] = s1i_e
    st[4] = 1.0 if s1i_i else 0.0
    st[5] = s1i_b
    st[6] = s2i_e
    st[7] = 1.0 if s2i_i else 0.0
    st[8] = s2i_b
    st[9] = s1d_e
    st[10] = 1.0 if s1d_i else 0.0
    st[11] = s1d_b
    st[12] = s2d_e
    st[13] = 1.0 if s2d_i else 0.0
    st[14] = s2d_b
    st[15] = incr_cut
    st[16] = decr_cut
    st[17] = 1.0 if drift else 0.0
    st[18] = 1.0 if warning else 0.0
    return -1, dpos[:nd].copy(), wpos[:nw].copy()


@njit(cache=True)
def fhddm_kernel(xs, buf, ist, fst, sws, epsilon, short_size, epsilon_s):
    # buf: ring buffer of length sws holding the sliding window; ist = [head, count, drift];
    # fst = [n_one, u_max, u_short_max]; short_size = 0 means no short window.
    head = ist[0]
    count = ist[1]
    drift = ist[2] != 0
    n_one = fst[0]
    u_max = fst[1]
    u_short_max = fst[2]
    bad = first_invalid(xs)
    if bad >= 0:
        return bad, np.empty(0, np.int64)
    size = xs.size
    dpos = np.empty(size, np.int64)
    nd = 0
    for i in range(size):
        x = xs[i]
        if drift:
            drift = False
            head = 0
            count = 0
            u_max = 0.0
            n_one = 0.0
            u_short_max = 0.0
        buf[(head + count) % sws] = x
        count += 1
        n_one += x
        if count == sws:
            u = n_one / sws
            u_max = u if u_max < u else u_max
            short_drift = False
            if short_size > 0:
                s = 0.0
                for k in range(sws - short_size, sws):
                    s += buf[(head + k) % sws]
                u_s = s / short_size
                u_short_max = u_s if u_short_max < u_s else u_short_max
                short_drift = u_short_max - u_s > epsilon_s
            long_drift = u_max - u > epsilon
            drift = long_drift or short_drift
            # popleft
            n_one -= buf[head]
            head = (head + 1) % sws
            count -= 1
        if drift:
            dpos[nd] = i
            nd += 1
    ist[0] = head
    ist[1] = count
    ist[2] = 1 if drift else 0
    fst[0] = n_one
    fst[1] = u_max
    fst[2] = u_short_max
    return -1, dpos[:nd].copy()
