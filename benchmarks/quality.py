"""Detection-quality benchmark: delay, TP, FP, FN of our detectors and River's on labelled drifting streams.

    python benchmarks/quality.py [--quick] [--seeds 30] [--n 100000] [--streams Sine1 LED ...]
                                 [--detectors ADWIN DDM ...] [--learner nb|ht] [--jobs 2]
                                 [--calibrated ERT] [--markdown] [--cache-dir DIR | --no-cache]
                                 [--river-kswin-seeds K]

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

Cost and resuming: one (stream, seed) task of 100k instances costs about 7 s of GaussianNB (27 s on LED: 24
attributes, 10 classes), 27 s of River's KSWIN (a ``scipy.stats.ks_2samp`` per event) and, with
``--calibrated 100000``, about 10 s of calibration; every other detector, ours or River's, takes well under
a second. The full table (180 tasks) is about two and a half CPU hours. The expensive, deterministic pieces
of a task -- the learner's error stream, River's alarms per detector and the calibrated alarms per detector
-- are therefore stored under ``--cache-dir`` (default ``.cache/quality/``), one ``.npz`` per piece, keyed
by everything they depend on: stream, n, seed, learner, detector parameters, the calibration target, the
versions of River, numpy and scipy, and a hash of ``benchmarks/quality_streams.py`` (error streams) and of
the ``detectors/`` modules a calibrated detector imports (calibrated alarms). An interrupted run started
again with the same arguments resumes where it stopped; ``--no-cache`` recomputes everything. Our detectors'
default alarms are always recomputed (milliseconds). Bump :data:`CACHE_VERSION` when a change here changes a
cached piece. Progress (tasks done / total, elapsed) goes to stderr. ``--river-kswin-seeds K`` runs River's
KSWIN on the first K seeds only, when the machine cannot afford all of them; the output says so above the
table and in the KSWIN rows' ``ours==River`` cell.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import io
import json
import math
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.quality_streams import STREAMS, LabelledStream, tolerance  # noqa: E402

from detectors.registry import DETECTORS as REGISTERED, is_binary  # noqa: E402

#: constructor params given to both ours and River's, where the defaults will not do
_SHARED_PARAMS: dict[str, dict[str, Any]] = {"KSWIN": {"seed": 42}}
#: detectors that count correct predictions, so read 1 - error
_READS_CORRECT = frozenset({"FHDDM"})

# name -> (River class path, constructor params shared by both, binary?, reads 1 - error?), for every detector
# of the registry; River's class has the same name, under river.drift.binary for the binary ones
DETECTORS: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    name: (f"river.drift.{'binary.' if is_binary(cls) else ''}{name}", _SHARED_PARAMS.get(name, {}),
           is_binary(cls), name in _READS_CORRECT)
    for name, cls in REGISTERED.items()
}
#: detectors left out of ``--calibrated``: one KS test per event makes calibrating them take minutes
NOT_CALIBRATED = frozenset({"KSWIN"})
QUICK_SEEDS, QUICK_N = 2, 20_000
#: part of every cache key: bump it when a change in this file changes an error stream or an alarm list
CACHE_VERSION = 1
DEFAULT_CACHE_DIR = _ROOT / ".cache" / "quality"
CALIBRATION_RUNS = 100


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


def _fingerprint(*paths: Path) -> str:
    """sha256 of the given files (directories: their ``*.py``), for cache keys."""
    digest = hashlib.sha256()
    for path in paths:
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f.relative_to(_ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


_DETECTORS_IMPORT = re.compile(
    r"^\s*(?:from\s+detectors(?:\.(\w+))?\s+import\s+([\w, ]+)|import\s+detectors\.(\w+))", re.MULTILINE)


def _detector_code(name: str) -> str:
    """Hash of the source our calibrated ``name`` runs: ``detectors/calibrate.py``, the detector's module and,
    transitively, every ``detectors`` module they import (lazy imports included: the source is scanned);
    edits elsewhere in ``detectors/`` keep the cache."""
    package = _ROOT / "detectors"
    todo = [package / "calibrate.py", Path(inspect.getfile(our_class(name)))]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        for sub, names, plain in _DETECTORS_IMPORT.findall(path.read_text()):
            if sub or plain:
                todo.append(package / f"{sub or plain}.py")
            else:  # from detectors import a, b: submodules, or names of the package itself
                for n in (x.strip() for x in names.split(",")):
                    sub_path = package / f"{n}.py"
                    todo.append(sub_path if sub_path.exists() else package / "__init__.py")
    return _fingerprint(*sorted(seen))


def _versions() -> dict[str, str]:
    import river
    import scipy

    return {"river": river.__version__, "numpy": np.__version__, "scipy": scipy.__version__}


@dataclass
class ResultCache:
    """Pieces of a benchmark run on disk, one ``.npz`` per piece, keyed by everything they depend on.

    A key is a small JSON-able dict; the file name is readable (``what``, stream, seed, detector) plus a
    hash of the whole key, and the key itself is stored in the file and compared on load. Writes go to a
    temporary file that is then renamed, so an interrupted run never leaves a half-written piece.
    """

    root: Path

    def _path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        label = "-".join(str(key[k]) for k in ("what", "stream", "n", "seed", "detector") if k in key)
        return self.root / f"{label}-{digest}.npz"

    def load(self, key: dict) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            if str(data["_key"]) != json.dumps(key, sort_keys=True):
                return None
            return {k: data[k] for k in data.files if k != "_key"}

    def save(self, key: dict, arrays: dict[str, np.ndarray]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")  # the cache is never committed
        buf = io.BytesIO()
        np.savez(buf, _key=np.array(json.dumps(key, sort_keys=True)), **arrays)
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)


@dataclass(frozen=True)
class StreamLabels:
    """What scoring needs of a :class:`LabelledStream`: where it drifts and how (no instances)."""

    name: str
    kind: str
    drifts: tuple[int, ...]
    width: int


@dataclass
class ErrorStreams:
    """The learner's error stream per (stream, n, seed): computed once per run, and kept on ``disk``."""

    learner: str = "nb"
    disk: ResultCache | None = None
    _cache: dict[tuple[str, int, int], tuple[StreamLabels, np.ndarray]] = field(default_factory=dict)

    def key(self, name: str, n: int, seed: int) -> dict:
        return {"what": "errors", "stream": name, "n": n, "seed": seed, "learner": self.learner,
                "version": CACHE_VERSION,
                "streams_code": _fingerprint(_ROOT / "benchmarks" / "quality_streams.py"),
                **_versions()}

    def get(self, name: str, n: int, seed: int) -> tuple[StreamLabels, np.ndarray]:
        mem = (name, n, seed)
        if mem not in self._cache:
            self._cache[mem] = self._load_or_compute(name, n, seed)
        return self._cache[mem]

    def _load_or_compute(self, name: str, n: int, seed: int) -> tuple[StreamLabels, np.ndarray]:
        key = self.key(name, n, seed)
        stored = self.disk.load(key) if self.disk else None
        if stored is not None:
            labels = StreamLabels(name, str(stored["kind"]), tuple(int(d) for d in stored["drifts"]),
                                  int(stored["width"]))
            return labels, stored["errors"]
        stream = STREAMS[name](n, seed)
        errors = prequential_errors(stream, make_learner(self.learner))
        if self.disk:
            self.disk.save(key, {"errors": errors, "kind": np.array(stream.kind),
                                 "drifts": np.asarray(stream.drifts, dtype=np.int64),
                                 "width": np.array(stream.width)})
        return StreamLabels(name, stream.kind, stream.drifts, stream.width), errors


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


