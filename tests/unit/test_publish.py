"""Issue 20: no single input message can fail the output path.

:class:`SizedProducer` is the shared fake producer with the size rules of librdkafka and the broker, as
measured on the local stack (confluent-kafka 2.16 / librdkafka 2.16, Kafka 3.x): ``produce`` raises
``MSG_SIZE_TOO_LARGE`` when key + value + 36 bytes exceed ``message.max.bytes``; messages are batched per
topic up to ``batch.size`` (the first message of a batch always goes in); the broker refuses a whole record
batch (61-byte header + key + value + ~14 bytes per record) over the topic's ``max.message.bytes``, every
record of it with ``MSG_SIZE_TOO_LARGE`` in the delivery report.
"""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from stream.errors import FatalError
from stream.events import Record
from stream.metrics import Metrics
from stream.outputs import dead_letter_event
from stream.publish import FRAMING_BYTES, OutputLimits, Publisher
from tests import fakes

PRODUCER_FRAMING = 36
BATCH_HEADER = 61
RECORD_FRAMING = 14
DEFAULT_TOPIC_MAX = 1_048_588


class SizedProducer(fakes.FakeProducer):
    def __init__(self, broker: fakes.FakeBroker, message_max: int = 1_000_000, batch_size: int | None = None,
                 topic_max: dict[str, int] | None = None, **kw) -> None:
        super().__init__(broker, **kw)
        self.message_max = message_max
        self.topic_max = dict(topic_max or {})
        # None: set up as build_service does, with the settings the limits ask for
        self.batch_size = 1_000_000
        if batch_size is None:
            batch_size = self.limits().producer_settings().get("batch.size", 1_000_000)
        self.batch_size = batch_size
        self.refused: list[tuple[str, int]] = []  # (topic, record bytes) refused by the broker

    def limits(self) -> OutputLimits:
        return OutputLimits(producer_max=self.message_max, topic_max=self.topic_max, batch_size=self.batch_size)

    def produce(self, topic, value=None, key=None, on_delivery=None, **kw):
        size = len(fakes._bytes(value) or b"") + len(fakes._bytes(key) or b"")
        if size + PRODUCER_FRAMING > self.message_max:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"))
        super().produce(topic, value=value, key=key, on_delivery=on_delivery, **kw)

    def _deliver(self, n):
        queue = self._queue if n is None else self._queue[:n]
        self._queue = [] if n is None else self._queue[n:]
        batches: dict[str, list[list]] = {}
        for item in queue:  # batches per topic, in order, up to batch.size
            topic, key, value = item[0], item[2], item[3]
            size = len(key or b"") + len(value or b"") + RECORD_FRAMING
            runs = batches.setdefault(topic, [])
            if not runs or runs[-1][0] + size > self.batch_size:
                runs.append([0, []])
            runs[-1][0] += size
            runs[-1][1].append(item)
        for topic, runs in batches.items():
            limit = self.topic_max.get(topic, DEFAULT_TOPIC_MAX)
            for size, items in runs:
                ok = size + BATCH_HEADER <= limit
                for topic_, partition, key, value, ts, headers, cb in items:
                    if self.fail is not None and self.fail(topic_, value):  # the infrastructure's failure
                        if cb is not None:
                            cb(KafkaError(KafkaError._MSG_TIMED_OUT, "fake delivery failure"),
                               fakes.FakeMessage(topic_, max(partition, 0), -1, ts, key, value, headers))
                    elif ok:
                        msg = self.broker.append(topic_, None if partition < 0 else partition, key, value, ts,
                                                 headers)
                        self.delivered += 1
                        if cb is not None:
                            cb(None, msg)
                    else:
                        self.refused.append((topic_, len(key or b"") + len(value or b"")))
                        if cb is not None:
                            cb(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"),
                               fakes.FakeMessage(topic_, max(partition, 0), -1, ts, key, value, headers))
        return len(queue)


def _record(value: bytes, key: bytes | None = b"k-1", topic: str = "inference", offset: int = 7) -> Record:
    return Record(topic, 3, offset, 1_700_000_000_000, key, value)


def _publisher(producer: SizedProducer, registry: CollectorRegistry | None = None) -> Publisher:
    metrics = Metrics(registry or CollectorRegistry())
    return Publisher(producer, on_produced=metrics.output, limits=producer.limits(), dead_letter_topic="dead-letter",
                     on_rejected=metrics.output_rejected)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    v = registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


# -- the dead-letter event itself ---------------------------------------------------------------------------
def test_a_dead_letter_event_that_fits_is_unchanged():
    rec = _record(b'{"id": "x"}')
    assert dead_letter_event(rec, "bad_json", "e", max_bytes=10_000) == dead_letter_event(rec, "bad_json", "e")
    assert "value_sha256" not in dead_letter_event(rec, "bad_json", "e")


