"""Detector speed benchmark: River's ``update`` loop against ours, element by element and ``update_many``.

    python benchmarks/detectors.py [--n 100000] [--quick] [--seed 7]

For each of the eight concept-drift detectors, on the same stream (binary detectors: Bernoulli errors
whose rate goes 0.1 -> 0.3 -> 0.1; real-valued detectors: Gaussian with a mean shift of 1 half way), it
measures updates per second of

* River's ``update`` loop (the baseline, measured in this run),
* our ``update`` loop,
* our ``update_many`` on batches of 1,000 values and on one batch of 100,000 (or ``--n``) values,

and prints a table with the ratios ``update_many / River``, whether our alarms equal River's, the size of
the checkpoint (orjson bytes) after the run, and the time of the first ``update_many`` call (numba
compilation or cache load), which is excluded from the throughput figures. Times are the best of a few
repeats with ``time.perf_counter``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson

# This script is named detectors.py: keep its own folder from shadowing the ``detectors`` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from detectors.registry import DETECTORS as REGISTERED, is_binary  # noqa: E402

#: constructor params given to both ours and River's, where the defaults will not do
_SHARED_PARAMS: dict[str, dict[str, Any]] = {"KSWIN": {"seed": 42}}

# name -> (our module, River class path, constructor params shared by both, binary?), for every detector of
# the registry; River's class has the same name, under river.drift.binary for the binary ones
DETECTORS: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    name: (cls.__module__, f"river.drift.{'binary.' if is_binary(cls) else ''}{name}",
           _SHARED_PARAMS.get(name, {}), is_binary(cls))
    for name, cls in REGISTERED.items()
}
SMALL_BATCH = 1_000
LARGE_BATCH = 100_000


def bernoulli_errors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = np.where((np.arange(n) >= n // 3) & (np.arange(n) < 2 * n // 3), 0.3, 0.1)
    return (rng.random(n) < rate).astype(np.float64)


def gaussian_shift(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) + (np.arange(n) >= n // 2)


def load(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def best_of(repeats: int, run: Callable[[], Any], budget_s: float = 5.0) -> tuple[float, Any]:
    """Best time of up to ``repeats`` runs; stops repeating once ``budget_s`` seconds are spent."""
    best, result, spent = float("inf"), None, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget_s:
            break
    return best, result


def update_loop(det: Any, values: list) -> list[int]:
    out = []
    for i, x in enumerate(values):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return out


def batched(make: Callable[[], Any], xs: np.ndarray, batch: int) -> tuple[list[int], Any]:
    det = make()
    out: list[int] = []
    for start in range(0, xs.size, batch):
        out.extend((det.update_many(xs[start : start + batch]) + start).tolist())
    return out, det


@dataclass
class Row:
    name: str
    river: float
    ours: float
    many_small: float
    many_large: float
    large_batch: int
    same_alarms: bool
    state_bytes: int
    first_call_ms: float


def measure(name: str, n: int, seed: int, repeats: int) -> Row | None:
    module, river_path, params, binary = DETECTORS[name]
    try:
        ours_cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        print(f"note: skipping {name}: {module}.{name} is not available ({exc})")
        return None
    river_cls = load(river_path)
    xs = bernoulli_errors(n, seed) if binary else gaussian_shift(n, seed)
    # River gets what its users give it: ints for 0/1 streams, floats otherwise.
    river_values = xs.astype(np.int64).tolist() if binary else xs.tolist()
    our_values = xs.tolist()

    def make() -> Any:
        return ours_cls(**params)

    # 1. warm up: the first update_many compiles the numba kernel (or loads it from the cache)
    start = time.perf_counter()
    make().update_many(xs[:SMALL_BATCH])
    first_call = time.perf_counter() - start

    # 2. the baseline and our element-by-element loop
    t_river, river_alarms = best_of(max(1, repeats - 1), lambda: update_loop(river_cls(**params), river_values))
    t_ours, ours_alarms = best_of(max(1, repeats - 1), lambda: update_loop(make(), our_values))

    # 3. the fast path on small and large batches
    t_small, (small_alarms, _) = best_of(repeats, lambda: batched(make, xs, SMALL_BATCH))
    large = min(LARGE_BATCH, n)
    t_large, (large_alarms, last) = best_of(repeats, lambda: batched(make, xs, large))

    state = orjson.dumps(last.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
    return Row(
        name=name,
        river=n / t_river,
        ours=n / t_ours,
        many_small=n / t_small,
        many_large=n / t_large,
        large_batch=large,
        same_alarms=river_alarms == ours_alarms == small_alarms == large_alarms,
        state_bytes=len(state),
        first_call_ms=first_call * 1e3,
    )


def human(rate: float) -> str:
    return f"{rate / 1e6:8.2f}M" if rate >= 1e6 else f"{rate / 1e3:8.1f}k"


def print_table(rows: list[Row], n: int) -> None:
    header = (
        f"{'detector':<12} {'River/s':>9} {'ours/s':>9} {'many 1k/s':>10} {'many big/s':>10} "
        f"{'1k/River':>9} {'big/River':>9} {'alarms=':>7} {'state B':>8} {'1st call ms':>11}"
    )
    print(f"\nupdates per second over {n:,} values (big batch = min({LARGE_BATCH:,}, n)); "
          "1st call = numba compile, or cache load when already cached")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.name:<12} {human(r.river):>9} {human(r.ours):>9} {human(r.many_small):>10} "
            f"{human(r.many_large):>10} {r.many_small / r.river:>8.1f}x {r.many_large / r.river:>8.1f}x "
            f"{'yes' if r.same_alarms else 'NO':>7} {r.state_bytes:>8,} {r.first_call_ms:>11.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=LARGE_BATCH, help="values per stream (default 100000)")
    parser.add_argument("--quick", action="store_true", help="20,000 values and a single repeat")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", nargs="*", choices=list(DETECTORS), help="run only these detectors")
    args = parser.parse_args(argv)
    n = min(args.n, 20_000) if args.quick else args.n
    repeats = 1 if args.quick else 3

    start = time.perf_counter()
    import numba  # noqa: F401 - imported once here so no detector's first call pays for it

    print(f"numba import: {(time.perf_counter() - start) * 1e3:.0f} ms")
    rows = []
    for name in args.only or DETECTORS:
        row = measure(name, n, args.seed, repeats)
        if row is not None:
            rows.append(row)
    print_table(rows, n)


if __name__ == "__main__":
    main()
