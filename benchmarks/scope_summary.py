"""Model-scope summaries: samples vs mergeable sketches (accuracy and bytes), and the stage's cost.

    python benchmarks/scope_summary.py [--events 60000] [--partitions 1 8 32]

The demo's workload (concept change at 1/3, recurrence at 2/3, ``amount`` shift at 5/6) is split over P
partitions by a hash of the event id; each partition pipeline is simulated (tests/unit/scope/sim.py) and
cut into micro-batches of 1..511 records (mean 256, ``processing.micro_batch_records``).

1. **Bytes** of the summaries as sent (msgpack), per inference event, by part, against the input messages
   (inference + label JSON) measured in the same run.
2. **Accuracy** of the feature-drift KS test on the merged stream: exact (samples, what the stage does:
   every value in merged event-time order through ``KSDrift``) vs the alternative, one Apache DataSketches
   KLL sketch per summary and numeric signal, merged into a reference and a current window at each test
   point (windows can only consist of whole summaries). Differences of the KS statistic D and of
   log10(p), decisions (p < alpha) that differ, the first detection of the ``amount`` shift, and the
   sketches' bytes for the same signals against the samples' bytes.
3. **The stage** (with the service's gc threshold, ``--gc-threshold``): CPU per merged event (one ModelStage, all summaries of all partitions), the state bytes
   of one model, and the first detections per P (the issue's target: within 1.2x of P = 1).

A table, no assertion; timings on a shared machine vary by +-10%.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time

import msgspec
import numpy as np
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from detectors._stats import kolmogorov_sf  # noqa: E402
from detectors.ks_test import KSDrift  # noqa: E402
from stream.config import DataDriftConfig, ModelSpec, ProcessingConfig  # noqa: E402
from stream.scope.stage import ModelStage, ScopeConfig  # noqa: E402
from stream.scope.summary import encode, undelta  # noqa: E402
from tests.unit.scope.sim import partition_items, summaries, workload_events  # noqa: E402

T0 = 1_700_000_000.0
SPACING = 0.01
NUMERIC = ("amount", "age", "score")


def _bytes(sums, n_events):
    enc = msgspec.msgpack.encode
    total = sum(len(encode(s)) for s in sums)
    parts = {"outcomes": sum(len(enc(s.outcomes)) for s in sums), "rows": sum(len(enc(s.rows)) for s in sums),
             "labels": sum(len(enc(s.labels)) for s in sums)}
    return total / n_events, {k: v / n_events for k, v in parts.items()}


def _signal_values(s, name):
    """(ts, value) of one numeric signal in one summary."""
    r = s.rows
    col = r.score if name == "score" else r.features.get(name)
    if col is None:
        return []
    return [(t, float(v)) for t, v in zip(r.ts, col) if v is not None]


def _accuracy(sums, dd: DataDriftConfig, k: int):
    from datasketches import kll_doubles_sketch

    out = {}
    order = sorted(sums, key=lambda s: (s.watermark, s.partition))
    for name in NUMERIC:
        # exact: every value in merged order (ts, partition, offset)
        vals = []
        for s in sums:
            offs = undelta(s.rows.offsets)
            r = s.rows
            col = r.score if name == "score" else r.features.get(name)
            if col is None:
                continue
            vals += [(t, s.partition, o, float(v)) for t, o, v in zip(r.ts, offs, col) if v is not None]
        vals.sort()
        xs = np.array([v[3] for v in vals])
        tss = [v[0] for v in vals]
        test = KSDrift(alpha=dd.alpha, reference_size=dd.reference_size, window_size=dd.window_size, step=dd.step)
        results = test.update_many(xs)
        # sketches: one per summary, in the order summaries complete
        sketches, sk_bytes, counts, max_ts = [], 0, [], []
        for s in order:
            v = _signal_values(s, name)
            if not v:
                continue
            sk = kll_doubles_sketch(k)
            for _, x in v:
                sk.update(x)
            sk_bytes += len(sk.serialize())
            sketches.append(sk)
            counts.append(len(v))
            max_ts.append(max(t for t, _ in v))
        sample_bytes = sum(len(msgspec.msgpack.encode([x for _, x in _signal_values(s, name)])) for s in sums)
        cum = np.cumsum(counts)
        d_err, lp_err, differ, first_exact, first_sketch = [], [], 0, None, None
        for r in results:
            t_n = tss[r.position - 1]
            avail = int(np.searchsorted(np.array(max_ts), t_n, side="right"))  # summaries complete by t_n
            if avail == 0:
                continue
            nref = int(np.searchsorted(cum, dd.reference_size)) + 1  # whole summaries covering the reference
            if nref >= avail:
                continue
            ref = kll_doubles_sketch(k)
            for sk in sketches[:nref]:
                ref.merge(sk)
            cur = kll_doubles_sketch(k)
            got, j = 0, avail - 1
            while j >= nref and got < dd.window_size:
                cur.merge(sketches[j])
                got += counts[j]
                j -= 1
            grid = sorted(set(ref.get_quantiles(list(np.linspace(0, 1, 257)))) |
                          set(cur.get_quantiles(list(np.linspace(0, 1, 257)))))
            d = float(np.max(np.abs(np.array(ref.get_cdf(grid)[:-1]) - np.array(cur.get_cdf(grid)[:-1]))))
            n1, n2 = ref.n, cur.n
            p = kolmogorov_sf(math.sqrt(n1 * n2 / (n1 + n2)) * d)
            d_err.append(abs(d - r.statistic))
            lp_err.append(abs(math.log10(max(p, 1e-300)) - math.log10(max(r.p_value, 1e-300))))
            differ += (p < dd.alpha) != r.drift
            if name == "amount":
                if first_exact is None and r.drift:
                    first_exact = round((t_n - T0) / SPACING)
                if first_sketch is None and p < dd.alpha:
                    first_sketch = round((t_n - T0) / SPACING)
        out[name] = {"tests": len(d_err), "d_med": float(np.median(d_err)), "d_max": float(np.max(d_err)),
                     "lp_med": float(np.median(lp_err)), "lp_p95": float(np.percentile(lp_err, 95)),
                     "differ": differ, "first_exact": first_exact, "first_sketch": first_sketch,
                     "sketch_bytes": sk_bytes, "sample_bytes": sample_bytes}
    return out


def _many_models(models: int, events: int, partitions: int = 8) -> None:
    """``models`` models on one instance, each with ``events`` events over ``partitions`` partitions."""
    if models <= 0:
        return
    ev = workload_events(events, change_points=(events // 2,))
    items = partition_items(ev, partitions)
    stages, arrivals = [], []
    for m in range(models):
        name = f"m{m:03d}"
        stages.append(ModelStage(name, ModelSpec(), partitions, ScopeConfig(max_watermark_lag_seconds=0.0)))
        arrivals.append([s for p, it in enumerate(items) for s in summaries(name, p, it, seed=m)])
    by_name = {st.model: st for st in stages}
    # the models' summaries interleaved as on one partition of the internal topic, each model's by watermark
    order = sorted((s for a in arrivals for s in a), key=lambda s: (s.watermark, s.model, s.partition))
    t = time.process_time()
    for s in order:
        by_name[s.model].add(s)
    cpu = time.process_time() - t
    state = [len(orjson.dumps(st.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)) for st in stages]
    print(f"\n{models} models on one instance, {events} events each over {partitions} partitions "
          f"({len(order)} summaries): {cpu / (models * events) * 1e6:.1f} µs per event, "
          f"{cpu / models * 1e3:.0f} ms CPU per model, state {sum(state) / models / 1e3:.0f} kB per model "
          f"({sum(state) / 1e6:.1f} MB for all)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--partitions", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--kll-k", type=int, nargs="+", default=[8, 32, 200])
    ap.add_argument("--models", type=int, default=200, help="models on one instance (0: skip)")
    ap.add_argument("--model-events", type=int, default=3000, help="events per model in the many-models run")
    ap.add_argument("--gc-threshold", type=int, default=ProcessingConfig().gc_threshold,
                    help="gc generation-0 threshold, as the service sets it (processing.gc_threshold); 0: Python's")
    a = ap.parse_args()
    if a.gc_threshold:
        g = gc.get_threshold()
        gc.set_threshold(a.gc_threshold, g[1], g[2])
    n = a.events
    ev = workload_events(n, change_points=(n // 3, 2 * n // 3), feature_shift_at=(5 * n // 6,), concepts=2)
    input_bytes = sum(len(orjson.dumps(e)) for _, _, e in ev) / n
    dd = ModelSpec().data_drift
    print(f"workload: {n} inference events, changes at {n // 3} and {2 * n // 3}, amount shift at {5 * n // 6}; "
          f"input messages (inference + label JSON): {input_bytes:.1f} bytes per event (baseline)\n")
    print("| P | summaries | summary bytes/event | outcomes | rows | labels | vs input | stage µs/event "
          "| state bytes | first detections (change 1, change 2, amount) | concept incidents | retrain events |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = {}
    warm = partition_items(ev[:3000], 1)  # compile the numba kernels outside the measurement
    ModelStage("fraud", ModelSpec(), 1, ScopeConfig(max_watermark_lag_seconds=0.0)).add_many(
        summaries("fraud", 0, warm[0], seed=1))
    for P in a.partitions:
        items = partition_items(ev, P)
        streams = [summaries("fraud", p, it, seed=P, max_batch=511) for p, it in enumerate(items)]
        sums = [s for st in streams for s in st]
        per, parts = _bytes(sums, n)
        arrivals = sorted(sums, key=lambda s: (s.watermark, s.partition))
        stage = ModelStage("fraud", ModelSpec(), P, ScopeConfig(max_watermark_lag_seconds=0.0))
        t = time.process_time()
        outs = stage.add_many(arrivals)
        cpu = time.process_time() - t
        state = len(orjson.dumps(stage.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
        concept = [o.event for o in outs if o.event.get("kind") == "concept"]
        feature = [o.event for o in outs if o.event.get("kind") == "feature"]
        firsts = []
        for c in (n // 3, 2 * n // 3):
            later = [int(e["event_id"].rsplit("-", 1)[1]) for e in concept
                     if int(e["event_id"].rsplit("-", 1)[1]) >= c]
            firsts.append(min(later) - c if later else None)
        fe = [round((e["ts"] - T0) / SPACING) for e in feature if e["signal"] == "amount"]
        firsts.append(fe[0] - 5 * n // 6 if fe else None)
        runs[P] = sums
        retrain = sum(1 for o in outs if o.topic == "retrain_events")
        print(f"| {P} | {len(sums)} | {per:.1f} | {parts['outcomes']:.1f} | {parts['rows']:.1f} | "
              f"{parts['labels']:.1f} | {per / input_bytes:.0%} | {cpu / n * 1e6:.1f} | {state:,} | "
              f"{' / '.join(map(str, firsts))} | {len(concept)} | {retrain} |")
    _many_models(a.models, a.model_events)
    try:
        import datasketches  # noqa: F401
    except ImportError:
        print("\n(datasketches not installed: pip install datasketches for the sketch comparison)")
        return
    print("\nKS feature-drift test on the merged stream, KLL sketches per summary vs exact samples "
          f"(reference {dd.reference_size}, window {dd.window_size}, step {dd.step}, alpha {dd.alpha}):\n")
    print("| P | KLL k | signal | tests | abs dD median / max | abs dlog10 p median / p95 | decisions differ "
          "| amount first detection exact / sketch | sketch bytes / sample bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for P in a.partitions:
        if P == 1:
            continue
        for k in a.kll_k:
            acc = _accuracy(runs[P], dd, k)
            for name, r in acc.items():
                first = (f"{r['first_exact']} / {r['first_sketch']}" if name == "amount" else "")
                print(f"| {P} | {k} | {name} | {r['tests']} | {r['d_med']:.4f} / {r['d_max']:.4f} | "
                      f"{r['lp_med']:.2f} / {r['lp_p95']:.2f} | {r['differ']} | {first} | "
                      f"{r['sketch_bytes'] / r['sample_bytes']:.2f} |")


if __name__ == "__main__":
    main()
