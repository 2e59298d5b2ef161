"""What the model-level stage costs the service: the default configuration with ``[scope]`` on vs off.

    python benchmarks/scope_overhead.py [--events 40000] [--partitions 8] [--rounds 3]

One workload (the demo's: concept change, recurrence, feature shift) split over P partitions by a hash of
the event id, as Kafka's keyed partitioning does, processed in-process by one ``PartitionProcessor`` per
partition in micro-batches of ``processing.micro_batch_records`` taken round-robin, as the service's loop
does, with the default configuration (online model on). With the stage on, every summary is encoded,
decoded and merged by one ``ModelStage`` per model, as ``ScopeService`` does with what it consumes; what
Kafka adds (consume, produce of the summaries) is left out on both sides, so the ratio printed is an upper
bound of the stage's share of end-to-end CPU. CPU seconds are ``time.process_time``; median of the rounds;
the garbage collector set as the service sets it (frozen after the warm-up, ``processing.gc_threshold``).
Issue 17's target: the stage costs at most 10% of end-to-end throughput at 8 partitions.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import sys
import time
import zlib

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client import CollectorRegistry  # noqa: E402

import detectors  # noqa: E402
from stream.config import load_config  # noqa: E402
from stream.events import Record  # noqa: E402
from stream.metrics import Metrics  # noqa: E402
from stream.partition import PartitionProcessor  # noqa: E402
from stream.scope.service import summary_message  # noqa: E402
from stream.scope.stage import ModelStage  # noqa: E402
from stream.scope.summary import decode  # noqa: E402
from stream.tools.workload import Workload, events  # noqa: E402


class _Sink:
    def send(self, topic, key, event):
        orjson.dumps(event)  # what the publisher does with every output

    def dead_letter(self, topic, record, reason, detail):
        pass


def _records(n: int, partitions: int) -> list[list[Record]]:
    w = Workload(n_events=n, change_points=(n // 3, 2 * n // 3), feature_shift_at=(5 * n // 6,), seed=7,
                 t0=1_700_000_000.0, concepts=2, spacing=0.01)
    per: list[list[Record]] = [[] for _ in range(partitions)]
    nxt = [[0, 0] for _ in range(partitions)]
    for kind, ts, ev in events(w):
        p = zlib.crc32(ev["id"].encode()) % partitions
        t = 0 if kind == "inference" else 1
        per[p].append(Record(kind, p, nxt[p][t], int(ts * 1000), ev["id"].encode(), orjson.dumps(ev)))
        nxt[p][t] += 1
    return per


def _run(cfg, per: list[list[Record]], scope: bool) -> tuple[float, float, int]:
    """CPU seconds of the partitions, CPU seconds of the stage, summaries."""
    partitions = len(per)
    pending: list = []
    procs = [PartitionProcessor(p, cfg, 1, _Sink(), Metrics(CollectorRegistry()),
                                pending.append if scope else None) for p in range(partitions)]
    stages: dict[str, ModelStage] = {}
    step = cfg.processing.micro_batch_records
    part_cpu = stage_cpu = 0.0
    n_summaries = 0
    pos = [0] * partitions
    gc.collect()
    while any(pos[p] < len(per[p]) for p in range(partitions)):
        t0 = time.process_time()
        for p, proc in enumerate(procs):
            if pos[p] < len(per[p]):
                proc.process(per[p][pos[p]:pos[p] + step])
                pos[p] += step
        t1 = time.process_time()
        part_cpu += t1 - t0
        if pending:
            for s in pending:
                _, value = summary_message(s)
                got = decode(value)
                st = stages.get(got.model)
                if st is None:
                    st = stages[got.model] = ModelStage(got.model, cfg.model_spec(got.model), partitions,
                                                        cfg.scope, (cfg.topics.inference, cfg.topics.labels))
                for out in st.add(got):
                    orjson.dumps(out.event)
            n_summaries += len(pending)
            pending.clear()
            stage_cpu += time.process_time() - t1
    return part_cpu, stage_cpu, n_summaries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-drift", action="store_true",
                    help="feature drift on for the workload's (undeclared) model, as benchmarks/pipeline.py does")
    ap.add_argument("--batch", type=int, default=None,
                    help="records per partition per micro-batch (default processing.micro_batch_records)")
    args = ap.parse_args()
    detectors.warm_up()
    cfg = load_config(None, {})
    if args.data_drift:
        dm = cfg.default_model
        cfg = dataclasses.replace(cfg, default_model=dataclasses.replace(
            dm, data_drift=dataclasses.replace(dm.data_drift, enabled=True)))
    if args.batch:
        cfg = dataclasses.replace(cfg, processing=dataclasses.replace(cfg.processing, micro_batch_records=args.batch))
    off_cfg = dataclasses.replace(cfg, scope=dataclasses.replace(cfg.scope, enabled=False))
    per = _records(args.events, args.partitions)
    n = args.events
    _run(cfg, _records(2000, args.partitions), True)  # compile and import everything first
    # the service's garbage-collector settings (stream.app.Service._prepare_process): everything allocated so
    # far frozen, the gen-0 threshold processing.gc_threshold. With Python's defaults the collections caused by
    # the stage's objects were charged to the partitions (measured: "building summaries" 2.1 vs ~0 µs)
    gc.collect()
    gc.freeze()
    if cfg.processing.gc_threshold:
        g = gc.get_threshold()
        gc.set_threshold(cfg.processing.gc_threshold, g[1], g[2])
    offs, ons, stage_only, builds = [], [], [], []
    for _ in range(args.rounds):
        off, _, _ = _run(off_cfg, per, False)
        part, stage, sums = _run(cfg, per, True)
        offs.append(off)
        ons.append(part + stage)
        stage_only.append(stage)
        builds.append(part - off)
    off, on = statistics.median(offs), statistics.median(ons)
    print(f"{n:,} inference events + labels over {args.partitions} partitions, default config (online model on"
          f"{', feature drift on' if args.data_drift else ''}; {cfg.processing.micro_batch_records} records per "
          "micro-batch), "
          f"median of {args.rounds} rounds, CPU µs per inference event")
    print(f"  scope off (partition decisions only)   {off / n * 1e6:8.1f}")
    print(f"  scope on (summaries + model stage)     {on / n * 1e6:8.1f}")
    print(f"    of which building summaries          {statistics.median(builds) / n * 1e6:8.1f}")
    print(f"    of which the model stage             {statistics.median(stage_only) / n * 1e6:8.1f} "
          f"({sums:,} summaries)")
    share = (on - off) / on
    print(f"  the stage's share of the service's CPU: {share:.1%} (target <= 10% of end-to-end throughput; "
          f"Kafka's part left out on both sides, so this is an upper bound) -> {'met' if share <= 0.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
