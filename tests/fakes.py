"""Shared in-memory fakes: a Kafka broker with consumer groups, a consumer and a producer that behave like
confluent-kafka's for what :class:`stream.app.Service` uses, an in-memory Redis, a clock.

They are deterministic: the same calls give the same messages in the same order, so a test (or the golden
recording in ``tests/golden/``) can run the real service loop without servers and compare outputs id for
id. What they model, and what they do not:

* :class:`FakeBroker` holds topics -> partitions -> messages (offset, Kafka timestamp, key, value), the
  log start of each partition (``truncate`` stands in for retention), consumer groups with the *range*
  assignor and the eager rebalance protocol, and committed offsets per group.
* :class:`FakeConsumer` implements ``subscribe`` (with ``on_assign`` / ``on_revoke`` / ``on_lost``),
  ``assign`` / ``unassign`` / ``assignment``, ``consume``, ``pause`` / ``resume``, ``get_watermark_offsets``
  (``cached=`` / ``timeout=``), ``position``, ``commit`` / ``committed``, ``list_topics`` and ``close``. A
  rebalance is served inside the member's next ``consume`` call, as librdkafka does: revoke everything it
  owns, then assign the new share (an ``on_assign`` that does not call ``assign`` gets it assigned
  afterwards, like confluent-kafka). :meth:`FakeBroker.expire` makes a member lose its partitions (session
  timeout / max.poll.interval.ms): its next ``consume`` calls ``on_lost`` and it rejoins the group.
* :class:`FakeProducer` queues what ``produce`` gets and appends it to the broker on ``poll`` / ``flush``,
  serving ``on_delivery``; ``capacity`` makes ``produce`` raise ``BufferError`` while the queue is full,
  ``deliver_per_poll`` bounds what one ``poll`` delivers, and :meth:`FakeProducer.crash` drops what is
  still queued (what a kill -9 loses).
* :func:`fake_redis` is fakeredis with Lua (the checkpoint store's fencing is a Lua script).

Not modelled: transactions, message headers beyond passing them through, incremental (cooperative)
rebalancing, broker errors other than those a test injects with ``FakeConsumer.errors``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID, OFFSET_STORED, TIMESTAMP_CREATE_TIME,
                             KafkaError, KafkaException, TopicPartition)


class FakeClock:
    """A clock that moves only when told to. Steps that are powers of two (1/64, 0.25) keep sums and
    differences exact in floating point, so two runs that reach the same time by different paths agree."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeMessage:
    """What ``Consumer.consume`` returns and ``on_delivery`` receives (confluent_kafka.Message's getters)."""

    __slots__ = ("_topic", "_partition", "_offset", "_timestamp_ms", "_key", "_value", "_headers", "_error")

    def __init__(self, topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None,
                 value: bytes | None, headers: Any = None, error: KafkaError | None = None) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._timestamp_ms, self._key, self._value = timestamp_ms, key, value
        self._headers, self._error = headers, error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (TIMESTAMP_CREATE_TIME, self._timestamp_ms)

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Any:
        return self._headers

    def error(self) -> KafkaError | None:
        return self._error

    def __len__(self) -> int:
        return len(self._value or b"")

    def __repr__(self) -> str:
        return f"FakeMessage({self._topic}[{self._partition}]@{self._offset})"


def _bytes(v: str | bytes | None) -> bytes | None:
    return v.encode() if isinstance(v, str) else v


def key_partition(key: bytes | None, partitions: int) -> int:
    """A stable partitioner (crc32 of the key; keyless messages go to partition 0)."""
    return 0 if key is None else zlib.crc32(key) % partitions


@dataclass
class _Partition:
    messages: list[FakeMessage] = field(default_factory=list)
    #: offset of messages[0] (the log start, moved by retention)
    low: int = 0

    @property
    def high(self) -> int:
        return self.low + len(self.messages)


# -- metadata, as list_topics returns it ----------------------------------------------------------------
@dataclass
class PartitionMetadata:
    id: int
    leader: int = 1
    replicas: list[int] = field(default_factory=lambda: [1])
    isrs: list[int] = field(default_factory=lambda: [1])
    error: KafkaError | None = None


@dataclass
class TopicMetadata:
    topic: str
    partitions: dict[int, PartitionMetadata]
    error: KafkaError | None = None


