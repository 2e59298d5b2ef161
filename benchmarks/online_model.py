"""Online model microbenchmark: the compiled kernel (``stream.learner``) against River's pipeline, per event.

    python benchmarks/online_model.py             # 20k inference events + their labels
    python benchmarks/online_model.py --quick     # 5k
    python benchmarks/online_model.py --events 50000 --batch 256 --repeats 3

The workload is ``stream.tools.workload.Workload`` with 8 extra numeric features: 12 features, 2 of them
categorical (6 and 3 categories), the concept changing at 1/3 and 2/3 of the stream, labels joining 5 s
(500 events) after their prediction. A second scenario adds ``"shop"``, a categorical feature with 200
categories, in place of one numeric feature (River's one-hot emits a zero for every category seen, so its
cost grows with them). The operations are the service's: predict when an inference event arrives, learn
when its label joins, in arrival order.

Per scenario, measured in this run on the same operations:

* ``river``: the pipeline ``stream.detect.build_online_model`` builds (scaled numeric + one-hot into
  ``OneVsRestClassifier(LogisticRegression(SGD(0.05)))``), ``predict_one`` then later ``learn_one`` per event;
* ``kernel ovr``: :class:`stream.learner.OnlineLinearModel` with ``head="ovr"`` (the same two regressions
  as River), the micro-batches of ``--batch`` records replayed with ``replay`` (encoding included), each
  learn passing the handle of its prediction (the features as encoded then);
* ``kernel auto``: the new default, one logistic regression for the binary label;
* ``no handles``: ``kernel auto`` with every learn encoding its features again (no prediction handle);
* ``kernel per-event``: ``head="auto"`` through River's per-event API (``predict_one``/``learn_one``).

Costs are thread CPU microseconds per inference event (its prediction and its learn), the best of
``--repeats`` runs; the numba compilation or cache load happens in a warm-up call before the clock. The
exactness columns compare ``kernel ovr`` with River on every prediction of the run (largest probability
difference, predicted labels that differ). Then the accuracy of the binary head against the old one-vs-rest
head (prequential: each prediction against its label), overall and per concept segment. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stream.learner import MicroBatch, OnlineLinearModel  # noqa: E402
from stream.tools.workload import Workload, events  # noqa: E402

LEARNING_RATE = 0.05

Ops = list[tuple[bool, dict[str, Any], Any]]  # (learn?, features, label)


def workload_ops(n: int, wide: bool) -> tuple[Ops, list[int]]:
    """The service's operations on the workload, and the concept segment of each inference event."""
    w = Workload(n_events=n, change_points=(n // 3, 2 * n // 3), extra_features=8, seed=7, t0=0.0)
    features: dict[str, dict[str, Any]] = {}
    ops: Ops = []
    segments = []
    for kind, _, ev in events(w):
        if kind == "inference":
            x = ev["features"]
            if wide:
                i = int(ev["id"].rsplit("-", 1)[1])
                x = {k: v for k, v in x.items() if k != "f7"}
                x["shop"] = f"s{(i * 7919) % 200}"
            features[ev["id"]] = x
            ops.append((False, x, None))
            i = len(segments)
            segments.append(sum(1 for c in w.change_points if i >= c))
        else:
            ops.append((True, features.pop(ev["id"]), ev["label"]))
    return ops, segments


def river_model():
    from river import compose, linear_model, multiclass, optim, preprocessing

    # the same pipeline as stream.detect.build_online_model(kind="logistic", task="classification")
    numeric = compose.SelectType(int, float) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    head = multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(LEARNING_RATE)))
    return (numeric + categorical) | head


def river_x(features: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, bool) else v) for k, v in features.items() if v is not None}


def run_river(ops: Ops) -> tuple[list[Any], list[float]]:
    """What the service does today: ``predict_one`` at the inference, ``learn_one`` at the join."""
    m = river_model()
    preds = []
    for learn, x, y in ops:
        xr = river_x(x)  # what the service does before each call
        if learn:
            m.learn_one(xr, y)
        else:
            preds.append(m.predict_one(xr))
    return preds, []


def river_probas(ops: Ops) -> list[float]:
    """River's probabilities of label 1 at every prediction (for the exactness columns, not timed)."""
    m = river_model()
    out = []
    for learn, x, y in ops:
        if learn:
            m.learn_one(river_x(x), y)
        else:
            out.append(m.predict_proba_one(river_x(x)).get(1, 0.0))
    return out