@pytest.mark.parametrize("budget", [600, 601, 999, 1000, 1001, 5000, 999_872])
@pytest.mark.parametrize("kind", ["ascii", "escapes", "multibyte", "binary"])
def test_a_truncated_dead_letter_event_fits_its_budget_exactly_as_far_as_it_can(budget, kind):
    raw = {"ascii": b"a" * 1_000_393, "escapes": b'"\\\n\x01' * 250_100,
           "multibyte": "\u00e9\u6f22\U0001f600".encode() * 111_200,
           "binary": bytes(range(256)) * 3908}[kind]
    ev = dead_letter_event(_record(raw), "oversized", "message is too big", max_bytes=budget)
    out = orjson.dumps(ev)
    assert len(out) <= budget
    assert ev["value_truncated"] is True and ev["value_bytes"] == len(raw)
    assert ev["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert ev["source"] == {"topic": "inference", "partition": 3, "offset": 7, "timestamp_ms": 1_700_000_000_000}
    if kind == "binary":
        kept = ev["value_base64"]
        assert len(kept) % 4 == 0 and raw.startswith(base64.b64decode(kept))
        longer = kept + base64.b64encode(raw)[len(kept):len(kept) + 4].decode()
    else:
        kept = ev["value"]
        text = raw.decode()
        assert text.startswith(kept)
        longer = text[:len(kept) + 1]
    # one more character (group) would not fit: the prefix is the longest possible
    assert len(orjson.dumps({**ev, ("value_base64" if kind == "binary" else "value"): longer})) > budget


def test_a_budget_too_small_for_any_value_leaves_the_value_out():
    ev = dead_letter_event(_record(b"a" * 5000, key=b"k" * 900), "oversized", "x" * 2000, max_bytes=400)
    assert ev["value"] is None and ev["value_bytes"] == 5000 and len(orjson.dumps(ev)) <= 400
    # then the error text and the key are cut too, in that order
    assert ev["error"] == "" and ev["key"] and set(ev["key"]) == {"k"}
    ev = dead_letter_event(_record(b"a" * 5000, key=b"k" * 10), "oversized", "x" * 2000, max_bytes=400)
    assert ev["key"] == "k" * 10 and ev["error"] and set(ev["error"]) == {"x"} and len(orjson.dumps(ev)) <= 400


# -- the publisher, around each limit ---------------------------------------------------------------------------
LIMIT = 1_000_000 - FRAMING_BYTES  # what one record may carry under the default limits


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT, LIMIT + 1, 1_000_000, 1_000_393, 1_048_576, 2_000_000])
def test_the_dead_letter_of_an_input_of_any_size_is_delivered(size):
    # regression: an input between max_message_bytes and the broker's limit was copied whole into its
    # dead-letter event, librdkafka refused it (MSG_SIZE_TOO_LARGE) and the service stopped, on every restart
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker)
    pub = _publisher(producer)
    raw = b'{"id": "big", "features": {"blob": "' + b"x" * (size - 40) + b'"}}'
    pub.dead_letter("dead-letter", _record(raw), "oversized", f"message is {len(raw)} bytes")
    pub.flush()
    (msg,) = broker.messages("dead-letter")
    ev = orjson.loads(msg.value())
    assert ev["id"] == "inference:3:7:dead-letter" and ev["reason"] == "oversized"
    assert len(msg.value()) + len(msg.key()) <= LIMIT
    if ev.get("value_truncated"):
        assert ev["value_bytes"] == len(raw) and raw.decode().startswith(ev["value"])
        assert len(ev["value"]) > LIMIT - 1000  # cut to what fits, not emptied
    else:
        assert ev["value"] == raw.decode()


def test_the_producer_limit_is_read_from_the_settings():
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker, message_max=20_000)
    pub = _publisher(producer)
    pub.dead_letter("dead-letter", _record(b"y" * 50_000), "oversized", "")
    pub.flush()
    (msg,) = broker.messages("dead-letter")
    assert 19_000 < len(msg.value()) <= 20_000 - FRAMING_BYTES


@pytest.mark.parametrize("topic_max", [2_000, 4_096, 100_000])
def test_the_dead_letter_topics_max_message_bytes_bounds_the_event(topic_max):
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker, topic_max={"dead-letter": topic_max})
    pub = _publisher(producer)
    for size in (topic_max - 200, topic_max - 1, topic_max, topic_max + 1, 900_000):
        pub.dead_letter("dead-letter", _record(b"z" * size, offset=size), "oversized", "")
    pub.flush()
    got = broker.messages("dead-letter")
    assert [orjson.loads(m.value())["source"]["offset"] for m in got] == [
        topic_max - 200, topic_max - 1, topic_max, topic_max + 1, 900_000]
    assert producer.refused == []


