"""Issue 20 against the real broker: an input the broker accepts but the service cannot copy whole into a
dead-letter event (the reproduction: a 1,000,393-byte inference event among valid ones) no longer stops its
partition. The dead-letter topic is created with a small ``max.message.bytes``; the service is built by
``build_service`` (which reads the topics' limits at start-up) and run in-process."""

from __future__ import annotations

import threading
import time

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from prometheus_client import CollectorRegistry

from stream.app import build_service
from stream.checkpoint import CheckpointStore
from stream.metrics import Metrics
from stream.publish import FRAMING_BYTES
from stream.topics import admin_client, all_topics
from tests.integration.conftest import fresh_config
from tests.integration.helpers import messages_done, read_topic

DEAD_LETTER_MAX = 20_000
#: the issue's reproduction: over processing.max_message_bytes (1,000,000), under the broker's limit
BIG = b'{"id": "big", "blob": "' + b"x" * 1_000_368 + b'"}'
assert len(BIG) == 1_000_393
#: an inference topic that takes up to 3 MB, and a 2.5 MB input in it
HUGE_TOPIC_MAX = 3_000_000
HUGE = b"\xff" + b"h" * 2_499_999


def _inference(i: int, t0: float) -> bytes:
    return orjson.dumps({"id": f"e{i}", "model": "m", "ts": t0 + i, "features": {"a": float(i % 5)},
                         "prediction": i % 2})


def test_oversized_inputs_reach_dead_letter_and_the_partition_moves_on(stack, redis_client):
    cfg = fresh_config(stack)
    t = cfg.topics
    admin = admin_client(cfg)
    futures = admin.create_topics([
        NewTopic(name, num_partitions=1 if name == t.control else 2, replication_factor=1,
                 config={"max.message.bytes": str(DEAD_LETTER_MAX)} if name == t.dead_letter
                 else {"max.message.bytes": str(HUGE_TOPIC_MAX)} if name == t.inference else {})
        for name in all_topics(cfg)])
    for fut in futures.values():
        fut.result(30)
    p = Producer({"bootstrap.servers": cfg.kafka["bootstrap.servers"], "message.max.bytes": 3_100_000})
    t0 = time.time() - 600
    ts = int(t0 * 1000)
    expected_reasons = {}
    n = 0
    for part in (0, 1):
        for k in range(40):
            p.produce(t.inference, _inference(n, t0), key=b"m", partition=part, timestamp=ts)
            n += 1
        p.produce(t.inference, BIG, key=b"m", partition=part, timestamp=ts)
        p.produce(t.inference, HUGE, key=b"m", partition=part, timestamp=ts)  # over the default broker limit
        p.produce(t.labels, b"{" + b"y" * 999_999, key=b"m", partition=part, timestamp=ts)  # at the limit
        # a run of mid-sized poison: their dead-letter events (~5 kB each) batch over the topic's limit
        for k in range(12):
            p.produce(t.labels, b"not json " + b"z" * 5_000, key=b"m", partition=part, timestamp=ts)
        for k in range(40):
            p.produce(t.inference, _inference(n, t0), key=b"m", partition=part, timestamp=ts)
            n += 1
    p.flush(30)
    inputs = 2 * (40 + 2 + 1 + 12 + 40)

    registry = CollectorRegistry()
    svc = build_service(cfg, Metrics(registry), redis_client=redis_client)
    assert svc.publisher.limits.topic_max[t.dead_letter] == DEAD_LETTER_MAX
    assert svc.publisher.limits.producer_settings() == {"batch.size": DEAD_LETTER_MAX - FRAMING_BYTES}
    result: dict[str, int] = {}
    th = threading.Thread(target=lambda: result.setdefault("code", svc.run()), daemon=True)
    th.start()
    deadline = time.monotonic() + 90
    while messages_done(registry) < inputs and time.monotonic() < deadline and th.is_alive():
        time.sleep(0.2)
    # the control topic: the reader sits at its end once the service runs
    p.produce(t.control, b"{" + b"c" * 1_000_392, timestamp=ts)
    p.flush(30)
    while time.monotonic() < deadline and th.is_alive() and not any(
            d["source"]["topic"] == t.control for d in read_topic(cfg, t.dead_letter, idle=1.0, max_wait=5)):
        time.sleep(0.5)
    svc.stop()
    th.join(60)
    assert result.get("code") == 0, "the service stopped with an error"
    assert messages_done(registry) == inputs

    dead = read_topic(cfg, t.dead_letter)
    by_source = {}
    for d in dead:
        by_source.setdefault(d["source"]["topic"], []).append(d)
        assert len(orjson.dumps(d)) <= DEAD_LETTER_MAX - FRAMING_BYTES
        assert d["reason"] != "output_rejected"
    big = [d for d in by_source[t.inference]]
    assert len(big) == 4 and all(d["reason"] == "oversized" and d["value_truncated"] for d in big)
    assert sorted(d["value_bytes"] for d in big) == [len(BIG)] * 2 + [len(HUGE)] * 2
    assert all(d["value"].startswith('{"id": "big"') for d in big if d["value_bytes"] == len(BIG))
    # not UTF-8: base64, cut to whole 4-character groups
    assert all(len(d["value_base64"]) % 4 == 0 and d["value"] is None for d in big if d["value_bytes"] == len(HUGE))
    assert sorted(d["reason"] for d in by_source[t.labels]) == ["invalid_json"] * 26
    assert [d["value_bytes"] for d in by_source[t.control]] == [1_000_393]
    # a checkpoint past everything: a restart does not meet the poison again
    store = CheckpointStore(redis_client, cfg.state.key_prefix, cfg.processing.group_id, cfg.state.hmac_key.encode())
    for part in (0, 1):
        cp = store.load(part)
        assert cp is not None and cp.offsets == {t.inference: 82, t.labels: 13}


def test_an_output_the_broker_refuses_is_replaced_by_a_notice(stack):
    """The delivery-report path on the real broker: a topic limit the publisher does not know of (lowered
    after start-up, or not readable) refuses a derived event; a notice replaces it and the flush succeeds."""
    from stream.publish import OutputLimits, Publisher

    cfg = fresh_config(stack)
    t = cfg.topics
    admin = admin_client(cfg)
    for fut in admin.create_topics([NewTopic(t.drift_events, 1, 1, config={"max.message.bytes": "10000"}),
                                    NewTopic(t.dead_letter, 1, 1)]).values():
        fut.result(30)
    rejected = []
    pub = Publisher(Producer({"bootstrap.servers": cfg.kafka["bootstrap.servers"]}), limits=OutputLimits(),
                    dead_letter_topic=t.dead_letter, on_rejected=lambda topic, err: rejected.append((topic, err)))
    pub.send(t.drift_events, b"k", {"id": f"{t.inference}:0:5:drift:ADWIN", "type": "drift", "pad": "p" * 30_000})
    pub.send(t.drift_events, b"k", {"id": f"{t.inference}:0:6:drift:ADWIN", "type": "drift"})
    pub.flush()
    assert rejected == [(t.drift_events, "MSG_SIZE_TOO_LARGE")]
    assert [d["id"] for d in read_topic(cfg, t.drift_events, idle=1.0)] == [f"{t.inference}:0:6:drift:ADWIN"]
    (notice,) = read_topic(cfg, t.dead_letter, idle=1.0)
    assert notice["id"] == f"{t.inference}:0:5:rejected:drift:ADWIN" and notice["reason"] == "output_rejected"
    assert notice["source"] == {"topic": t.inference, "partition": 0, "offset": 5}
    assert notice["output"]["topic"] == t.drift_events and notice["output"]["bytes"] > 30_000
