"""The model-level stage against the real broker and Redis: summaries topic in, model-scope events out;
a crash (no final checkpoint) and a restart give exactly the uninterrupted run's events; a fenced zombie
cannot write."""

from __future__ import annotations

import time
import zlib

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic

from stream.checkpoint import CheckpointStore, Fenced
from stream.clients import consumer_config
from stream.config import ChallengerConfig, DataDriftConfig, ModelSpec
from stream.publish import Publisher
from stream.scope.service import ScopeService, summary_message
from stream.scope.stage import ModelStage, ScopeConfig
from tests.integration.helpers import producer, read_topic
from tests.unit.scope.sim import interleave, partition_items, summaries, workload_events

SPEC = ModelSpec(data_drift=DataDriftConfig(reference_size=300, window_size=200, step=50),
                 challenger=ChallengerConfig(window=500, min_pairs=100, every=50))
SCOPE = ScopeConfig(max_watermark_lag_seconds=5.0, incident_quiet_seconds=10.0, idle_partition_seconds=0.0)
INPUT_PARTITIONS = 4
MODELS = ("fraud", "churn")


def _online_error(i: int, served: float) -> float:
    # a challenger better than the served model after the change (deterministic per event)
    u = (zlib.crc32(str(i).encode()) % 10_000) / 10_000
    return float(u < (0.08 if i >= 3000 else 0.06))


def _summaries():
    ev = workload_events(6000, change_points=(3000,), feature_shift_at=(4500,), seed=11)
    items = partition_items(ev, INPUT_PARTITIONS, online_error=_online_error, evidence_every=97)
    out = []
    for k, model in enumerate(MODELS):
        streams = [summaries(model, p, it, seed=k) for p, it in enumerate(items)]
        out += interleave(streams, seed=k)
    return interleave([[s for s in out if s.model == m] for m in MODELS], seed=3)


def _reference(sums):
    stages = {m: ModelStage(m, SPEC, INPUT_PARTITIONS, SCOPE) for m in MODELS}
    events = {}
    for s in sums:
        for o in stages[s.model].add(s):
            events[o.event["id"]] = (o.topic, o.event)
    return events


@pytest.fixture
def scope_topic(cfg):
    from stream.topics import admin_client

    name = f"{cfg.topics.drift_events}.scope-summaries"
    admin = admin_client(cfg)  # kept alive until the futures are done
    fs = admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    for f in fs.values():
        f.result(30)
    return name


def _service(cfg, topic, redis_client, every=7):
    conf = consumer_config(cfg)
    conf["group.id"] = f"{cfg.processing.group_id}-scope"
    consumer = Consumer(conf)
    store = CheckpointStore(redis_client, f"{cfg.state.key_prefix}-scope", conf["group.id"],
                            cfg.state.hmac_key.encode())
    svc = ScopeService(consumer, Publisher(producer(cfg)), store, topic=topic, partitions=INPUT_PARTITIONS,
                       spec_of=lambda m: SPEC, outputs=ScopeService.output_topics(cfg.topics), scope=SCOPE,
                       checkpoint_every_messages=every, checkpoint_every_seconds=3600)
    consumer.subscribe([topic], on_assign=svc.on_assign, on_revoke=svc.on_revoke, on_lost=svc.on_lost)
    return svc, consumer


