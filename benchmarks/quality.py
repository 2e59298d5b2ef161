"""Detection-quality benchmark: delay, TP, FP, FN of our detectors and River's on labelled drifting streams.

    python benchmarks/quality.py [--quick] [--seeds 30] [--n 100000] [--streams Sine1 LED ...]
                                 [--detectors ADWIN DDM ...] [--learner nb|ht] [--jobs 2]
                                 [--calibrated ERT] [--markdown]

Streams (``benchmarks/quality_streams.py``): Sine1, Sine2, Mixed, Stagger (abrupt, a drift every fifth of
the stream, 10% label noise) and Circles, LED (gradual, transition width 500). For each stream and seed a
base learner (River ``naive_bayes.GaussianNB``, or ``tree.HoeffdingTreeClassifier`` with ``--learner ht``)
is run prequentially (predict, then learn) and its 0/1 error stream is computed once and cached; every
detector then reads that same error stream: ours through one ``update_many`` call, River's through its
``update`` loop, in the same run. The learner is *not* reset on alarms, so that all detectors see the
identical error stream; a consequence is that a drift back to a concept the learner already fits makes
the error rate *fall*, which detectors of increases (DDM, EDDM, HDDM_*, FHDDM) do not report.

FHDDM reads the *correct-prediction* stream ``1 - error``: River's FHDDM (which ours reproduces) alarms
when the window mean drops below its maximum, i.e. it tracks accuracy, as in the FHDDM paper.

Scoring, per run: the first alarm in ``[drift, drift + tolerance)`` is a true positive with delay
``alarm - drift``; a drift without one is a false negative; every other alarm is a false positive. The
tolerance is 250 for abrupt drifts and ``width + 250`` for gradual ones (``drift`` = start of the
transition). The table gives per-run means over the seeds and the mean delay over all true positives.

``--calibrated ERT`` also calibrates each detector (``detectors.calibrate``) on a reference window of the
error stream (the first concept after a warm-up of a tenth of it) for one false alarm every ERT events,
and reports its delay/TP/FP/FN next to River's defaults. Nothing is asserted; times are not measured.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.quality_streams import STREAMS, LabelledStream, tolerance  # noqa: E402

# name -> (River class path, constructor params shared by both, binary?, reads 1 - error?)
DETECTORS: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    "ADWIN": ("river.drift.ADWIN", {}, False, False),
    "PageHinkley": ("river.drift.PageHinkley", {}, False, False),
    "KSWIN": ("river.drift.KSWIN", {"seed": 42}, False, False),
    "DDM": ("river.drift.binary.DDM", {}, True, False),
    "EDDM": ("river.drift.binary.EDDM", {}, True, False),
    "HDDM_A": ("river.drift.binary.HDDMA", {}, True, False),
    "HDDM_W": ("river.drift.binary.HDDMW", {}, True, False),
    "FHDDM": ("river.drift.binary.FHDDM", {}, True, True),
}
#: detectors left out of ``--calibrated``: one KS test per event makes calibrating them take minutes
NOT_CALIBRATED = frozenset({"KSWIN"})
QUICK_SEEDS, QUICK_N = 2, 20_000


def load(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def our_class(name: str) -> type:
    from detectors import detector_class

    return detector_class(name)


# -- error streams ---------------------------------------------------------------------------------
def make_learner(kind: str) -> Any:
    if kind == "nb":
        from river import naive_bayes

        return naive_bayes.GaussianNB()
    if kind == "ht":
        from river import tree

        return tree.HoeffdingTreeClassifier()
    raise ValueError(f"unknown learner {kind!r} (nb or ht)")


def prequential_errors(stream: LabelledStream, learner: Any) -> np.ndarray:
    """1.0 where the learner, trained on everything before, mislabels the instance; never reset."""
    errors = np.empty(len(stream.ys), dtype=np.float64)
    for i, (x, y) in enumerate(zip(stream.xs, stream.ys)):
        errors[i] = float(learner.predict_one(x) != y)
        learner.learn_one(x, y)
    return errors


@dataclass
class ErrorStreams:
    """The learner's error stream per (stream, n, seed), computed once per benchmark run."""

    learner: str = "nb"
    _cache: dict[tuple[str, int, int], tuple[LabelledStream, np.ndarray]] = field(default_factory=dict)

    def get(self, name: str, n: int, seed: int) -> tuple[LabelledStream, np.ndarray]:
        key = (name, n, seed)
        if key not in self._cache:
            stream = STREAMS[name](n, seed)
            self._cache[key] = (stream, prequential_errors(stream, make_learner(self.learner)))
        return self._cache[key]


