"""Numba kernel for :class:`detectors.page_hinkley.PageHinkley` (imported lazily: imports numba).

``state = [n, mean, sum_increase, sum_decrease, min_increase, max_decrease, drift_flag]``; the
arithmetic is River's, operation by operation, so results are bit-identical.
"""

from __future__ import annotations

from numba import njit

MODE_UP, MODE_DOWN, MODE_BOTH = 0, 1, 2


@njit(cache=True, error_model="numpy")
def update_many(xs, out, state, mode, min_instances, delta, threshold, alpha):
    """Run River's ``PageHinkley.update`` over ``xs``; writes drift positions to ``out``."""
    n = state[0]
    mean = state[1]
    sum_increase = state[2]
    sum_decrease = state[3]
    min_increase = state[4]
    max_decrease = state[5]
    drift = state[6] != 0.0
    n_out = 0
    for i in range(xs.shape[0]):
        x = xs[i]
        if drift:  # River resets lazily, on the update after a detection
            n = 0.0
            mean = 0.0
            sum_increase = 0.0
            sum_decrease = 0.0
            min_increase = float("inf")
            max_decrease = -1.0
            drift = False
        # stats.Mean.update(x, w=1.0)
        n += 1.0
        mean += (1.0 / n) * (x - mean)
        dev = x - mean
        sum_increase = alpha * sum_increase + dev - delta
        sum_decrease = alpha * sum_decrease + dev + delta
        if sum_increase < min_increase:
            min_increase = sum_increase
        if sum_decrease > max_decrease:
            max_decrease = sum_decrease
        if n >= min_instances:
            test_increase = sum_increase - min_increase
            test_decrease = max_decrease - sum_decrease
            if mode == MODE_UP:
                drift = test_increase > threshold
            elif mode == MODE_DOWN:
                drift = test_decrease > threshold
            else:
                drift = test_increase > threshold or test_decrease > threshold
            if drift:
                out[n_out] = i
                n_out += 1
    state[0] = n
    state[1] = mean
    state[2] = sum_increase
    state[3] = sum_decrease
    state[4] = min_increase
    state[5] = max_decrease
    state[6] = 1.0 if drift else 0.0
    return n_out