@dataclass
class ClusterMetadata:
    topics: dict[str, TopicMetadata]
    cluster_id: str = "fake"
    controller_id: int = 1
    brokers: dict[int, Any] = field(default_factory=dict)


class FakeBroker:
    """Topics, partitions, consumer groups and committed offsets, in memory."""

    def __init__(self, default_partitions: int = 1) -> None:
        self.default_partitions = default_partitions
        self.topics: dict[str, list[_Partition]] = {}
        #: group id -> members in join order
        self.groups: dict[str, list[FakeConsumer]] = {}
        #: (group, topic, partition) -> committed offset
        self.committed: dict[tuple[str, str, int], int] = {}
        self.rebalances = 0

    # -- topics ---------------------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int | None = None) -> None:
        if name not in self.topics:
            self.topics[name] = [_Partition() for _ in range(partitions or self.default_partitions)]

    def partitions(self, topic: str) -> int:
        return len(self.topics[topic])

    def append(self, topic: str, partition: int | None, key: str | bytes | None, value: str | bytes | None,
               timestamp_ms: int = 0, headers: Any = None) -> FakeMessage:
        """Append one message (partition None: by key) and return it with its offset."""
        self.create_topic(topic)
        key = _bytes(key)
        parts = self.topics[topic]
        if partition is None or partition < 0:
            partition = key_partition(key, len(parts))
        part = parts[partition]
        msg = FakeMessage(topic, partition, part.high, timestamp_ms, key, _bytes(value), headers)
        part.messages.append(msg)
        return msg

    def truncate(self, topic: str, partition: int, before: int) -> None:
        """Retention: delete the messages below offset ``before``."""
        part = self.topics[topic][partition]
        drop = max(0, min(before, part.high) - part.low)
        del part.messages[:drop]
        part.low += drop

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        part = self._part(topic, partition)
        return part.low, part.high

    def read(self, topic: str, partition: int, offset: int, n: int) -> list[FakeMessage]:
        part = self._part(topic, partition)
        start = max(offset, part.low) - part.low
        return part.messages[start:start + n]

    def messages(self, topic: str) -> list[FakeMessage]:
        """Every message of ``topic``, partition by partition."""
        return [m for part in self.topics.get(topic, []) for m in part.messages]

    def _part(self, topic: str, partition: int) -> _Partition:
        try:
            return self.topics[topic][partition]
        except (KeyError, IndexError):
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART,
                                            f"{topic}[{partition}] does not exist")) from None

    def metadata(self, topic: str | None = None) -> ClusterMetadata:
        names = [topic] if topic is not None else list(self.topics)
        out = {}
        for name in names:
            if name in self.topics:
                out[name] = TopicMetadata(name, {i: PartitionMetadata(i) for i in range(len(self.topics[name]))})
            else:
                out[name] = TopicMetadata(name, {}, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        return ClusterMetadata(out)

    # -- groups ---------------------------------------------------------------------------------------
    def join(self, member: FakeConsumer) -> None:
        members = self.groups.setdefault(member.group_id, [])
        if member not in members:
            members.append(member)
        self._rebalance(member.group_id)

    def leave(self, member: FakeConsumer) -> None:
        members = self.groups.get(member.group_id, [])
        if member in members:
            members.remove(member)
            self._rebalance(member.group_id)

    def expire(self, member: FakeConsumer) -> None:
        """The member missed its session timeout / max.poll.interval.ms: the group moves on without it, and
        its next ``consume`` reports its partitions as lost (then it rejoins)."""
        self.groups.get(member.group_id, []).remove(member)
        member._lost_pending = True
        self._rebalance(member.group_id)

    def _rebalance(self, group: str) -> None:
        """The range assignor: for each subscribed topic, members (in join order) take contiguous ranges of
        partitions, so partition i of co-partitioned topics goes to the same member."""
        self.rebalances += 1
        members = self.groups.get(group, [])
        shares: dict[FakeConsumer, set[tuple[str, int]]] = {m: set() for m in members}
        topics = sorted({t for m in members for t in m._subscription})
        for topic in topics:
            if topic not in self.topics:
                continue
            subs = [m for m in members if topic in m._subscription]
            n, k = len(self.topics[topic]), len(subs)
            per, extra = divmod(n, k)
            start = 0
            for i, m in enumerate(subs):
                count = per + (1 if i < extra else 0)
                shares[m].update((topic, p) for p in range(start, start + count))
                start += count
        for m, share in shares.items():
            m._target = share
            m._rebalance_pending = True


class FakeConsumer:
    """confluent_kafka.Consumer over a :class:`FakeBroker` (see the module docstring for what it models).

    ``clock``: a :class:`FakeClock` that each ``consume`` moves on, by ``busy_seconds`` when it returns
    messages and by its timeout when it returns none (a poll that waits). ``fetch_per_partition``: at most
    this many messages of one partition per round of a ``consume`` call (the partitions take turns, like
    fetch responses). ``errors``: messages with an error to return (one per ``consume`` call) before data.
    ``before_consume``: called at the start of every ``consume`` with the number of messages returned so far
    (a test raises from it to crash the service at a chosen point).
    """

    def __init__(self, broker: FakeBroker, config: dict[str, Any] | None = None, clock: FakeClock | None = None,
                 busy_seconds: float = 1 / 64, fetch_per_partition: int = 64,
                 before_consume: Callable[[int], None] | None = None) -> None:
        config = dict(config or {})
        self.broker = broker
        self.config = config
        self.group_id = str(config.get("group.id", "fake-group"))
        self.auto_offset_reset = str(config.get("auto.offset.reset", "latest"))
        self.clock = clock
        self.busy_seconds = busy_seconds
        self.fetch_per_partition = fetch_per_partition
        self.before_consume = before_consume
        self.errors: list[KafkaError] = []
        self._subscription: list[str] = []
        self._callbacks: dict[str, Callable[..., Any] | None] = {}
        #: (topic, partition) -> next offset to fetch
        self._positions: dict[tuple[str, int], int] = {}
        self._paused: set[tuple[str, int]] = set()
        self._target: set[tuple[str, int]] = set()
        self._owned: set[tuple[str, int]] = set()
        self._rebalance_pending = False
        self._lost_pending = False
        self._assign_called = False
        self._in_callback = False
        self.closed = False
        self.consumed = 0
        self.consume_calls = 0
        self.commits: list[list[TopicPartition]] = []
        self.calls: list[tuple[str, Any]] = []

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("Consumer closed")

    # -- group membership -------------------------------------------------------------------------------
    def subscribe(self, topics: list[str], on_assign: Callable[..., Any] | None = None,
                  on_revoke: Callable[..., Any] | None = None, on_lost: Callable[..., Any] | None = None) -> None:
        self._check_open()
        self._subscription = list(topics)
        self._callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self.broker.join(self)

    def unsubscribe(self) -> None:
        self._check_open()
        self._subscription = []
        self.broker.leave(self)
        self._positions.clear()
        self._owned = set()

    def _serve_rebalance(self) -> None:
        if self._lost_pending:
            self._lost_pending = False
            owned = self._tps(self._owned)
            cb = self._callbacks.get("lost") or self._callbacks.get("revoke")
            self.calls.append(("lost", owned))
            self._run_callback(cb, owned, default=self._unassign_quietly)
            self._owned = set()
            self._positions.clear()
            if self._subscription:
                self.broker.join(self)  # librdkafka rejoins on the next poll
        if not self._rebalance_pending:
            return
        self._rebalance_pending = False
        if self._owned:
            owned = self._tps(self._owned)
            self.calls.append(("revoke", owned))
            self._run_callback(self._callbacks.get("revoke"), owned, default=self._unassign_quietly)
            self._owned = set()
            self._positions.clear()
        new = self._tps(self._target)
        self._owned = set(self._target)
        self.calls.append(("assign", new))
        self._run_callback(self._callbacks.get("assign"), new, default=lambda: self.assign(new))

    def _run_callback(self, cb: Callable[..., Any] | None, tps: list[TopicPartition],
                      default: Callable[[], None]) -> None:
        self._assign_called = False
        if cb is not None:
            self._in_callback = True
            try:
                cb(self, tps)
            finally:
                self._in_callback = False
        if not self._assign_called:
            default()

    def _unassign_quietly(self) -> None:
        self._positions.clear()

    @staticmethod
    def _tps(keys: Iterable[tuple[str, int]]) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(keys)]

    # -- assignment -----------------------------------------------------------------------------------
    def assign(self, partitions: list[TopicPartition]) -> None:
        self._check_open()
        self._assign_called = True
        self._positions = {}
        for tp in partitions:
            self._positions[(tp.topic, tp.partition)] = self._resolve(tp)
        if not self._subscription:
            self._owned = set(self._positions)

    def unassign(self) -> None:
        self._check_open()
        self._assign_called = True
        self._positions = {}

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self._assign_called = True
        for tp in partitions:
            self._positions[(tp.topic, tp.partition)] = self._resolve(tp)

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self._assign_called = True
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self._positions.items())]

    def _resolve(self, tp: TopicPartition) -> int:
        low, high = self.broker.watermarks(tp.topic, tp.partition)
        off = tp.offset
        if off == OFFSET_STORED or off == OFFSET_INVALID:
            stored = self.broker.committed.get((self.group_id, tp.topic, tp.partition))
            off = stored if stored is not None else (OFFSET_BEGINNING if self.auto_offset_reset in (
                "earliest", "smallest", "beginning") else OFFSET_END)
        if off == OFFSET_BEGINNING:
            return low
        if off == OFFSET_END:
            return high
        if off < low or off > high:  # out of range: auto.offset.reset
            return low if self.auto_offset_reset in ("earliest", "smallest", "beginning") else high
        return off

    def seek(self, tp: TopicPartition) -> None:
        self._positions[(tp.topic, tp.partition)] = self._resolve(tp)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self._positions.get((tp.topic, tp.partition), OFFSET_INVALID))
                for tp in partitions]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def paused(self) -> set[tuple[str, int]]:
        return set(self._paused)

    # -- reading ----------------------------------------------------------------------------------------
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self._check_open()
        if self._in_callback:
            raise RuntimeError("consume() called from a rebalance callback")
        if self.before_consume is not None:
            self.before_consume(self.consumed)
        self.consume_calls += 1
        self._serve_rebalance()
        if self.errors:
            out: list[FakeMessage] = [FakeMessage("", -1, -1, 0, None, None, error=self.errors.pop(0))]
        else:
            out = self._fetch(num_messages)
        self.consumed += sum(1 for m in out if m.error() is None)
        if self.clock is not None:
            self.clock.advance(self.busy_seconds if out else max(timeout, 0.0))
        return out

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        msgs = self.consume(1, timeout)
        return msgs[0] if msgs else None

    def _fetch(self, n: int) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        keys = [k for k in sorted(self._positions) if k not in self._paused]
        progress = True
        while len(out) < n and progress:
            progress = False
            for key in keys:
                room = min(self.fetch_per_partition, n - len(out))
                if room <= 0:
                    break
                got = self.broker.read(key[0], key[1], self._positions[key], room)
                if got:
                    out.extend(got)
                    self._positions[key] = got[-1].offset() + 1
                    progress = True
        return out

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float | None = None,
                              cached: bool = False) -> tuple[int, int]:
        self._check_open()
        return self.broker.watermarks(partition.topic, partition.partition)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        self._check_open()
        return self.broker.metadata(topic)

    # -- offsets ----------------------------------------------------------------------------------------
    def commit(self, message: FakeMessage | None = None, offsets: list[TopicPartition] | None = None,
               asynchronous: bool = True) -> list[TopicPartition] | None:
        self._check_open()
        if offsets is None and message is not None:
            offsets = [TopicPartition(message.topic(), message.partition(), message.offset() + 1)]
        if offsets is None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._positions.items()]
        done = [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in offsets]
        for tp in done:
            self.broker.committed[(self.group_id, tp.topic, tp.partition)] = tp.offset
        self.commits.append(done)
        return None if asynchronous else done

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition,
                               self.broker.committed.get((self.group_id, tp.topic, tp.partition), OFFSET_INVALID))
                for tp in partitions]

    def close(self) -> None:
        """Leave the group (a clean close revokes first, as librdkafka does with a subscription)."""
        if self.closed:
            return
        if self._subscription and self._owned and self._callbacks.get("revoke") is not None:
            owned = self._tps(self._owned)
            self.calls.append(("revoke", owned))
            self._in_callback = True
            try:
                self._callbacks["revoke"](self, owned)
            finally:
                self._in_callback = False
        self._owned = set()
        self._positions.clear()
        self.broker.leave(self)
        self.closed = True

    def vanish(self) -> None:
        """kill -9: stop without revoking or committing; the group moves on without this member."""
        self.broker.leave(self)
        self._owned = set()
        self.closed = True