def run_kernel(ops: Ops, batch: int, head: str, handles: bool = True) -> tuple[list[Any], list[float]]:
    """The micro-batches replayed; each learn passes its prediction's handle (the service would keep it
    with the pending prediction), unless ``handles`` is false: then every learn encodes its features again."""
    m = OnlineLinearModel("classification", LEARNING_RATE, head)
    preds: list[Any] = []
    probas: list[float] = []
    handle_of: dict[int, int] = {}
    for start in range(0, len(ops), batch):
        b = MicroBatch()
        predicted = []
        for learn, x, y in ops[start: start + batch]:
            if learn:
                b.learn(x, y, handle_of.pop(id(x), -1))
            else:
                b.predict(x)
                predicted.append(x)
        out = m.replay(b)
        if handles:
            handle_of.update(zip(map(id, predicted), out.handles))
        preds.extend(out.predictions)
        if 1 in out.classes and out.proba is not None:
            probas.extend(out.proba[:, out.classes.index(1)].tolist())
        else:
            probas.extend([0.0] * len(out.predictions))
    return preds, probas


def run_per_event(ops: Ops, head: str = "auto") -> tuple[list[Any], list[float]]:
    m = OnlineLinearModel("classification", LEARNING_RATE, head)
    preds = []
    for learn, x, y in ops:
        if learn:
            m.learn_one(x, y)
        else:
            preds.append(m.predict_one(x))
    return preds, []


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.thread_time()
        out = fn()
        best = min(best, time.thread_time() - t0)
    return best, out


def accuracy(preds: list[Any], labels: list[Any], segments: list[int], seg: int | None) -> float:
    pairs = [(p, y) for p, y, s in zip(preds, labels, segments) if y is not None and (seg is None or s == seg)]
    return sum(p == y for p, y in pairs) / max(len(pairs), 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="5k events, 1 repeat")
    ap.add_argument("--batch", type=int, default=256, help="records per micro-batch (the service's default)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    n = 5_000 if args.quick else args.events
    repeats = 1 if args.quick else args.repeats

    warm, _ = workload_ops(300, True)
    run_kernel(warm, args.batch, "auto")  # numba: compile or load the cache, outside the clock
    run_river(warm)  # River's imports, outside the clock

    print(f"online model, {n} inference events + their labels, micro-batches of {args.batch} records, "
          f"CPU µs per inference event (predict + learn), best of {repeats}")
    print(f"{'scenario':<34} {'river':>7} {'kernel ovr':>11} {'kernel auto':>12} {'no handles':>11} "
          f"{'per-event':>10} {'auto/river':>11} {'ovr/river':>10} {'no handles/r':>13} {'max |dp| ovr':>13} "
          f"{'labels differ':>14}")
    for name, wide in (("12 features (2 categorical)", False), ("12 features, one of 200 categories", True)):
        ops, segments = workload_ops(n, wide)
        t_river, (r_preds, _) = timed(lambda: run_river(ops), repeats)
        r_probas = river_probas(ops)
        t_ovr, (o_preds, o_probas) = timed(lambda: run_kernel(ops, args.batch, "ovr"), repeats)
        t_auto, (a_preds, _) = timed(lambda: run_kernel(ops, args.batch, "auto"), repeats)
        t_nohandle, _ = timed(lambda: run_kernel(ops, args.batch, "auto", handles=False), repeats)
        t_one, _ = timed(lambda: run_per_event(ops), 1)
        us = [t * 1e6 / n for t in (t_river, t_ovr, t_auto, t_one, t_nohandle)]
        dp = max((abs(a - b) for a, b in zip(r_probas, o_probas)), default=0.0)
        differ = sum(a != b for a, b in zip(r_preds, o_preds))
        print(f"{name:<34} {us[0]:>7.2f} {us[1]:>11.3f} {us[2]:>12.3f} {us[4]:>11.3f} {us[3]:>10.2f} "
              f"{us[0] / us[2]:>10.1f}x {us[0] / us[1]:>9.1f}x {us[0] / us[4]:>12.1f}x {dp:>13.1e} {differ:>14}")
        if not wide:
            labels_of = {id(x): y for learn, x, y in ops if learn}
            labels = [labels_of.get(id(x)) for learn, x, _ in ops if not learn]
            heads = (o_preds, a_preds, labels, segments)
    o_preds, a_preds, labels, segments = heads
    segs = sorted(set(segments))
    print()
    print("prequential accuracy on the drifting workload (12 features; concept changes at 1/3 and 2/3)")
    print(f"{'head':<40} {'all':>7} " + " ".join(f"{'segment ' + str(s):>10}" for s in segs))
    for head, preds in (("one-vs-rest (River's, the old default)", o_preds),
                        ("one logistic regression (new default)", a_preds)):
        print(f"{head:<40} {accuracy(preds, labels, segments, None):>7.4f} "
              + " ".join(f"{accuracy(preds, labels, segments, s):>10.4f}" for s in segs))
    differ = sum(a != b for a, b in zip(o_preds, a_preds))
    print(f"the two heads predict different labels for {differ} of {len(a_preds)} events")

if __name__ == "__main__":
    main()