# -- scoring ---------------------------------------------------------------------------------------
@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    delays: list[int] = field(default_factory=list)

    def add(self, other: "Score") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.delays.extend(other.delays)

    @property
    def mean_delay(self) -> float:
        return float(np.mean(self.delays)) if self.delays else math.nan


def score(alarms: Any, drifts: tuple[int, ...] | list[int], tol: int) -> Score:
    """TP/FP/FN and delays of one run: the first alarm in ``[drift, drift + tol)`` detects the drift."""
    alarms = sorted(int(a) for a in alarms)
    used: set[int] = set()
    result = Score()
    for d in drifts:
        hit = next((a for a in alarms if d <= a < d + tol and a not in used), None)
        if hit is None:
            result.fn += 1
        else:
            used.add(hit)
            result.tp += 1
            result.delays.append(hit - d)
    result.fp = len(alarms) - len(used)
    return result


def detector_input(name: str, errors: np.ndarray) -> np.ndarray:
    return 1.0 - errors if DETECTORS[name][3] else errors


def ours_positions(name: str, xs: np.ndarray, **params: Any) -> np.ndarray:
    return our_class(name)(**{**DETECTORS[name][1], **params}).update_many(xs)


def river_positions(name: str, xs: np.ndarray) -> np.ndarray:
    path, params, binary, _ = DETECTORS[name]
    det = load(path)(**params)
    values = xs.astype(np.int64).tolist() if binary else xs.tolist()
    out = []
    for i, x in enumerate(values):
        det.update(x)
        if det.drift_detected:
            out.append(i)
    return np.asarray(out, dtype=np.int64)


def reference_window(stream: LabelledStream, xs: np.ndarray) -> np.ndarray:
    """The first concept after the learner's warm-up (a tenth of it): what a service sees at start."""
    first = stream.drifts[0]
    return xs[first // 10 : first]


# -- one (stream, seed) ----------------------------------------------------------------------------
@dataclass
class RunResult:
    stream: str
    seed: int
    # detector -> (ours, River) alarm positions
    alarms: dict[str, tuple[np.ndarray, np.ndarray]]
    # detector -> (calibrated alarm positions, param, value, estimated ERT) or None if not reachable
    calibrated: dict[str, tuple[np.ndarray, str, float, float] | None]
    drifts: tuple[int, ...]
    tol: int
    error_rate: float


def run_one(stream_name: str, seed: int, n: int, detectors: list[str], learner: str,
            calibrated_ert: float | None, cache: ErrorStreams | None = None) -> RunResult:
    cache = cache if cache is not None else ErrorStreams(learner)
    stream, errors = cache.get(stream_name, n, seed)
    alarms, calibrated = {}, {}
    for name in detectors:
        xs = detector_input(name, errors)
        alarms[name] = (ours_positions(name, xs), river_positions(name, xs))
        if calibrated_ert is not None and name not in NOT_CALIBRATED:
            from detectors.calibrate import calibrate

            factory = our_class(name)
            if DETECTORS[name][1]:
                factory = _Partial(factory, DETECTORS[name][1])
            try:
                cal = calibrate(factory, reference_window(stream, xs), calibrated_ert, seed=seed, n_runs=100)
            except ValueError:  # the target is out of the detector's reach on this reference
                calibrated[name] = None
            else:
                calibrated[name] = (cal.new().update_many(xs), cal.param, cal.value, cal.estimated_ert)
    return RunResult(stream_name, seed, alarms, calibrated, stream.drifts, tolerance(stream),
                     float(errors.mean()))


@dataclass(frozen=True)
class _Partial:
    """A picklable ``functools.partial`` look-alike for detector factories with fixed parameters."""

    cls: type
    params: dict

    def __call__(self, **kw: Any) -> Any:
        return self.cls(**{**self.params, **kw})


def _run_task(args: tuple) -> RunResult:
    return run_one(*args)


def run_all(streams: list[str], seeds: list[int], n: int, detectors: list[str], learner: str,
            calibrated_ert: float | None, jobs: int) -> list[RunResult]:
    tasks = [(s, seed, n, detectors, learner, calibrated_ert) for s in streams for seed in seeds]
    if jobs <= 1:
        cache = ErrorStreams(learner)
        return [run_one(*t, cache=cache) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_run_task, tasks))


# -- tables ----------------------------------------------------------------------------------------
@dataclass
class Row:
    stream: str
    detector: str
    ours: Score
    river: Score
    same: bool
    runs: int
    cal: Score | None = None
    cal_values: list[float] = field(default_factory=list)
    cal_param: str = ""
    cal_missing: int = 0


