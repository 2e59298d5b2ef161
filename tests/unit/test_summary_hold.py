"""A partition holds a model's summary over micro-batches (``scope.summary_flush_items`` /
``summary_flush_seconds``): the Kafka client hands the service a few records per partition at a time, and
one summary per micro-batch made the stage pay its per-summary cost every few items. Held or not, the stage
decides the same; a checkpoint sends what is held first (``flush_summaries``)."""

from __future__ import annotations

import dataclasses

import orjson
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from stream.scope.service import summary_message
from stream.scope.stage import ModelStage
from stream.scope.summary import decode
from stream.state import encode_partition, load_partition
from stream.tools.workload import Workload
from tests.fakes import MemoryPublisher, partitioned_records

PARTITIONS = 3


def _cfg(items: int = 2000, seconds: float = 0.25):
    cfg = load_config(None, {})
    dm = cfg.default_model
    return dataclasses.replace(
        cfg, topics=dataclasses.replace(cfg.topics, partitions=PARTITIONS),
        scope=dataclasses.replace(cfg.scope, summary_flush_items=items, summary_flush_seconds=seconds),
        default_model=dataclasses.replace(dm, data_drift=dataclasses.replace(dm.data_drift, enabled=True)))


def _records(cfg, n: int) -> list[list[Record]]:
    w = Workload(n_events=n, change_points=(n // 2,), feature_shift_at=(3 * n // 4,), seed=11, spacing=0.01,
                 label_delay=3.0)
    per = partitioned_records(cfg, w, PARTITIONS)
    return per


def _run(cfg, per, batch: int, tick: float | None):
    """The stage's outputs and state, and the summaries' sizes, with micro-batches of ``batch`` records per
    partition and the wall clock moving ``tick`` seconds per round (None: no clock)."""
    sent: list = []
    procs = [PartitionProcessor(p, cfg, 1, MemoryPublisher(), Metrics(CollectorRegistry()), sent.append)
             for p in range(PARTITIONS)]
    stage = ModelStage("fraud", cfg.model_spec("fraud"), PARTITIONS, cfg.scope,
                       (cfg.topics.inference, cfg.topics.labels))
    out: list = []
    sizes: list[int] = []
    pos = [0] * PARTITIONS
    now = 0.0
    while any(pos[p] < len(per[p]) for p in range(PARTITIONS)):
        for p, proc in enumerate(procs):
            proc.process(per[p][pos[p]:pos[p] + batch], None if tick is None else now)
            pos[p] += batch
        if tick is not None:
            now += tick
        for s in sent:
            sizes.append(len(s.outcomes) + len(s.rows.ts) + len(s.labels.ts))
            out += stage.add(decode(summary_message(s)[1]))
        sent.clear()
    for proc in procs:  # what a checkpoint does first
        proc.flush_summaries()
    for s in sent:
        sizes.append(len(s.outcomes) + len(s.rows.ts) + len(s.labels.ts))
        out += stage.add(decode(summary_message(s)[1]))
    out += stage.flush()
    dump = [orjson.dumps(dataclasses.asdict(o), option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
            for o in out]
    state = stage.to_state()
    assert state["merge"]["summaries"] == len(sizes)
    del state["merge"]["summaries"]  # how many summaries came: the one thing holding changes
    return dump, orjson.dumps(state, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY), sizes


def test_held_summaries_give_the_stage_the_same_decisions_as_one_summary_per_micro_batch():
    cfg = _cfg()
    per = _records(cfg, 9000)
    base_out, base_state, base_sizes = _run(cfg, per, 40, None)  # no clock: nothing held
    held_out, held_state, held_sizes = _run(cfg, per, 40, 0.01)  # 25 rounds before a summary is due
    assert any(b'"kind":"concept"' in o for o in base_out) and any(b'"kind":"feature"' in o for o in base_out)
    assert held_out == base_out and held_state == base_state
    assert len(held_sizes) < len(base_sizes) / 5, (len(held_sizes), len(base_sizes))
    assert sum(held_sizes) == sum(base_sizes)
    # and by item count: a summary goes out once it holds summary_flush_items
    cfg = _cfg(items=300, seconds=1e9)
    out, state, sizes = _run(cfg, per, 40, 0.01)
    assert out == base_out and state == base_state
    assert all(s < 300 + 200 for s in sizes[:-PARTITIONS]) and max(sizes) >= 300


def test_a_held_summary_goes_out_when_due_without_new_input_and_on_a_forced_flush():
    cfg = _cfg(seconds=1.0)
    per = _records(cfg, 600)
    sent: list = []
    proc = PartitionProcessor(0, cfg, 1, MemoryPublisher(), Metrics(CollectorRegistry()), sent.append)
    proc.process(per[0][:50], 10.0)
    assert sent == []  # held
    proc.flush_summaries(10.5)
    assert sent == []  # not due yet
    proc.flush_summaries(11.0)
    assert len(sent) == 1 and sent[0].start == [0, 0] and sent[0].end == [proc.next_offsets.get("inference", 0),
                                                                          proc.next_offsets.get("labels", 0)]
    proc.process(per[0][50:80], 11.1)
    assert len(sent) == 1
    proc.flush_summaries()  # forced (a checkpoint)
    assert len(sent) == 2 and sent[1].start == sent[0].end
    proc.flush_summaries()  # nothing held: nothing more
    assert len(sent) == 2
    # a processor that processed nothing (assigned with nothing left to read) sends nothing on a forced flush:
    # a heartbeat there was a summary the stage could not read before the service stopped
    idle = PartitionProcessor(0, cfg, 2, MemoryPublisher(), Metrics(CollectorRegistry()), sent.append)
    load_partition(idle, encode_partition(proc))
    idle.last_input_wall = 12.0  # the service counts the silence from the assignment on
    idle.flush_summaries()
    assert len(sent) == 2
    # summary_flush_seconds = 0: one summary per micro-batch, as before
    cfg0 = _cfg(seconds=0.0)
    sent0: list = []
    proc0 = PartitionProcessor(0, cfg0, 1, MemoryPublisher(), Metrics(CollectorRegistry()), sent0.append)
    proc0.process(per[0][:50], 10.0)
    assert len(sent0) == 1
