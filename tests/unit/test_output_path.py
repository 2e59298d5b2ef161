"""Issue 20, through the whole service loop: poison messages at and around every size limit, on both input
topics and the control topic, never stop a partition. Runs :class:`stream.app.Service` over the shared
fakes with :class:`tests.unit.test_publish.SizedProducer` (librdkafka's and the broker's size rules)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.app import Service
from stream.checkpoint import CheckpointStore
from stream.config import load_config
from stream.metrics import Metrics
from tests import fakes
from tests.unit.test_publish import SizedProducer

CONFIG = """
[processing]
group_id = "sizes"
checkpoint_every_messages = 50
checkpoint_every_seconds = 5.0
poll_timeout_seconds = 0.25
gc_threshold = 0

[topics]
partitions = 1

[state]
key_prefix = "sizes"
hmac_key = "sizes-test-key"
"""

MAX = 1_000_000  # processing.max_message_bytes (default)


def _inference(i: int) -> bytes:
    return orjson.dumps({"id": f"e{i}", "model": "m", "ts": 1000.0 + i, "features": {"a": float(i % 7)},
                         "prediction": i % 2})


def _label(i: int) -> bytes:
    return orjson.dumps({"id": f"e{i}", "model": "m", "ts": 1000.5 + i, "label": (i // 3) % 2})


def _poison(size: int) -> bytes:
    """``size`` bytes that are not a valid event: at or under the limit they fail decoding, over it they
    are refused as oversized; either way the dead-letter event would carry all of them."""
    return b"{" + b"x" * (size - 1)


POISON_SIZES = [MAX - 1, MAX, MAX + 1, 1_000_393, 1_048_500]


@pytest.mark.parametrize("dead_letter_max", [None, 8_192])
def test_oversized_inputs_on_every_topic_are_dead_lettered_and_the_partition_moves_on(tmp_path: Path,
                                                                                     dead_letter_max):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    cfg = load_config(path, environ={})
    t = cfg.topics
    broker = fakes.FakeBroker(default_partitions=1)
    for name in (t.inference, t.labels, t.control):
        broker.create_topic(name)
    expected = set()
    n = 0
    for round_ in range(2):  # valid events around the poison: the partition must get past it
        for size in POISON_SIZES:
            for _ in range(20):
                broker.append(t.inference, 0, b"m", _inference(n), 1000)
                broker.append(t.labels, 0, b"m", _label(n), 1000)
                n += 1
            for topic in (t.inference, t.labels):
                msg = broker.append(topic, 0, b"m", _poison(size), 1000)
                expected.add(f"{topic}:0:{msg.offset()}:dead-letter")
    highs = {topic: broker.watermarks(topic, 0)[1] for topic in (t.inference, t.labels)}

    def send_commands(consumed: int) -> None:  # once the control reader sits at the end of its topic
        if consumed > 0 and not broker.messages(t.control):
            for size in POISON_SIZES:
                msg = broker.append(t.control, 0, None, _poison(size), 1000)
                expected.add(f"{t.control}:0:{msg.offset()}:dead-letter")

    clock = fakes.FakeClock()
    consumer = fakes.FakeConsumer(broker, {"group.id": "sizes", "auto.offset.reset": "earliest"}, clock=clock,
                                  busy_seconds=0.25, before_consume=send_commands)
    control = fakes.FakeConsumer(broker, {"group.id": "sizes-control"}, clock=clock)
    producer = SizedProducer(broker, topic_max={t.dead_letter: dead_letter_max} if dead_letter_max else {})
    registry = CollectorRegistry()
    store = CheckpointStore(fakes.fake_redis(), cfg.state.key_prefix, cfg.processing.group_id,
                            cfg.state.hmac_key.encode())
    svc = Service(cfg, consumer, producer, store, Metrics(registry), clock=clock, control_consumer=control,
                  limits=producer.limits())
    try:
        code = svc.run(max_seconds=60.0)
    finally:
        import gc

        gc.unfreeze()
    assert code == 0
    dead = {orjson.loads(m.value())["id"]: m for m in broker.messages(t.dead_letter)}
    assert sorted(dead) == sorted(expected)
    limit = dead_letter_max or 1_048_588
    for m in dead.values():
        ev = orjson.loads(m.value())
        assert len(m.value()) + len(m.key() or b"") <= min(limit, 1_000_000) - 128
        assert ev["value_truncated"] and ev["value_bytes"] in POISON_SIZES and ev["value"].startswith("{xxx")
    assert producer.refused == []
    # the checkpoint holds offsets past everything: a restart does not meet the poison again
    cp = store.load(0)
    assert cp is not None and cp.offsets == highs
    assert svc.checkpoints_written >= 2