def test_a_topic_limit_learned_only_from_the_broker_still_gives_a_notice():
    # the topic's max.message.bytes was lowered after start-up (or could not be read): the broker refuses the
    # dead-letter event in its delivery report; a small notice replaces it and the flush succeeds
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker, topic_max={"dead-letter": 3_000})
    registry = CollectorRegistry()
    pub = Publisher(producer, limits=OutputLimits(), dead_letter_topic="dead-letter",
                    on_rejected=Metrics(registry).output_rejected)
    pub.dead_letter("dead-letter", _record(b"q" * 10_000), "oversized", "")
    pub.flush()
    (msg,) = broker.messages("dead-letter")
    ev = orjson.loads(msg.value())
    assert ev["reason"] == "output_rejected" and ev["id"] == "inference:3:7:rejected:dead-letter"
    assert ev["source"] == {"topic": "inference", "partition": 3, "offset": 7}
    assert ev["output"]["topic"] == "dead-letter" and ev["output"]["type"] == "dead-letter"
    assert _sample(registry, "driftstream_output_rejected_total", topic="dead-letter",
                   error="MSG_SIZE_TOO_LARGE") == 1


@pytest.mark.parametrize("where", ["producer", "topic_known", "topic_from_broker"])
def test_a_derived_output_too_large_is_replaced_by_a_notice_and_counted(where):
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker, message_max=5_000 if where == "producer" else 1_000_000,
                             topic_max={"drift-events": 5_000} if where != "producer" else {})
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    limits = OutputLimits() if where == "topic_from_broker" else producer.limits()
    pub = Publisher(producer, on_produced=metrics.output, limits=limits, dead_letter_topic="dead-letter",
                    on_rejected=metrics.output_rejected)
    small = {"id": "inference:1:41:drift:ADWIN", "type": "drift", "note": "ok"}
    big = {"id": "inference:1:42:drift:ADWIN", "type": "drift", "note": "n" * 6_000}
    pub.send("drift-events", b"m", small)
    pub.send("drift-events", b"m", big)
    pub.flush()
    assert [orjson.loads(m.value())["id"] for m in broker.messages("drift-events")] == [small["id"]]
    (notice,) = [orjson.loads(m.value()) for m in broker.messages("dead-letter")]
    assert notice["id"] == "inference:1:42:rejected:drift:ADWIN" and notice["reason"] == "output_rejected"
    assert notice["source"] == {"topic": "inference", "partition": 1, "offset": 42}
    assert notice["output"]["bytes"] == len(orjson.dumps(big))
    assert notice["output"]["sha256"] == hashlib.sha256(orjson.dumps(big)).hexdigest()
    assert _sample(registry, "driftstream_output_rejected_total", topic="drift-events",
                   error="MSG_SIZE_TOO_LARGE") == 1


def test_the_batch_size_is_capped_by_the_smallest_output_topic():
    # the broker applies max.message.bytes to a whole batch: 200 small valid events to a topic with a 10 kB
    # limit are refused as one batch unless the producer's batches stay under it (measured on the real broker)
    limits = OutputLimits(topic_max={"drift-events": 10_000, "dead-letter": 50_000})
    assert limits.producer_settings() == {"batch.size": 10_000 - FRAMING_BYTES}
    assert OutputLimits().producer_settings() == {}  # the defaults already fit the broker's default
    assert OutputLimits(batch_size=5_000, topic_max={"x": 10_000}).producer_settings() == {}
    for capped in (False, True):
        broker = fakes.FakeBroker()
        batch_size = limits.producer_settings()["batch.size"] if capped else 1_000_000
        producer = SizedProducer(broker, batch_size=batch_size, topic_max=dict(limits.topic_max))
        pub = Publisher(producer, limits=limits, dead_letter_topic="dead-letter")
        for i in range(200):
            pub.send("drift-events", None, {"id": f"inference:0:{i}:drift:ADWIN", "pad": "p" * 400})
        pub.flush()
        assert len(broker.messages("drift-events")) == 200 and broker.messages("dead-letter") == []
        # uncapped, the whole batch is refused and every event must be sent again alone (slow, but nothing
        # valid is replaced by a notice); capped, nothing is refused
        assert (len(producer.refused) == 200) is not capped and (producer.refused == []) is capped