def _drive(svc, consumer, until, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        svc.process(consumer.consume(50, 0.2))
        svc.publisher.poll()


def _run_to_end(svc, consumer, total, timeout=60.0):
    """Drive an instance until it owns both partitions and has read ``total`` messages, checkpoint every
    owned partition and leave the group."""
    _drive(svc, consumer, lambda: len(svc.owned) == 2 and sum(o.next_offset or 0 for o in svc.owned.values())
           >= total, timeout=timeout)
    for part in list(svc.owned):
        svc.checkpoint(part)
    consumer.close()


def _outputs(cfg):
    got: dict[str, list] = {}
    for name, topic in ScopeService.output_topics(cfg.topics).items():
        for e in read_topic(cfg, topic, idle=2.0):
            got.setdefault(e["id"], []).append((name, e))
    return got


def test_crash_and_restart_publish_exactly_the_uninterrupted_events(cfg, scope_topic, redis_client):
    sums = _summaries()
    p = producer(cfg)
    for s in sums:
        key, value = summary_message(s)
        p.produce(scope_topic, key=key, value=value)
    p.flush(30)
    expected = _reference(sums)
    assert {e["type"] for _, e in expected.values()} >= {"drift", "retrain", "challenger-better"}

    # instance A processes about half, then dies without a final checkpoint
    a, ca = _service(cfg, scope_topic, redis_client, every=60)  # checkpoints every 2nd poll of 50
    _drive(a, ca, lambda: sum(o.next_offset or 0 for o in a.owned.values()) >= 3 * len(sums) // 4 and all((o.unsaved or 0) > 0 for o in a.owned.values() if o.next_offset))
    assert a.owned, "instance A was never assigned"
    a.publisher.flush()
    epochs = {p: o.epoch for p, o in a.owned.items()}
    stale = {p: a._payload(o) for p, o in a.owned.items()}
    reached = {p: o.next_offset for p, o in a.owned.items()}
    owned_by_a = a.owned
    a.owned = {}  # dies: nothing is written on the way out, its unsaved progress is lost (as with kill -9)
    ca.close()
    a.owned = owned_by_a
    saved = {p: (cp.offsets["summaries"] if (cp := a.store.load(p)) is not None else 0) for p in epochs}
    # B resumes from A's checkpoints, and replays what A had processed after its last one
    assert sum(saved.values()) > 0 and any(saved[p] < (reached[p] or 0) for p in saved)

    # instance B takes over from the checkpoints and finishes
    b, cb = _service(cfg, scope_topic, redis_client)
    _run_to_end(b, cb, len(sums))

    # the zombie A cannot overwrite B's checkpoints
    for part, epoch in epochs.items():
        with pytest.raises(Fenced):
            a.store.save(part, epoch, stale[part], {"summaries": 0})

    got = _outputs(cfg)
    assert set(got) == set(expected)
    for eid, copies in got.items():
        for topic, event in copies:  # replays are duplicates with identical content
            assert (topic, event) == expected[eid]
    assert all(e["scope"] == "model" for copies in got.values() for _, e in copies)


def test_undecodable_summary_is_skipped_and_counted(cfg, scope_topic, redis_client):
    p = producer(cfg)
    p.produce(scope_topic, key=b"fraud", value=b"\x93not a summary", partition=0)
    good = _summaries()[0]
    key, value = summary_message(good)
    p.produce(scope_topic, key=key, value=value, partition=0)
    p.flush(30)
    svc, c = _service(cfg, scope_topic, redis_client, every=1)
    _drive(svc, c, lambda: 0 in svc.owned and (svc.owned[0].next_offset or 0) >= 2, timeout=40)
    stages = dict(svc.owned[0].stages)
    c.close()
    assert svc.invalid == 1
    assert list(stages) == [good.model] and stages[good.model].merge.summaries == 1


SMALL_TOPIC_MAX = 4_000


def _split_on_small_topic(cfg, suffix: str):
    """A summaries topic with a small max.message.bytes, filled as the partitions would (the sending side reads
    the limit at start-up, as build_service does, and splits what does not fit): ``(config, topic, messages)``
    after checking the broker took every part and nothing was dead-lettered."""
    import dataclasses
    import types

    from confluent_kafka import Producer, TopicPartition

    from stream.app import Service
    from stream.clients import producer_config
    from stream.scope.parts import Part, decode_message
    from stream.topics import admin_client, output_limits

    name = f"{cfg.topics.drift_events}.{suffix}"
    admin = admin_client(cfg)
    fs = admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1,
                                       config={"max.message.bytes": str(SMALL_TOPIC_MAX)})])
    for f in fs.values():
        f.result(30)
    cfg2 = dataclasses.replace(cfg, topics=dataclasses.replace(cfg.topics, summaries=name),
                               scope=dataclasses.replace(cfg.scope, enabled=True))
    limits = output_limits(admin, cfg2)
    deadline = time.monotonic() + 30
    while name not in limits.topic_max and time.monotonic() < deadline:  # the new topic's metadata can lag
        time.sleep(0.5)
        limits = output_limits(admin, cfg2)
    assert limits.topic_max[name] == SMALL_TOPIC_MAX
    pub = Publisher(Producer({**producer_config(cfg2), **limits.producer_settings()}), limits=limits,
                    dead_letter_topic=cfg2.topics.dead_letter)
    sums = _summaries()
    for s in sums:
        Service._send_summary(types.SimpleNamespace(cfg=cfg2, publisher=pub), s)
    pub.flush()
    assert pub.rejected == 0 and read_topic(cfg2, cfg2.topics.dead_letter, idle=1.0) == []

    raw = Consumer({"bootstrap.servers": cfg.kafka["bootstrap.servers"], "group.id": f"raw-{time.time_ns()}",
                    "auto.offset.reset": "earliest", "enable.auto.commit": False})
    total = sum(raw.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in range(2))
    raw.subscribe([name])
    values: list[bytes] = []
    deadline = time.monotonic() + 90
    while len(values) < total and time.monotonic() < deadline:
        values += [m.value() for m in raw.consume(500, 0.5) if m.error() is None]
    raw.close()
    assert len(values) == total
    parts = [v for v in values if isinstance(decode_message(v), Part)]
    assert len(parts) > len(sums)  # most summaries did not fit one message
    assert max(len(v) for v in values) <= SMALL_TOPIC_MAX
    return cfg2, name, total


def test_summaries_larger_than_the_topic_accepts_go_in_parts_and_decide_as_if_whole(cfg, redis_client):
    """A summaries topic with a small max.message.bytes: the broker takes every part, and the stage decides
    exactly as on the unsplit summaries."""
    cfg2, name, total = _split_on_small_topic(cfg, "small-summaries")
    svc, consumer = _service(cfg2, name, redis_client)
    _run_to_end(svc, consumer, total, timeout=150)
    assert all(not o.parts.pending for o in svc.owned.values())
    got = _outputs(cfg2)
    expected = _reference(_summaries())
    assert set(got) == set(expected)
    assert all(copies == [expected[eid]] for eid, copies in got.items())


