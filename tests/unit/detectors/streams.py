"""Stream generators and differential-test helpers shared by the detector tests (and the benchmark).

Streams are numpy float64 arrays built from a seeded ``numpy.random.Generator``: no global random
state. Binary streams are Bernoulli error indicators (1 = error); real-valued streams are Gaussian.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import orjson

BERNOULLI_KINDS = ("abrupt_rise", "abrupt_fall", "gradual_rise", "gradual_fall", "stationary")
GAUSSIAN_KINDS = ("abrupt_shift", "gradual_shift", "stationary")


def error_rates(kind: str, n: int, p_low: float = 0.1, p_high: float = 0.4) -> np.ndarray:
    """Per-position error probability of a Bernoulli stream of the given ``kind``.

    Abrupt streams switch at ``n // 2``; gradual ones move linearly between ``n // 3`` and ``2n // 3``.
    """
    pos = np.arange(n)
    if kind == "stationary":
        return np.full(n, p_low)
    if kind.startswith("abrupt"):
        frac = (pos >= n // 2).astype(np.float64)
    elif kind.startswith("gradual"):
        lo, hi = n // 3, 2 * n // 3
        frac = np.clip((pos - lo) / max(hi - lo, 1), 0.0, 1.0)
    else:
        raise ValueError(f"unknown stream kind {kind!r}")
    if kind.endswith("_rise"):
        return p_low + (p_high - p_low) * frac
    if kind.endswith("_fall"):
        return p_high - (p_high - p_low) * frac
    raise ValueError(f"unknown stream kind {kind!r}")


def bernoulli_stream(kind: str, n: int, seed: int, p_low: float = 0.1, p_high: float = 0.4) -> np.ndarray:
    """0/1 error stream (float64) whose error rate follows :func:`error_rates`."""
    rng = np.random.default_rng(seed)
    return (rng.random(n) < error_rates(kind, n, p_low, p_high)).astype(np.float64)


def gaussian_stream(kind: str, n: int, seed: int, shift: float = 1.0, sigma: float = 1.0) -> np.ndarray:
    """Gaussian stream with a mean shift of ``shift`` (abrupt at ``n // 2`` or gradual over the middle third)."""
    rng = np.random.default_rng(seed)
    pos = np.arange(n)
    if kind == "stationary":
        mean = np.zeros(n)
    elif kind == "abrupt_shift":
        mean = shift * (pos >= n // 2)
    elif kind == "gradual_shift":
        lo, hi = n // 3, 2 * n // 3
        mean = shift * np.clip((pos - lo) / max(hi - lo, 1), 0.0, 1.0)
    else:
        raise ValueError(f"unknown stream kind {kind!r}")
    return mean + sigma * rng.standard_normal(n)


def random_splits(n: int, rng: np.random.Generator, max_parts: int = 8) -> list[tuple[int, int]]:
    """Random contiguous ``[start, stop)`` chunks covering ``range(n)``; empty chunks included on purpose."""
    k = int(rng.integers(0, max_parts))
    cuts = np.sort(rng.integers(0, n + 1, size=k))
    bounds = [0, *cuts.tolist(), n]
    return list(zip(bounds[:-1], bounds[1:]))


# -- differential helpers ------------------------------------------------------------------------
def positions_by_update(det: Any, xs: Any) -> tuple[list[int], list[int]]:
    """Drift and warning positions from calling ``det.update`` element by element (River or ours)."""
    drifts, warns = [], []
    for i, x in enumerate(xs):
        det.update(x)
        if det.drift_detected:
            drifts.append(i)
        if getattr(det, "warning_detected", False):
            warns.append(i)
    return drifts, warns


def positions_by_batches(det: Any, xs: np.ndarray, chunks: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Drift and warning positions from ``det.update_many(..., warnings=True)`` over ``chunks`` of ``xs``."""
    drifts: list[int] = []
    warns: list[int] = []
    for start, stop in chunks:
        d, w = det.update_many(xs[start:stop], warnings=True)
        assert d.dtype == np.int64 and w.dtype == np.int64
        drifts.extend((d + start).tolist())
        warns.extend((w + start).tolist())
    return drifts, warns


def state_bytes(det: Any) -> bytes:
    """The detector's checkpoint as orjson bytes: equal bytes means equal state, bit for bit."""
    return orjson.dumps(det.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)


def roundtrip(det: Any) -> Any:
    """Checkpoint ``det`` through orjson (numpy arrays come back as lists) and restore it."""
    return type(det).from_state(orjson.loads(state_bytes(det)))


def assert_matches_river(
    make_ours: Callable[[], Any],
    make_river: Callable[[], Any],
    xs: np.ndarray,
    rng: np.random.Generator,
    n_splits: int = 2,
) -> tuple[list[int], list[int]]:
    """Check that ``update``, one ``update_many`` and random batch splits all give River's positions.

    River gets Python ints for 0/1 streams (its documented input) and floats otherwise. Also checks
    the final ``drift_detected`` / ``warning_detected`` and that all our runs end in the same state.
    Returns River's (drifts, warnings).
    """
    integral = bool(np.all((xs == 0.0) | (xs == 1.0)))
    river = make_river()
    expected = positions_by_update(river, xs.astype(np.int64).tolist() if integral else xs.tolist())

    by_update = make_ours()
    assert positions_by_update(by_update, xs.tolist()) == expected
    final = (river.drift_detected, river.warning_detected)
    assert (by_update.drift_detected, by_update.warning_detected) == final

    single = make_ours()
    assert positions_by_batches(single, xs, [(0, xs.size)]) == expected
    assert (single.drift_detected, single.warning_detected) == final
    assert state_bytes(single) == state_bytes(by_update)

    for _ in range(n_splits):
        split = make_ours()
        assert positions_by_batches(split, xs, random_splits(xs.size, rng)) == expected
        assert (split.drift_detected, split.warning_detected) == final
        assert state_bytes(split) == state_bytes(by_update)
    return expected


def assert_roundtrip_continues(make_ours: Callable[[], Any], xs: np.ndarray, rng: np.random.Generator,
                               n_cuts: int = 3) -> None:
    """Cut ``xs`` at random points, checkpoint through orjson and restore there; the positions and the
    final state must equal those of an uncut run."""
    reference = make_ours()
    expected = positions_by_batches(reference, xs, [(0, xs.size)])
    cuts = sorted(rng.integers(0, xs.size + 1, size=n_cuts).tolist())
    bounds = [0, *cuts, xs.size]
    det = make_ours()
    drifts: list[int] = []
    warns: list[int] = []
    for k, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        if k % 2:  # alternate the fast path and element-by-element updates between checkpoints
            d, w = positions_by_update(det, xs[start:stop].tolist())
        else:
            d, w = positions_by_batches(det, xs[start:stop], [(0, stop - start)])
        drifts.extend(i + start for i in d)
        warns.extend(i + start for i in w)
        restored = roundtrip(det)
        assert state_bytes(restored) == state_bytes(det)
        assert (restored.drift_detected, restored.warning_detected) == (det.drift_detected, det.warning_detected)
        det = restored
    assert (drifts, warns) == expected
    assert state_bytes(det) == state_bytes(reference)


# -- real-valued families for ADWIN, PageHinkley and KSWIN ----------------------------------------
MIXED_FAMILIES = ("bernoulli_abrupt", "bernoulli_gradual", "gauss_mean", "gauss_var", "stationary")


def mixed_stream(family: str, seed: int, n: int, sharp: bool = False) -> np.ndarray:
    """Stream of a :data:`MIXED_FAMILIES` family; the stationary one is ``3 * n`` long.

    ``sharp=True`` gives larger, later changes and a ``1.5 * n`` stationary stream, for short streams (KSWIN).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if family == "bernoulli_abrupt":  # error rate rises, then falls below the start
        if sharp:
            p = np.where(t < n // 2, 0.1, np.where(t < 5 * n // 6, 0.6, 0.02))
        else:
            p = np.where(t < n // 3, 0.1, np.where(t < 2 * n // 3, 0.45, 0.05))
        return (rng.random(n) < p).astype(np.float64)
    if family == "bernoulli_gradual":  # ramps up, later ramps down
        if sharp:
            p = 0.1 + 0.6 * np.clip((t - n / 3) / (n / 6), 0, 1) - 0.6 * np.clip((t - 5 * n / 6) / (n / 12), 0, 1)
        else:
            p = 0.1 + 0.4 * np.clip((t - n / 4) / (n / 4), 0, 1) - 0.4 * np.clip((t - 3 * n / 4) / (n / 8), 0, 1)
        return (rng.random(n) < p).astype(np.float64)
    if family == "gauss_mean":
        return rng.normal(np.where(t < n // 2, 0.0, 1.5), 1.0)
    if family == "gauss_var":
        return rng.normal(2.0, np.where(t < n // 2, 1.0, 4.0))
    if family == "stationary":
        return rng.normal(0.3, 1.0, 3 * n // 2 if sharp else 3 * n)
    raise ValueError(family)


def sharp_mixed_stream(family: str, seed: int, n: int) -> np.ndarray:
    """:func:`mixed_stream` with ``sharp=True``."""
    return mixed_stream(family, seed, n, sharp=True)


def drift_positions(det: Any, xs: Any) -> list[int]:
    """Drift positions from ``det.update`` element by element (``update`` returns None, as River's)."""
    out = []
    for i, x in enumerate(xs):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return out


def drift_positions_in_splits(det: Any, xs: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Drift positions from ``det.update_many`` over ``xs`` cut at up to 7 distinct random points."""
    cuts = np.sort(rng.choice(np.arange(1, len(xs)), size=min(7, len(xs) - 1), replace=False))
    out: list[int] = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(xs)]):
        out.extend((det.update_many(xs[lo:hi]) + lo).tolist())
    return out