class FakeProducer:
    """confluent_kafka.Producer over a :class:`FakeBroker`: ``produce`` queues, ``poll`` / ``flush`` deliver.

    ``capacity``: queue size above which ``produce`` raises BufferError (None: unbounded).
    ``deliver_per_poll``: at most this many queued messages delivered by one ``poll`` (None: all).
    ``fail``: a predicate on (topic, value); a queued message for which it is true is not appended and its
    ``on_delivery`` gets a KafkaError (delivery failure)."""

    def __init__(self, broker: FakeBroker, capacity: int | None = None, deliver_per_poll: int | None = None,
                 fail: Callable[[str, bytes | None], bool] | None = None) -> None:
        self.broker = broker
        self.capacity = capacity
        self.deliver_per_poll = deliver_per_poll
        self.fail = fail
        self._queue: list[tuple[str, int, bytes | None, bytes | None, int, Any, Callable[..., Any] | None]] = []
        self.produced = 0
        self.delivered = 0
        self.flushes = 0

    def produce(self, topic: str, value: str | bytes | None = None, key: str | bytes | None = None,
                partition: int = -1, on_delivery: Callable[..., Any] | None = None, timestamp: int = 0,
                headers: Any = None, callback: Callable[..., Any] | None = None) -> None:
        if self.capacity is not None and len(self._queue) >= self.capacity:
            raise BufferError("Local: Queue full")
        self._queue.append((topic, partition, _bytes(key), _bytes(value), timestamp, headers, on_delivery or callback))
        self.produced += 1

    def _deliver(self, n: int | None) -> int:
        batch = self._queue if n is None else self._queue[:n]
        self._queue = [] if n is None else self._queue[n:]
        for topic, partition, key, value, ts, headers, cb in batch:
            if self.fail is not None and self.fail(topic, value):
                if cb is not None:
                    cb(KafkaError(KafkaError._MSG_TIMED_OUT, "fake delivery failure"),
                       FakeMessage(topic, max(partition, 0), -1, ts, key, value, headers))
                continue
            msg = self.broker.append(topic, None if partition < 0 else partition, key, value, ts, headers)
            self.delivered += 1
            if cb is not None:
                cb(None, msg)
        return len(batch)

    def poll(self, timeout: float | None = None) -> int:
        return self._deliver(self.deliver_per_poll)

    def flush(self, timeout: float | None = None) -> int:
        self.flushes += 1
        self._deliver(None)
        return 0

    def __len__(self) -> int:
        return len(self._queue)

    def crash(self) -> int:
        """kill -9: what is still queued is lost; returns how many."""
        n, self._queue = len(self._queue), []
        return n