def reference_window(stream: LabelledStream | StreamLabels, xs: np.ndarray) -> np.ndarray:
    """The first concept after the learner's warm-up (a tenth of it): what a service sees at start."""
    first = stream.drifts[0]
    return xs[first // 10 : first]


# -- one (stream, seed) ----------------------------------------------------------------------------
@dataclass
class RunResult:
    stream: str
    seed: int
    # detector -> (ours, River) alarm positions; River's is None where it was not run (--river-kswin-seeds)
    alarms: dict[str, tuple[np.ndarray, np.ndarray | None]]
    # detector -> (calibrated alarm positions, param, value, estimated ERT) or None if not reachable
    calibrated: dict[str, tuple[np.ndarray, str, float, float] | None]
    drifts: tuple[int, ...]
    tol: int
    error_rate: float


def run_one(stream_name: str, seed: int, n: int, detectors: list[str], learner: str,
            calibrated_ert: float | None, cache: ErrorStreams | None = None,
            river_detectors: list[str] | None = None) -> RunResult:
    """Every detector on one error stream; River's only for ``river_detectors`` (default: all)."""
    cache = cache if cache is not None else ErrorStreams(learner)
    river_detectors = detectors if river_detectors is None else river_detectors
    stream, errors = cache.get(stream_name, n, seed)
    base_key = cache.key(stream_name, n, seed)
    alarms, calibrated = {}, {}
    for name in detectors:
        xs = detector_input(name, errors)
        river = _cached_river_positions(cache.disk, base_key, name, xs) if name in river_detectors else None
        alarms[name] = (ours_positions(name, xs), river)
        if calibrated_ert is not None and name not in NOT_CALIBRATED:
            calibrated[name] = _cached_calibrated(cache.disk, base_key, name, stream, xs, calibrated_ert, seed)
    return RunResult(stream_name, seed, alarms, calibrated, stream.drifts, tolerance(stream),
                     float(errors.mean()))


def _cached_river_positions(disk: ResultCache | None, base_key: dict, name: str, xs: np.ndarray) -> np.ndarray:
    """River's alarms on ``xs`` (always River's own ``update`` loop; stored so that it runs once)."""
    key = {**base_key, "what": "river", "detector": name, "path": DETECTORS[name][0],
           "params": DETECTORS[name][1], "input": "1-error" if DETECTORS[name][3] else "error"}
    stored = disk.load(key) if disk else None
    if stored is not None:
        return stored["alarms"]
    positions = river_positions(name, xs)
    if disk:
        disk.save(key, {"alarms": positions})
    return positions


def _cached_calibrated(disk: ResultCache | None, base_key: dict, name: str, stream: StreamLabels,
                       xs: np.ndarray, ert: float, seed: int) -> tuple[np.ndarray, str, float, float] | None:
    key = {**base_key, "what": "calibrated", "detector": name, "params": DETECTORS[name][1],
           "input": "1-error" if DETECTORS[name][3] else "error", "ert": ert, "n_runs": CALIBRATION_RUNS,
           "calibration_seed": seed, "detector_code": _detector_code(name)}
    stored = disk.load(key) if disk else None
    if stored is not None:
        if not bool(stored["reachable"]):
            return None
        return (stored["alarms"], str(stored["param"]), float(stored["value"]), float(stored["estimated_ert"]))
    got = calibrated_positions(name, stream, xs, ert, seed)
    if disk:
        if got is None:
            disk.save(key, {"reachable": np.array(False)})
        else:
            disk.save(key, {"reachable": np.array(True), "alarms": got[0], "param": np.array(got[1]),
                            "value": np.array(got[2]), "estimated_ert": np.array(got[3])})
    return got


def calibrated_positions(name: str, stream: LabelledStream | StreamLabels, xs: np.ndarray, ert: float,
                         seed: int) -> tuple[np.ndarray, str, float, float] | None:
    """Our detector calibrated on the reference window, run on ``xs``; None if ``ert`` is out of reach."""
    from detectors.calibrate import calibrate

    factory = our_class(name)
    if DETECTORS[name][1]:
        factory = _Partial(factory, DETECTORS[name][1])
    try:
        cal = calibrate(factory, reference_window(stream, xs), ert, seed=seed, n_runs=CALIBRATION_RUNS)
    except ValueError:  # the target is out of the detector's reach on this reference
        return None
    return cal.new().update_many(xs), cal.param, cal.value, cal.estimated_ert


@dataclass(frozen=True)
class _Partial:
    """A picklable ``functools.partial`` look-alike for detector factories with fixed parameters."""

    cls: type
    params: dict

    def __call__(self, **kw: Any) -> Any:
        return self.cls(**{**self.params, **kw})


def _run_task(args: tuple) -> RunResult:
    *task, river_detectors, cache_dir = args
    return run_one(*task, cache=ErrorStreams(task[4], ResultCache(cache_dir) if cache_dir else None),
                   river_detectors=river_detectors)


def run_all(streams: list[str], seeds: list[int], n: int, detectors: list[str], learner: str,
            calibrated_ert: float | None, jobs: int, cache_dir: Path | None = None,
            progress: Any = sys.stderr, river_kswin_seeds: int | None = None) -> list[RunResult]:
    """One task per (stream, seed); results in stream-major order whatever order they finish in.

    ``river_kswin_seeds``: run River's KSWIN only on the first that many seeds (None: on all of them).

    Tasks are started seed by seed (every stream of seed 0, then of seed 1, ...), so that an interrupted
    run has whole seeds on disk and each worker gets a mix of streams.
    """
    order = [(s, seed) for seed in seeds for s in streams]
    def river_detectors(seed: int) -> list[str]:
        skip = river_kswin_seeds is not None and seed not in seeds[:river_kswin_seeds]
        return [d for d in detectors if not (skip and d == "KSWIN")]

    tasks = {key: (key[0], key[1], n, detectors, learner, calibrated_ert, river_detectors(key[1]), cache_dir)
             for key in order}
    results: dict[tuple[str, int], RunResult] = {}
    start = time.monotonic()

    def report(key: tuple[str, int]) -> None:
        if progress is not None:
            elapsed = time.monotonic() - start
            print(f"[quality] {len(results)}/{len(tasks)} tasks done ({key[0]} seed {key[1]}), "
                  f"{elapsed / 60:.1f} min elapsed", file=progress, flush=True)

    if jobs <= 1:
        cache = ErrorStreams(learner, ResultCache(cache_dir) if cache_dir else None)
        for key in order:
            results[key] = run_one(*tasks[key][:-2], cache=cache, river_detectors=tasks[key][-2])
            report(key)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_run_task, tasks[key]): key for key in order}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                report(futures[future])
    return [results[(s, seed)] for s in streams for seed in seeds]


