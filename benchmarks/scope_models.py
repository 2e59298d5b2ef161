"""The model-level stage with many models on one instance: CPU per event and per model, state bytes, memory.

    python benchmarks/scope_models.py [--models 200] [--events-per-model 2000] [--partitions 8]

The demo's workload (concept change, recurrence, feature shift) with its events spread round-robin over
``--models`` models, split over P partitions by a hash of the event id, processed in-process by one
``PartitionProcessor`` per partition in micro-batches of ``processing.micro_batch_records`` (default
configuration, online model on, undeclared models accepted; a partition takes at most 100 models, so each
100 models have partitions of their own): phase 1 collects every summary as the service produces it
(encoded, in the order the round-robin loop sends them). Phase 2 is what one
``ScopeService`` instance owning all these models does with them: decode each summary and merge it into
its model's ``ModelStage`` (one per model), serializing whatever it outputs. Kafka is left out.

Printed: the stage's CPU per inference event (``time.process_time``) and per model, the checkpointed state
of each stage (``orjson`` of ``ModelStage.to_state()``, what ``ScopeService`` writes to Redis, before the
HMAC seal), the memory one stage holds (tracemalloc, 10 models run again after the timed phase) and the
process's resident memory. One run.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import sys
import time
import tracemalloc
import zlib

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client import CollectorRegistry  # noqa: E402

import detectors  # noqa: E402
from stream.config import load_config  # noqa: E402
from stream.events import Record  # noqa: E402
from stream.metrics import Metrics  # noqa: E402
from stream.partition import MAX_MODELS_PER_PARTITION, PartitionProcessor  # noqa: E402
from stream.scope.service import summary_message  # noqa: E402
from stream.scope.stage import ModelStage  # noqa: E402
from stream.scope.summary import decode  # noqa: E402
from stream.tools.workload import Workload, events  # noqa: E402


class _Sink:
    def send(self, topic, key, event):
        pass

    def dead_letter(self, topic, record, reason, detail):
        raise AssertionError(f"dead-lettered: {reason} {detail}")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _summaries(cfg, models: int, per_model: int, partitions: int) -> list[bytes]:
    """Every summary, in the order the partitions send them. A partition takes at most
    MAX_MODELS_PER_PARTITION models, so the models are split into groups of that many, each with the
    inputs of its own (the groups' partitions take turns, as several services would send)."""
    groups = [range(a, min(a + MAX_MODELS_PER_PARTITION, models)) for a in range(0, models, MAX_MODELS_PER_PARTITION)]
    per: list[list[Record]] = []
    for g, ks in enumerate(groups):
        n = len(ks) * per_model
        w = Workload(n_events=n, change_points=(n // 3, 2 * n // 3), feature_shift_at=(5 * n // 6,), seed=7 + g,
                     t0=1_700_000_000.0, concepts=2, spacing=0.01 / len(ks),
                     models=tuple(f"model-{k:03d}" for k in ks))
        mine: list[list[Record]] = [[] for _ in range(partitions)]
        nxt = [[0, 0] for _ in range(partitions)]
        for kind, ts, ev in events(w):
            p = zlib.crc32(ev["id"].encode()) % partitions
            t = 0 if kind == "inference" else 1
            mine[p].append(Record(kind, p, nxt[p][t], int(ts * 1000), ev["id"].encode(), orjson.dumps(ev)))
            nxt[p][t] += 1
        per += mine
    sent: list = []
    procs = [PartitionProcessor(i % partitions, cfg, 1, _Sink(), Metrics(CollectorRegistry()), sent.append)
             for i in range(len(per))]
    out: list[bytes] = []
    step, pos = cfg.processing.micro_batch_records, [0] * len(per)
    while any(pos[i] < len(per[i]) for i in range(len(per))):
        for i, proc in enumerate(procs):
            if pos[i] < len(per[i]):
                proc.process(per[i][pos[i]:pos[i] + step])
                pos[i] += step
        out += [summary_message(s)[1] for s in sent]
        sent.clear()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--events-per-model", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()
    detectors.warm_up()
    cfg = dataclasses.replace(load_config(None, {}), accept_undeclared_models=True)
    n = args.models * args.events_per_model
    t0 = time.process_time()
    values = _summaries(cfg, args.models, args.events_per_model, args.partitions)
    part_cpu = time.process_time() - t0
    gc.collect()
    rss0 = _rss_mb()
    stages: dict[str, ModelStage] = {}
    outputs = 0
    t0 = time.process_time()
    for value in values:
        s = decode(value)
        st = stages.get(s.model)
        if st is None:
            st = stages[s.model] = ModelStage(s.model, cfg.model_spec(s.model), args.partitions, cfg.scope,
                                              (cfg.topics.inference, cfg.topics.labels))
        for o in st.add(s):
            orjson.dumps(o.event)
            outputs += 1
    stage_cpu = time.process_time() - t0
    gc.collect()
    rss1 = _rss_mb()
    t0 = time.process_time()
    state = {m: len(orjson.dumps(st.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)) for m, st in stages.items()}
    state_cpu = time.process_time() - t0
    sizes = sorted(state.values())
    # the stages' own memory: a few models again from their summaries, with tracemalloc on (not timed)
    few = set(sorted(stages)[:10])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    again = {m: ModelStage(m, cfg.model_spec(m), args.partitions, cfg.scope, (cfg.topics.inference, cfg.topics.labels))
             for m in few}
    for value in values:
        s = decode(value)
        if s.model in few:
            again[s.model].add(s)
    del s
    gc.collect()
    heap = (tracemalloc.get_traced_memory()[0] - base) / len(few)
    tracemalloc.stop()
    print(f"{len(stages)} models on one instance, {args.events_per_model:,} inference events each ({n:,} in all, "
          f"+ labels) over {args.partitions} partitions, default config (online model on); one run")
    print(f"  summaries                                  {len(values):>10,} ({len(values) / len(stages):.0f} "
          f"per model, {sum(map(len, values)) / n:.0f} bytes per event)")
    print(f"  partitions' CPU (phase 1, for scale)       {part_cpu / n * 1e6:10.1f} µs per event")
    print(f"  model stage CPU                            {stage_cpu / n * 1e6:10.1f} µs per event "
          f"({stage_cpu:.1f} s; {outputs} model-scope outputs)")
    print(f"    per model                                {stage_cpu / len(stages) * 1e3:10.1f} ms "
          f"({stage_cpu / len(stages) / args.events_per_model * 1e6:.1f} µs per event of the model)")
    print(f"  stage state per model (checkpoint bytes)   {statistics.median(sizes):10,.0f} median, "
          f"{sizes[-1]:,} max, {sum(sizes) / 2**20:.1f} MiB for all; to_state + orjson of all: "
          f"{state_cpu * 1e3:.0f} ms")
    print(f"  stage memory per model (tracemalloc)       {heap / 2**20:10.2f} MiB (10 models run again)")
    print(f"  resident memory of the process             {rss1:10.0f} MiB (partitions' state and the summaries kept "
          f"included; {rss0:.0f} MiB before the stages)")


if __name__ == "__main__":
    main()
