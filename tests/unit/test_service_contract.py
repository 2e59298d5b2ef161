"""The Service's contract with Kafka and Redis, one suite run on two backends (Arroyo-style).

:class:`ServiceContract` holds the tests; a backend says how to make the clients and how to observe the
broker and the store. Here they run on the in-memory fakes (``tests/fakes.py``);
``tests/integration/test_service_contract.py`` runs the very same tests on the real broker and Redis.

The contract (STYLE.md, habits 7 and 8):

* on assign: bump the partition's epoch, load its state and offsets, position the consumer exactly there;
* on revoke: flush the producer (every output of the state is delivered), save state + next offsets, only
  then commit those offsets to Kafka;
* on lost: drop the in-memory state without writing anything (another member owns the partition now).

The clients are wrapped in recorders that log every call in one shared order, so the tests see the order
of operations, not just their results. Only the Service's public surface is used: the constructor, ``run``,
``step``, ``stop`` and the three rebalance callbacks.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.app import Service
from stream.checkpoint import CheckpointStore
from stream.metrics import Metrics
from tests import fakes

PARTITIONS = 2


# -- recorders -------------------------------------------------------------------------------------------
class Log(list):
    """(what, detail) in the order the Service did it, across consumer, producer and store."""

    def kinds(self, what: str) -> list[int]:
        return [i for i, (w, _) in enumerate(self) if w == what]


class RecordingConsumer:
    """Passes everything to the consumer it wraps; logs assignments, rebalance callbacks, commits and what
    was consumed (the first offset read of each partition since it was last assigned)."""

    def __init__(self, inner: Any, log: Log) -> None:
        self.inner = inner
        self.log = log
        self.first_offsets: dict[tuple[str, int], int] = {}
        self.consumed = 0
        self.after_consume: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None) -> None:
        def wrap(what: str, cb: Any) -> Any:
            def call(_consumer: Any, tps: list[Any]) -> None:
                self.log.append((what, sorted((tp.topic, tp.partition) for tp in tps)))
                if cb is not None:
                    cb(self, tps)
            return call

        kw = {"on_assign": wrap("on_assign", on_assign), "on_revoke": wrap("on_revoke", on_revoke)}
        if on_lost is not None:
            kw["on_lost"] = wrap("on_lost", on_lost)
        self.inner.subscribe(topics, **kw)

    def assign(self, partitions: list[Any]) -> None:
        self.log.append(("assign", {(tp.topic, tp.partition): tp.offset for tp in partitions}))
        for tp in partitions:
            self.first_offsets.pop((tp.topic, tp.partition), None)
        self.inner.assign(partitions)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        msgs = self.inner.consume(num_messages, timeout)
        for m in msgs:
            if m.error() is None:
                self.consumed += 1
                self.first_offsets.setdefault((m.topic(), m.partition()), m.offset())
        if self.after_consume is not None:
            self.after_consume()
        return msgs

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        offsets = kwargs.get("offsets")
        self.log.append(("commit", {(tp.topic, tp.partition): tp.offset for tp in offsets or []}))
        return self.inner.commit(*args, **kwargs)


class RecordingProducer:
    def __init__(self, inner: Any, log: Log) -> None:
        self.inner = inner
        self.log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.inner.produce(*args, **kwargs)

    def flush(self, *args: Any, **kwargs: Any) -> int:
        self.log.append(("flush", len(self.inner)))
        return self.inner.flush(*args, **kwargs)


class RecordingStore:
    """A CheckpointStore whose calls are logged; ``save`` notes how many outputs were still undelivered."""

    def __init__(self, inner: CheckpointStore, log: Log, producer: RecordingProducer) -> None:
        self.inner = inner
        self.log = log
        self.producer = producer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def bump_epoch(self, partition: int) -> int:
        epoch = self.inner.bump_epoch(partition)
        self.log.append(("bump_epoch", (partition, epoch)))
        return epoch

    def load(self, partition: int) -> Any:
        cp = self.inner.load(partition)
        self.log.append(("load", (partition, None if cp is None else dict(cp.offsets))))
        return cp

    def save(self, partition: int, epoch: int, payload: bytes, offsets: dict[str, int]) -> int:
        self.log.append(("save", (partition, epoch, dict(offsets), len(self.producer))))
        return self.inner.save(partition, epoch, payload, offsets)


class Instance:
    """One Service with its recorded clients and its own metrics registry."""

    def __init__(self, backend: Any, control_consumer: Any = None) -> None:
        self.log = Log()
        self.registry = CollectorRegistry()
        self.consumer = RecordingConsumer(backend.consumer(), self.log)
        self.producer = RecordingProducer(backend.producer(), self.log)
        self.store = RecordingStore(backend.store(), self.log, self.producer)
        self.service = Service(backend.cfg, self.consumer, self.producer, self.store, Metrics(self.registry),
                               control_consumer=control_consumer)

    def processed(self) -> float:
        """Input messages handled (processed or dead-lettered), from the service's metrics."""
        return sum(s.value for m in self.registry.collect() for s in m.samples
                   if s.name == "driftstream_messages_total")

    def subscribe(self) -> None:
        """What ``run`` does first, for tests that drive ``step`` themselves."""
        t = self.service.cfg.topics
        s = self.service
        self.consumer.subscribe([t.inference, t.labels], on_assign=s.on_assign, on_revoke=s.on_revoke,
                                on_lost=s.on_lost)

    def step_until(self, done: Callable[[], bool], timeout: float, also: Callable[[], None] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done within {timeout} s; log: {self.log[-8:]}"
            self.service.step()
            if also is not None:
                also()

    def run_until(self, done: Callable[[], bool], timeout: float) -> int:
        """``Service.run`` until ``done`` (checked after every consume), then its clean stop."""
        def check() -> None:
            if done():
                self.service.stop()

        self.consumer.after_consume = check
        try:
            return self.service.run(max_seconds=timeout)
        finally:
            gc.unfreeze()  # run freezes the collector's generations: give them back to the test process


# -- the workload --------------------------------------------------------------------------------------------
def inference(eid: str, ts: float) -> bytes:
    return orjson.dumps({"id": eid, "model": "m", "ts": ts, "features": {"amount": 10.0 + len(eid), "country": "DE"},
                         "prediction": 1, "score": 0.9})


def label(eid: str, ts: float) -> bytes:
    return orjson.dumps({"id": eid, "model": "m", "ts": ts, "label": 1})


def produce_events(backend: Any, first: int, count: int, labels: bool = True) -> int:
    """``count`` inference events (and their labels) per partition; returns the messages produced."""
    t = backend.cfg.topics
    now = time.time()
    n = 0
    for p in range(PARTITIONS):
        for i in range(first, first + count):
            eid = f"e-{p}-{i}"
            ts = now + i * 0.01
            backend.produce(t.inference, p, eid, inference(eid, ts), ts)
            n += 1
            if labels:
                backend.produce(t.labels, p, eid, label(eid, ts + 0.5), ts + 0.5)
                n += 1
    backend.flush()
    return n


def dead_letters(backend: Any, reason: str) -> list[dict[str, Any]]:
    return [e for e in backend.outputs(backend.cfg.topics.dead_letter) if e.get("reason") == reason]


# -- the contract -------------------------------------------------------------------------------------------
class ServiceContract:
    """The tests; a subclass provides the ``backend`` fixture (see :class:`FakeBackend` for what it offers)."""

    def test_assign_bumps_the_epoch_loads_the_state_and_seeks_to_the_stored_offsets(self, backend):
        t = backend.cfg.topics
        n1 = produce_events(backend, 0, 20, labels=False)
        first = Instance(backend)
        assert first.run_until(lambda: first.processed() >= n1, backend.timeout) == 0
        stored = {p: backend.store().load(p) for p in range(PARTITIONS)}
        for p, cp in stored.items():
            assert cp is not None and cp.epoch == 1
            assert cp.offsets == {t.inference: 20, t.labels: 0}, "the stopping service saved what it processed"
        # after the checkpoint: a prediction id seen before it (only the loaded state knows it) and new events
        for p in range(PARTITIONS):
            backend.produce(t.inference, p, f"e-{p}-0", inference(f"e-{p}-0", time.time()), time.time())
        n2 = PARTITIONS + produce_events(backend, 20, 5)
        second = Instance(backend)
        assert second.run_until(lambda: second.processed() >= n2, backend.timeout) == 0
        log = second.log
        first_assign = log.kinds("assign")[0]
        for p in range(PARTITIONS):
            # 1. the epoch is bumped, 2. then the state is loaded, 3. then the consumer is positioned there
            bump = log.index(("bump_epoch", (p, 2)))
            load = log.index(("load", (p, stored[p].offsets)))
            assert bump < load < first_assign
            assert log[first_assign][1][(t.inference, p)] == stored[p].offsets[t.inference]
            assert log[first_assign][1][(t.labels, p)] == stored[p].offsets[t.labels]
            # nothing before the stored offsets was read again
            assert second.consumer.first_offsets[(t.inference, p)] == 20
            assert backend.store().load(p).epoch == 2
        dups = dead_letters(backend, "duplicate_id")
        assert sorted(d["source"]["partition"] for d in dups) == list(range(PARTITIONS)), (
            "the loaded join state recognises the ids seen before the checkpoint")
        assert all(d["source"]["offset"] == 20 for d in dups)

    def test_revoke_flushes_the_producer_then_saves_then_commits(self, backend):
        t = backend.cfg.topics
        n = produce_events(backend, 0, 30)
        a = Instance(backend)
        a.subscribe()
        a.step_until(lambda: a.processed() >= n, backend.timeout)
        assert not a.log.kinds("save"), "no checkpoint is due before the rebalance (intervals are huge)"
        other = backend.member()
        try:
            a.step_until(lambda: a.log.kinds("on_revoke") and backend.has_assignment(other), backend.timeout,
                         also=lambda: backend.pump(other))
            revoke = a.log.kinds("on_revoke")[0]
            revoked = sorted({p for _, p in a.log[revoke][1]})
            assert revoked == list(range(PARTITIONS)), "the eager protocol revokes every partition"
            after = a.log[revoke + 1:]
            kinds = [w for w, _ in after]
            # 1. flush the producer, 2. save every revoked partition, 3. only then commit
            flush = kinds.index("flush")
            saves = [i for i, w in enumerate(kinds) if w == "save"][:len(revoked)]
            commit = kinds.index("commit")
            assert flush < min(saves) and max(saves) < commit, kinds[:10]
            assert sorted(after[i][1][0] for i in saves) == revoked
            for i in saves:
                p, epoch, offsets, undelivered = after[i][1]
                assert undelivered == 0, "outputs still queued in the producer when the state was saved"
                assert epoch == 1
                assert offsets == {t.inference: 30, t.labels: 30}
            saved = {}
            for i in saves:
                p, _, offsets, _ = after[i][1]
                saved.update({(topic, p): o for topic, o in offsets.items()})
            assert after[commit][1] == saved, "the commit carries exactly the saved offsets"
            assert backend.committed(sorted(saved)) == saved
            for p in revoked:
                assert backend.store().load(p).offsets == {t.inference: 30, t.labels: 30}
            # every output derived from the saved state is on its topic
            online = backend.outputs(t.online_predictions)
            assert len({e["id"] for e in online}) == PARTITIONS * 30
        finally:
            backend.close(other)
            a.consumer.close()

    def test_lost_drops_the_state_without_writing(self, backend):
        t = backend.cfg.topics
        n = produce_events(backend, 0, 30)
        a = Instance(backend)
        a.subscribe()
        try:
            a.step_until(lambda: a.processed() >= n, backend.timeout)
            before = {p: backend.store().read_raw(p) for p in range(PARTITIONS)}
            assert all(b"state" not in raw for raw in before.values()), "nothing saved yet"
            backend.lose(a.consumer.inner)
            mark = len(a.log)
            # it learns of the loss, then rejoins and takes the partitions again, from what Redis holds
            a.step_until(lambda: a.log.kinds("on_lost") and len(a.log.kinds("assign")) >= 2, backend.timeout)
            lost = a.log.kinds("on_lost")[0]
            assert lost >= mark
            reassign = [i for i in a.log.kinds("assign") if i > lost][0]
            between = [w for w, _ in a.log[lost:reassign]]
            assert "save" not in between and "commit" not in between and "flush" not in between, between
            assert not a.log.kinds("save") and not a.log.kinds("commit"), "nothing was ever written"
            for p in range(PARTITIONS):
                assert ("bump_epoch", (p, 2)) in a.log[lost:], "the partition is taken anew"
                assert ("load", (p, None)) in a.log[lost:]
                assert a.log[reassign][1][(t.inference, p)] == 0 and a.log[reassign][1][(t.labels, p)] == 0
                assert b"state" not in backend.store().read_raw(p)
            a.step_until(lambda: a.processed() >= 2 * n, backend.timeout)  # everything is read again
            assert not a.log.kinds("save") and not a.log.kinds("commit")
            # the dropped state is not reused: reading the same events again finds no duplicates
            assert dead_letters(backend, "duplicate_id") == []
            assert dead_letters(backend, "duplicate_label") == []
        finally:
            a.consumer.close()


# -- the in-memory backend --------------------------------------------------------------------------------------
class FakeBackend:
    """The clients of one test on the fakes. What a backend offers the contract:

    ``cfg``, ``timeout``; ``consumer()``, ``producer()``, ``store()`` for a Service; ``produce`` + ``flush``
    for input; ``member()`` / ``pump`` / ``has_assignment`` / ``close`` for a second group member;
    ``lose(consumer)`` to make a member lose its partitions; ``outputs(topic)`` and ``committed(keys)`` to
    observe."""

    timeout = 30.0

    def __init__(self) -> None:
        import dataclasses

        from stream.config import load_config

        base = load_config(None, environ={})
        self.cfg = dataclasses.replace(
            base,
            topics=dataclasses.replace(base.topics, partitions=PARTITIONS),
            processing=dataclasses.replace(base.processing, group_id="contract", checkpoint_every_messages=10**9,
                                           checkpoint_every_seconds=1e9, gc_threshold=0, poll_timeout_seconds=0.01),
            state=dataclasses.replace(base.state, hmac_key="contract-key", key_prefix="contract"),
        )
        self.broker = fakes.FakeBroker(default_partitions=PARTITIONS)
        t = self.cfg.topics
        for name in (t.inference, t.labels):
            self.broker.create_topic(name, PARTITIONS)
        self.redis = fakes.fake_redis()

    def consumer(self) -> fakes.FakeConsumer:
        return fakes.FakeConsumer(self.broker, {"group.id": self.cfg.processing.group_id,
                                                "auto.offset.reset": self.cfg.processing.start_from})

    def producer(self) -> fakes.FakeProducer:
        return fakes.FakeProducer(self.broker, deliver_per_poll=5)  # outputs trail behind: a flush is needed

    def store(self) -> CheckpointStore:
        return CheckpointStore(self.redis, self.cfg.state.key_prefix, self.cfg.processing.group_id,
                               self.cfg.state.hmac_key.encode())

    def produce(self, topic: str, partition: int, key: str, value: bytes, ts: float) -> None:
        self.broker.append(topic, partition, key, value, int(ts * 1000))

    def flush(self) -> None:
        pass

    def member(self) -> fakes.FakeConsumer:
        c = self.consumer()
        c.subscribe([self.cfg.topics.inference, self.cfg.topics.labels])
        return c

    def pump(self, member: fakes.FakeConsumer) -> None:
        member.consume(1, 0)

    def has_assignment(self, member: fakes.FakeConsumer) -> bool:
        return bool(member.assignment())

    def close(self, member: fakes.FakeConsumer) -> None:
        member.close()

    def lose(self, consumer: fakes.FakeConsumer) -> None:
        self.broker.expire(consumer)

    def outputs(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(m.value()) for m in self.broker.messages(topic)]

    def committed(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        g = self.cfg.processing.group_id
        return {k: self.broker.committed[(g, *k)] for k in keys if (g, *k) in self.broker.committed}


class TestServiceContractOnFakes(ServiceContract):
    @pytest.fixture
    def backend(self):
        return FakeBackend()


# -- the fakes themselves: what the contract relies on ---------------------------------------------------------
def test_fake_group_uses_the_range_assignor_and_serves_rebalances_in_consume():
    broker = fakes.FakeBroker(default_partitions=4)
    for topic in ("a", "b"):
        broker.create_topic(topic, 4)
    calls: list[tuple[str, str, list[tuple[str, int]]]] = []

    def member(name: str) -> fakes.FakeConsumer:
        c = fakes.FakeConsumer(broker, {"group.id": "g"})
        c.subscribe(["a", "b"],
                    on_assign=lambda c_, tps: calls.append((name, "assign", [(tp.topic, tp.partition) for tp in tps])),
                    on_revoke=lambda c_, tps: calls.append((name, "revoke", [(tp.topic, tp.partition) for tp in tps])))
        return c

    one = member("one")
    assert calls == []  # nothing happens before the member polls
    one.consume(1, 0)
    assert calls == [("one", "assign", [(t, p) for t in "ab" for p in range(4)])]
    two = member("two")
    one.consume(1, 0)
    two.consume(1, 0)
    assert calls[1:] == [("one", "revoke", [(t, p) for t in "ab" for p in range(4)]),
                         ("one", "assign", [("a", 0), ("a", 1), ("b", 0), ("b", 1)]),
                         ("two", "assign", [("a", 2), ("a", 3), ("b", 2), ("b", 3)])]
    two.vanish()  # kill -9: no revoke
    one.consume(1, 0)
    assert calls[-1] == ("one", "assign", [(t, p) for t in "ab" for p in range(4)])
    assert not any(c[0] == "two" and c[1] == "revoke" for c in calls)


def test_fake_consumer_reads_from_the_assigned_offsets_and_honours_pause():
    broker = fakes.FakeBroker()
    broker.create_topic("t", 2)
    for i in range(10):
        broker.append("t", i % 2, f"k{i}", f"v{i}", 1000 + i)
    c = fakes.FakeConsumer(broker, {"group.id": "g"}, fetch_per_partition=2)
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    c.assign([TopicPartition("t", 0, 3), TopicPartition("t", 1, OFFSET_BEGINNING)])
    got = c.consume(3, 0)
    assert [(m.partition(), m.offset()) for m in got] == [(0, 3), (0, 4), (1, 0)]
    c.pause([TopicPartition("t", 1)])
    assert c.consume(10, 0) == []  # partition 0 is at its end, 1 is paused
    c.resume([TopicPartition("t", 1)])
    assert [m.offset() for m in c.consume(10, 0)] == [1, 2, 3, 4]
    assert c.get_watermark_offsets(TopicPartition("t", 1), cached=True) == (0, 5)
    broker.truncate("t", 1, 3)
    assert c.get_watermark_offsets(TopicPartition("t", 1), timeout=1) == (3, 5)
    assert got[0].timestamp()[1] == 1006 and got[0].key() == b"k6" and got[0].value() == b"v6"


def test_fake_producer_delivers_on_poll_and_flush_and_loses_its_queue_in_a_crash():
    broker = fakes.FakeBroker()
    delivered: list[Any] = []
    p = fakes.FakeProducer(broker, capacity=3, deliver_per_poll=1)
    for i in range(3):
        p.produce("out", value=f"v{i}", key="k", on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    with pytest.raises(BufferError):
        p.produce("out", value="v3")
    p.poll(0)
    assert delivered == [(None, 0)] and len(p) == 2
    assert p.crash() == 2 and len(p) == 0 and len(broker.messages("out")) == 1
    failing = fakes.FakeProducer(broker, fail=lambda topic, value: value == b"bad")
    errors: list[Any] = []
    failing.produce("out", value="bad", on_delivery=lambda err, msg: errors.append(err))
    assert failing.flush(1) == 0 and errors and errors[0] is not None


def test_fake_redis_runs_the_checkpoint_stores_fencing_script():
    from stream.errors import Fenced

    r = fakes.fake_redis()
    a = CheckpointStore(r, "x", "g", b"k")
    epoch = a.bump_epoch(0)
    a.save(0, epoch, b"{}", {"t": 1})
    assert a.bump_epoch(0) == epoch + 1  # another owner
    with pytest.raises(Fenced):
        a.save(0, epoch, b"{}", {"t": 2})
    assert a.load(0).offsets == {"t": 1}


def test_fake_control_consumer_carries_an_on_demand_retrain_command():
    # the control topic path of the Service on the fakes: list_topics, assign at the end, consume
    backend = FakeBackend()
    t = backend.cfg.topics
    backend.broker.create_topic(t.control, 1)
    control = fakes.FakeConsumer(backend.broker, {"group.id": "contract-control"})
    n = produce_events(backend, 0, 10)
    a = Instance(backend, control_consumer=control)
    state = {"sent": False}

    def done() -> bool:
        if not state["sent"] and a.processed() >= n:
            backend.broker.append(t.control, 0, None, orjson.dumps({"command": "retrain", "model": "m"}))
            produce_events(backend, 10, 2)
            state["sent"] = True
        return state["sent"] and a.processed() >= n + 4 * PARTITIONS

    assert a.run_until(done, backend.timeout) == 0
    retrains = backend.outputs(t.retrain_events)
    assert sorted(e["partition"] for e in retrains) == list(range(PARTITIONS))
    assert all(e["reasons"] == ["on_demand"] for e in retrains), retrains
    assert control.closed


def test_a_fatal_consumer_error_stops_the_service_without_a_checkpoint():
    from confluent_kafka import KafkaError

    backend = FakeBackend()
    n = produce_events(backend, 0, 10)
    a = Instance(backend)

    def inject() -> None:
        if a.processed() >= n and not a.consumer.inner.errors:
            a.consumer.inner.errors.append(KafkaError(KafkaError._FENCED, "fenced by the broker", fatal=True))
            a.consumer.after_consume = None

    a.consumer.after_consume = inject
    try:
        assert a.service.run(max_seconds=backend.timeout) == 1
    finally:
        gc.unfreeze()
    assert a.processed() >= n and a.consumer.inner.closed
    # neither the stop nor the revoke of the closing consumer writes a checkpoint
    assert a.log.kinds("on_revoke") and not a.log.kinds("save") and not a.log.kinds("commit")
    assert all(b"state" not in backend.store().read_raw(p) for p in range(PARTITIONS))