# -- tables ----------------------------------------------------------------------------------------
@dataclass
class Row:
    stream: str
    detector: str
    ours: Score
    river: Score
    same: bool
    runs: int
    river_runs: int = 0
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
            row.runs += 1
            if river is not None:
                row.river.add(score(river, r.drifts, r.tol))
                row.same = row.same and np.array_equal(ours, river)
                row.river_runs += 1
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
    if runs == 0:
        return ["-"] * 4
    return [_fmt(s.mean_delay, 0), _fmt(s.tp / runs, 2), _fmt(s.fp / runs, 2), _fmt(s.fn / runs, 2)]


def _same(r: Row) -> str:
    if r.river_runs == 0:
        return "-"
    same = "yes" if r.same else "NO"
    return same if r.river_runs == r.runs else f"{same} ({r.river_runs} of {r.runs} runs)"


def table(rows: list[Row], calibrated_ert: float | None) -> tuple[list[str], list[list[str]]]:
    header = ["stream", "detector", "delay", "TP", "FP", "FN", "River delay", "River TP", "River FP",
              "River FN", "ours==River"]
    body = [[r.stream, r.detector, *_cells(r.ours, r.runs), *_cells(r.river, r.river_runs), _same(r)]
            for r in rows]
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
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where error streams, River's alarms and calibrations are kept so that an "
                             "interrupted run resumes (default .cache/quality)")
    parser.add_argument("--river-kswin-seeds", type=int, metavar="K",
                        help="run River's KSWIN (a KS test per event, about 27 s per 100k) on the first K "
                             "seeds only; its River columns are then means over K runs (default: all)")
    parser.add_argument("--no-cache", action="store_true", help="compute everything, read and write no cache")
    args = parser.parse_args(argv)
    seeds = min(args.seeds, QUICK_SEEDS) if args.quick else args.seeds
    n = min(args.n, QUICK_N) if args.quick else args.n
    streams = args.streams or list(STREAMS)
    detectors = args.detectors or list(DETECTORS)

    started = time.monotonic()
    results = run_all(streams, list(range(seeds)), n, detectors, args.learner, args.calibrated, args.jobs,
                      None if args.no_cache else args.cache_dir,
                      river_kswin_seeds=args.river_kswin_seeds)
    print(f"[quality] {len(results)} tasks in {(time.monotonic() - started) / 60:.1f} min",
          file=sys.stderr, flush=True)
    rows = summarize(results, detectors)
    learner = "GaussianNB" if args.learner == "nb" else "HoeffdingTreeClassifier"
    print(f"\ndetection quality over {seeds} seed(s) x {n:,} instances; learner: River {learner}, "
          "prequential, NOT reset on alarms (every detector sees the identical error stream)")
    print("TP/FP/FN: means per run; delay: mean over true positives; tolerance 250 after an abrupt drift, "
          "width + 250 after the start of a gradual one; FHDDM reads 1 - error")
    kswin_runs = min(seeds, args.river_kswin_seeds if args.river_kswin_seeds is not None else seeds)
    if "KSWIN" in detectors and kswin_runs < seeds:
        print(f"NOTE: River's KSWIN was run on seeds 0..{kswin_runs - 1} only ({kswin_runs} of {seeds} runs "
              f"per stream, --river-kswin-seeds {kswin_runs}): its River columns and ours==River are over "
              f"those runs, our KSWIN columns over all {seeds}")
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