def summarize(results: list[RunResult], detectors: list[str]) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    for r in results:
        for name in detectors:
            row = rows.setdefault((r.stream, name), Row(r.stream, name, Score(), Score(), True, 0))
            ours, river = r.alarms[name]
            row.ours.add(score(ours, r.drifts, r.tol))
            row.river.add(score(river, r.drifts, r.tol))
            row.same = row.same and np.array_equal(ours, river)
            row.runs += 1
            if name in r.calibrated:
                row.cal = row.cal or Score()
                got = r.calibrated[name]
                if got is None:
                    row.cal_missing += 1
                else:
                    row.cal.add(score(got[0], r.drifts, r.tol))
                    row.cal_param = got[1]
                    row.cal_values.append(got[2])
    return list(rows.values())


def _fmt(v: float, digits: int = 1) -> str:
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _cells(s: Score, runs: int) -> list[str]:
    return [_fmt(s.mean_delay, 0), _fmt(s.tp / runs, 2), _fmt(s.fp / runs, 2), _fmt(s.fn / runs, 2)]


def table(rows: list[Row], calibrated_ert: float | None) -> tuple[list[str], list[list[str]]]:
    header = ["stream", "detector", "delay", "TP", "FP", "FN", "River delay", "River TP", "River FP",
              "River FN", "ours==River"]
    body = [[r.stream, r.detector, *_cells(r.ours, r.runs), *_cells(r.river, r.runs),
             "yes" if r.same else "NO"] for r in rows]
    if calibrated_ert is not None:
        header += [f"cal@{calibrated_ert:g} delay", "cal TP", "cal FP", "cal FN", "cal value (median)"]
        for r, line in zip(rows, body):
            runs = r.runs - r.cal_missing
            if r.cal is None or runs == 0:
                line += ["-", "-", "-", "-", "n/a" if r.cal is None else "unreachable"]
            else:
                note = f"{r.cal_param}={np.median(r.cal_values):.3g}"
                if r.cal_missing:
                    note += f" ({r.cal_missing} runs unreachable)"
                line += [*_cells(r.cal, runs), note]
    return header, body


def print_plain(header: list[str], body: list[list[str]]) -> None:
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    print(fmt(header))
    print("-" * len(fmt(header)))
    for line in body:
        print(fmt(line))


def print_markdown(header: list[str], body: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    for line in body:
        print("| " + " | ".join(line) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30, help="runs per stream (seeds 0..N-1; default 30)")
    parser.add_argument("--n", type=int, default=100_000, help="instances per stream (default 100000)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_SEEDS} seeds of {QUICK_N:,} instances")
    parser.add_argument("--streams", nargs="*", choices=list(STREAMS), help="only these streams")
    parser.add_argument("--detectors", nargs="*", choices=list(DETECTORS), help="only these detectors")
    parser.add_argument("--learner", choices=("nb", "ht"), default="nb",
                        help="GaussianNB (nb, default) or HoeffdingTreeClassifier (ht)")
    parser.add_argument("--calibrated", type=float, metavar="ERT",
                        help="also calibrate each detector for one false alarm every ERT events")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes, one (stream, seed) per task (default 2)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    seeds = min(args.seeds, QUICK_SEEDS) if args.quick else args.seeds
    n = min(args.n, QUICK_N) if args.quick else args.n
    streams = args.streams or list(STREAMS)
    detectors = args.detectors or list(DETECTORS)

    results = run_all(streams, list(range(seeds)), n, detectors, args.learner, args.calibrated, args.jobs)
    rows = summarize(results, detectors)
    learner = "GaussianNB" if args.learner == "nb" else "HoeffdingTreeClassifier"
    print(f"\ndetection quality over {seeds} seed(s) x {n:,} instances; learner: River {learner}, "
          "prequential, NOT reset on alarms (every detector sees the identical error stream)")
    print("TP/FP/FN: means per run; delay: mean over true positives; tolerance 250 after an abrupt drift, "
          "width + 250 after the start of a gradual one; FHDDM reads 1 - error")
    rates = {s: np.mean([r.error_rate for r in results if r.stream == s]) for s in streams}
    print("learner error rate: " + ", ".join(f"{s} {rates[s]:.3f}" for s in streams))
    if args.calibrated is not None:
        print(f"cal: ours calibrated (detectors.calibrate, n_runs=100) on the first concept for one false "
              f"alarm every {args.calibrated:g} events; River and the other columns use the defaults; "
              f"not calibrated: {', '.join(sorted(NOT_CALIBRATED & set(detectors))) or 'none'}")
    print()
    header, body = table(rows, args.calibrated)
    (print_markdown if args.markdown else print_plain)(header, body)


if __name__ == "__main__":
    main()
