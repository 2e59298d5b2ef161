"""Numba kernel for :class:`detectors.adwin.ADWIN` (imported lazily: this module imports numba).

The code is a port of River 0.26.1's ``rust_src/adwin.rs`` (itself a port of the former Cython
``adwin_c.pyx``). Floating-point operations are written in the same order as River's so that the
results are bit-identical. Two changes keep the values but save time: ``delta_prime`` and
``variance / width`` (which only depend on the window) are computed once per scan instead of once per
candidate cut, and the running statistics live in local variables inside one loop (written back to the
state arrays at the end) so that LLVM keeps them in registers.

State layout (arrays owned by the detector, updated in place):

* ``totals[level, slot]`` / ``variances[level, slot]``: bucket summaries; level ``i`` holds buckets of
  ``2**i`` items, slot 0 being the oldest; ``counts[level]`` is the number of used slots.
* ``fstate = [total, variance, width, total_width]``
* ``istate = [n_levels, n_buckets, max_n_buckets, tick, n_detections, drift_flag]``
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, error_model="numpy")
def update_many(
    xs, out, totals, variances, counts, fstate, istate, delta, clock, max_buckets, mwl, grace_period
):
    """Run River's ``ADWIN.update`` over ``xs``; writes drift positions to ``out``, returns how many."""
    total = fstate[0]
    variance = fstate[1]
    width = fstate[2]
    total_width = fstate[3]
    n_levels = istate[0]
    n_buckets = istate[1]
    max_n_buckets = istate[2]
    tick = istate[3]
    n_detections = istate[4]
    drift = istate[5] != 0
    max_levels = totals.shape[0]
    n_out = 0

    for i in range(xs.shape[0]):
        value = xs[i]
        # River's ADWIN.update: `if self.drift_detected: self._reset()`
        if drift:
            for lv in range(n_levels + 1):
                if lv < max_levels:
                    for s in range(totals.shape[1]):
                        totals[lv, s] = 0.0
                        variances[lv, s] = 0.0
                    counts[lv] = 0
            total = 0.0
            variance = 0.0
            width = 0.0
            total_width = 0.0
            n_levels = 1
            n_buckets = 0
            max_n_buckets = 0
            tick = 0
            n_detections = 0
            drift = False

        # ---- insert_element(value, 0.0)
        c = counts[0]
        totals[0, c] = value
        variances[0, c] = 0.0
        counts[0] = c + 1
        n_buckets += 1
        if n_buckets > max_n_buckets:
            max_n_buckets = n_buckets
        width += 1.0
        incremental_variance = 0.0
        if width > 1.0:
            delta_v = value - total / (width - 1.0)
            incremental_variance = (width - 1.0) * delta_v * delta_v / width
        variance += incremental_variance
        total += value

        # ---- compress_buckets
        idx = 0
        while counts[idx] == max_buckets + 1:
            n1 = float(1 << idx)
            t0 = totals[idx, 0]
            t1 = totals[idx, 1]
            mu1 = t0 / n1
            mu2 = t1 / n1
            total12 = t0 + t1
            temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2)
            v12 = variances[idx, 0] + variances[idx, 1] + temp
            if idx + 1 >= n_levels:
                if idx + 1 >= max_levels:
                    raise RuntimeError("ADWIN bucket list overflow")
                n_levels = idx + 2
            c1 = counts[idx + 1]
            totals[idx + 1, c1] = total12
            variances[idx + 1, c1] = v12
            counts[idx + 1] = c1 + 1
            n_buckets += 1
            # compress(2) on level idx
            cur = counts[idx]
            for s in range(cur - 2):
                totals[idx, s] = totals[idx, s + 2]
                variances[idx, s] = variances[idx, s + 2]
            for s in range(cur - 2, cur):
                totals[idx, s] = 0.0
                variances[idx, s] = 0.0
            counts[idx] = cur - 2
            if counts[idx + 1] <= max_buckets:
                break
            idx += 1

        # ---- detect_change
        change_detected = False
        tick += 1
        if tick % clock == 0 and width > grace_period:
            reduce_width = True
            while reduce_width:
                reduce_width = False
                exit_flag = False
                n0 = 0.0
                n1 = width
                u0 = 0.0
                u1 = total
                # evaluate_cut's window-only terms (River recomputes the same values per cut)
                delta_prime = math.log(2.0 * math.log(width) / delta)
                var_w = variance / width
                deleted = False
                for lv in range(n_levels - 1, -1, -1):
                    if exit_flag:
                        break
                    bucket_size = float(1 << lv)
                    cur = counts[lv]
                    for k in range(cur):
                        n0 += bucket_size
                        n1 -= bucket_size
                        t = totals[lv, k]
                        u0 += t
                        u1 -= t
                        if lv == 0 and k == cur - 1:
                            exit_flag = True
                            break
                        delta_mean = (u0 / n0) - (u1 / n1)
                        if n1 >= mwl and n0 >= mwl:
                            m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0)
                            epsilon = (
                                math.sqrt(2.0 * m_recip * var_w * delta_prime)
                                + 2.0 / 3.0 * delta_prime * m_recip
                            )
                            if abs(delta_mean) > epsilon:
                                reduce_width = True
                                change_detected = True
                                if width > 0.0:
                                    # ---- delete_element (drop the oldest bucket)
                                    last = n_levels - 1
                                    if counts[last] == 0:
                                        # River's Rust core panics here (only reachable with max_buckets=1)
                                        raise RuntimeError("ADWIN: empty oldest bucket level")
                                    nb = float(1 << last)
                                    u = totals[last, 0]
                                    v = variances[last, 0]
                                    mu = u / nb
                                    width -= nb
                                    total -= u
                                    mu_window = total / width
                                    inc = v + nb * width * (mu - mu_window) * (mu - mu_window) / (nb + width)
                                    variance -= inc
                                    cl = counts[last]
                                    for s in range(cl - 1):
                                        totals[last, s] = totals[last, s + 1]
                                        variances[last, s] = variances[last, s + 1]
                                    totals[last, cl - 1] = 0.0
                                    variances[last, cl - 1] = 0.0
                                    counts[last] = cl - 1
                                    n_buckets -= 1
                                    if cl - 1 == 0:
                                        n_levels = last
                                    deleted = True
                                    break
                    if deleted:
                        break
        total_width += width
        if change_detected:
            n_detections += 1
            out[n_out] = i
            n_out += 1
        drift = change_detected

    fstate[0] = total
    fstate[1] = variance
    fstate[2] = width
    fstate[3] = total_width
    istate[0] = n_levels
    istate[1] = n_buckets
    istate[2] = max_n_buckets
    istate[3] = tick
    istate[4] = n_detections
    istate[5] = 1 if drift else 0
    return n_out