def test_a_valid_event_refused_with_an_oversized_one_in_its_batch_is_delivered():
    # the limit of drift-events is unknown to the publisher (lowered after start-up): the broker refuses
    # the batch holding both events; the valid one, sent again alone, is delivered, the other replaced
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker, batch_size=1_000_000, topic_max={"drift-events": 10_000})
    registry = CollectorRegistry()
    pub = Publisher(producer, limits=OutputLimits(), dead_letter_topic="dead-letter",
                    on_rejected=Metrics(registry).output_rejected)
    pub.send("drift-events", None, {"id": "inference:0:5:drift:ADWIN", "pad": "p" * 30_000})
    pub.send("drift-events", None, {"id": "inference:0:6:drift:ADWIN"})
    pub.poll()
    pub.flush()
    assert [orjson.loads(m.value())["id"] for m in broker.messages("drift-events")] == ["inference:0:6:drift:ADWIN"]
    assert [orjson.loads(m.value())["id"] for m in broker.messages("dead-letter")] == [
        "inference:0:5:rejected:drift:ADWIN"]
    assert _sample(registry, "driftstream_output_rejected_total", topic="drift-events",
                   error="MSG_SIZE_TOO_LARGE") == 1


def test_a_refused_notice_and_infrastructure_failures_stay_fatal():
    broker = fakes.FakeBroker()
    producer = SizedProducer(broker, topic_max={"dead-letter": 300})
    pub = _publisher(producer)
    pub.dead_letter("dead-letter", _record(b"v" * 1_000), "oversized", "e" * 1_000)
    with pytest.raises(FatalError, match="raise the dead-letter topic's max.message.bytes"):
        pub.flush()
    # a timed-out delivery is the infrastructure's: fatal as before, nothing replaced
    broker = fakes.FakeBroker()
    pub = _publisher(SizedProducer(broker, fail=lambda topic, value: True))
    pub.send("drift-events", None, {"id": "inference:0:1:drift:ADWIN"})
    with pytest.raises(FatalError, match="output deliveries failed"):
        pub.flush()
    assert broker.messages("dead-letter") == []
    # without a dead-letter topic (tools) a refused output is fatal too
    with pytest.raises(FatalError):
        Publisher(SizedProducer(fakes.FakeBroker(), message_max=1_000)).send("t", None, {"x": "y" * 2_000})


def test_every_dead_letter_event_fits_its_budget_on_random_inputs():
    import random

    rng = random.Random(20)
    alphabets = [b"\x00\x01\x1f\"\\", "é漢😀".encode(), bytes(range(256)), b"abc"]
    for _ in range(400):
        raw = bytes(rng.choice(rng.choice(alphabets)) for _ in range(rng.randrange(0, 3000)))
        key = bytes(rng.choice(alphabets[0] + b"k") for _ in range(rng.randrange(0, 40))) or None
        detail = "\x01\u2028" * rng.randrange(0, 600)
        budget = rng.randrange(700, 20_000)
        ev = dead_letter_event(Record("t.inference", 1, 9, 0, key, raw), "bad_json", detail, max_bytes=budget)
        assert len(orjson.dumps(ev)) <= budget
        assert ("value_truncated" in ev) is (len(orjson.dumps(dead_letter_event(
            Record("t.inference", 1, 9, 0, key, raw), "bad_json", detail))) > budget)


class _UnreachableFor(fakes.FakeProducer):
    """A broker that answers only after ``outage_flushes`` flush timeouts (librdkafka keeps the messages
    queued and retries meanwhile; the fault suite measured broker restarts of 25-36 s)."""

    def __init__(self, broker: fakes.FakeBroker, outage_flushes: int) -> None:
        super().__init__(broker)
        self.outage_flushes = outage_flushes
        self.flush_calls = 0

    def flush(self, timeout: float = -1) -> int:
        self.flush_calls += 1
        if self.flush_calls <= self.outage_flushes:
            return len(self) or 1
        return super().flush(timeout)


def test_a_broker_outage_longer_than_one_flush_timeout_is_waited_out():
    broker = fakes.FakeBroker()
    producer = _UnreachableFor(broker, outage_flushes=3)
    pub = Publisher(producer)
    pub.send("drift-events", None, {"id": "inference:0:1:drift:ADWIN"})
    pub.flush(timeout=0.01)  # raised "not delivered within 30 s" after the first timeout before
    assert producer.flush_calls == 4 and len(broker.messages("drift-events")) == 1
    # a bound given by the caller still holds
    pub = Publisher(_UnreachableFor(fakes.FakeBroker(), outage_flushes=10))
    pub.send("drift-events", None, {"id": "inference:0:2:drift:ADWIN"})
    with pytest.raises(FatalError, match="not delivered within"):
        pub.flush(timeout=0.01, max_wait=0.03)
