"""A fetch delivered late (from before a reassignment or a seek) repeats records this partition already
buffered or processed: they are skipped and counted, never processed twice (the outputs stay those of a run
without them)."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from stream.app import Service
from stream.checkpoint import CheckpointStore
from stream.config import load_config
from stream.metrics import Metrics
from tests import fakes


class RepeatingConsumer(fakes.FakeConsumer):
    """Every third consume call returns the previous call's messages again before new ones."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self._last: list = []

    def consume(self, num_messages: int = 1, timeout: float = -1):
        out = super().consume(num_messages, timeout)
        if self.consume_calls % 3 == 0 and self._last:
            out = self._last + out
        if out:
            self._last = [m for m in out if m.error() is None]
        return out


def _run(repeat: bool):
    cfg = load_config(None, {"DRIFTSTREAM_STATE__HMAC_KEY": "k", "DRIFTSTREAM_ACCEPT_UNDECLARED_MODELS": "true",
                             "DRIFTSTREAM_SCOPE__ENABLED": "false"})
    t = cfg.topics
    broker = fakes.FakeBroker(default_partitions=1)
    for i in range(600):
        ev = {"id": f"e{i}", "model": "m", "ts": 100.0 + i, "features": {"x": float(i % 7)}, "prediction": i % 2}
        broker.append(t.inference, 0, f"e{i}", orjson.dumps(ev), int((100.0 + i) * 1000))
        lab = {"id": f"e{i}", "model": "m", "ts": 102.5 + i, "label": (i // 3) % 2}
        broker.append(t.labels, 0, f"e{i}", orjson.dumps(lab), int((102.5 + i) * 1000))
    clock = fakes.FakeClock()
    cls = RepeatingConsumer if repeat else fakes.FakeConsumer
    consumer = cls(broker, {"group.id": "g", "auto.offset.reset": "earliest"}, clock=clock, fetch_per_partition=40)
    producer = fakes.FakeProducer(broker)
    registry = CollectorRegistry()
    svc = Service(cfg, consumer, producer, CheckpointStore(fakes.fake_redis(), "p", "g", b"k"), Metrics(registry),
                  clock=clock)
    assert svc.run(max_seconds=30.0) == 0
    producer.flush()
    outputs = sorted((topic, m.value()) for topic in list(broker.topics) if topic not in (t.inference, t.labels)
                     for m in broker.messages(topic))
    skipped = sum(registry.get_sample_value("driftstream_messages_total", {"topic": tp, "partition": "0",
                                                                          "outcome": "stale_skipped"}) or 0
                  for tp in (t.inference, t.labels))
    return outputs, skipped


def test_records_delivered_again_are_skipped_and_counted():
    clean, none = _run(False)
    repeated, skipped = _run(True)
    assert none == 0 and skipped > 0
    assert any(b"online" in v or b"prediction" in v for _, v in clean)
    assert repeated == clean