def test_a_crash_between_the_parts_of_a_summary_resumes_to_the_uninterrupted_events(cfg, redis_client):
    """Split summaries and a crash: instance A checkpoints while assemblies are unfinished (their parts are
    in the checkpoint: the offset has moved past them), dies without a final checkpoint, and B resumes from
    A's checkpoints: exactly the events of an uninterrupted run on the whole summaries, none lost, replays
    identical."""
    cfg2, name, total = _split_on_small_topic(cfg, "small-summaries-crash")
    a, ca = _service(cfg2, name, redis_client, every=60)  # checkpoints every 2nd poll of 50
    pending_at_checkpoint = []
    checkpoint = a.checkpoint

    def recording(p):
        pending_at_checkpoint.append(bool(a.owned[p].parts.pending))
        checkpoint(p)
    a.checkpoint = recording
    _drive(a, ca, lambda: sum(o.next_offset or 0 for o in a.owned.values()) >= 2 * total // 3
           and all((o.unsaved or 0) > 0 for o in a.owned.values() if o.next_offset), timeout=150)
    assert a.owned, "instance A was never assigned"
    assert any(pending_at_checkpoint), "no checkpoint of A fell between the parts of a summary"
    a.publisher.flush()
    owned_by_a = a.owned
    a.owned = {}  # dies: nothing written on the way out (as with kill -9)
    ca.close()
    saved = {p: (cp.offsets["summaries"] if (cp := a.store.load(p)) is not None else 0) for p in owned_by_a}
    assert any(saved[p] < (o.next_offset or 0) for p, o in owned_by_a.items())  # B replays A's unsaved part

    b, cb = _service(cfg2, name, redis_client)
    _run_to_end(b, cb, total, timeout=150)
    assert all(not o.parts.pending for o in b.owned.values())
    got = _outputs(cfg2)
    expected = _reference(_summaries())
    assert set(got) == set(expected)
    for eid, copies in got.items():
        for copy in copies:  # replays are duplicates with identical content
            assert copy == expected[eid]


def test_the_backlog_of_a_silent_partition_is_read_from_the_broker_and_it_is_waited_for(cfg, redis_client):
    # the input topics hold records of partition 1 its summaries have not reached: the stage asks the real
    # broker, finds the backlog and waits for the partition instead of declaring it idle; once the summaries
    # reach the high watermarks, the silent partition is idle
    import dataclasses

    from stream.scope.summary import Summary, encode
    from tests import fakes

    P = cfg.topics.partitions
    assert P >= 2
    prod = producer(cfg)
    for i in range(30):
        prod.produce(cfg.topics.inference, value=b"{}", partition=1)
    for i in range(12):
        prod.produce(cfg.topics.labels, value=b"{}", partition=1)
    prod.flush(30)
    t = [0.0]
    conf = {**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-scope"}
    consumer = Consumer(conf)
    store = CheckpointStore(redis_client, f"{cfg.state.key_prefix}-scope", conf["group.id"],
                            cfg.state.hmac_key.encode())
    scope = dataclasses.replace(SCOPE, idle_partition_seconds=3.0, stalled_partition_seconds=0.0)
    svc = ScopeService(consumer, Publisher(producer(cfg)), store, topic="unused", partitions=P,
                       spec_of=lambda m: SPEC, outputs=ScopeService.output_topics(cfg.topics), scope=scope,
                       input_topics=(cfg.topics.inference, cfg.topics.labels), checkpoint_every_messages=10 ** 9,
                       checkpoint_every_seconds=float("inf"), clock=lambda: t[0])
    from stream.scope.service import _Owned

    svc.owned[0] = _Owned(0, store.bump_epoch(0))
    try:
        assert svc._input_marks(1, 0.0) == [(0, 30), (0, 12)]

        def feed(partition, ts, end, off):
            s = Summary("m", partition, [0, 0], end, ts)
            svc.process([fakes.FakeMessage("s", 0, off, 0, b"m", encode(s))])

        # partition 1 said it had processed 10 of 30 inference records and 2 of 12 labels, then went silent
        feed(1, 1000.0, [10, 2], 0)
        off = 1
        for k in range(40):  # the other partitions move on, 1 s of wall clock and 1 s of event time each
            t[0] += 1.0
            for p in range(P):
                if p != 1:
                    feed(p, 1000.0 + k, [0, 0], off)
                    off += 1
        merge = svc.owned[0].stages["m"].merge
        assert merge.backlog[1] == 20 + 10 and not merge.idle[1]
        assert merge.waiting(t[0]) == {1: 30}
        # ... it catches up to the broker's high watermarks and is silent again: now it is idle
        feed(1, 1001.0, [30, 12], off)
        off += 1
        for k in range(10):
            t[0] += 1.0
            svc._highs.clear()
            for p in range(P):
                if p != 1:
                    feed(p, 1040.0 + k, [0, 0], off)
                    off += 1
        assert merge.backlog[1] == 0 and merge.idle[1]
    finally:
        consumer.close()