def fake_redis() -> Any:
    """An in-memory Redis with Lua scripting (fakeredis + lupa), for :class:`stream.checkpoint.CheckpointStore`.
    Each call is a new, empty server; share the client between services to keep their state."""
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


class MemoryPublisher:
    """Stands in for :class:`stream.publish.Publisher` in tests of one partition processor: records what
    would be produced, as plain JSON data."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, topic: str, key: Any, event: dict) -> None:
        import orjson

        self.sent.append((topic, orjson.loads(orjson.dumps(event))))

    def dead_letter(self, topic: str, record: Any, reason: str, detail: str) -> None:
        self.sent.append((topic, {"type": "dead-letter", "reason": reason, "offset": record.offset,
                                  "source_topic": record.topic}))


def partitioned_records(cfg: Any, workload: Any, partitions: int) -> list[list[Any]]:
    """A workload's events as the records each partition's processor reads (keyed by event id, partitioned
    like :class:`FakeBroker`, offsets counted per input topic), for in-process runs without a broker."""
    import orjson

    from stream.events import Record
    from stream.tools.workload import events

    per: list[list[Any]] = [[] for _ in range(partitions)]
    nxt = [[0, 0] for _ in range(partitions)]
    for kind, ts, ev in events(workload):
        key = ev["id"].encode()
        p = key_partition(key, partitions)
        t = 0 if kind == "inference" else 1
        topic = cfg.topics.inference if t == 0 else cfg.topics.labels
        per[p].append(Record(topic, p, nxt[p][t], int(ts * 1000), key, orjson.dumps(ev)))
        nxt[p][t] += 1
    return per
