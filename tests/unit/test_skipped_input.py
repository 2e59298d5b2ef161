"""Issue 20: input that retention deleted before it was read is said at once, not skipped in silence."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.app import Service
from stream.checkpoint import CheckpointStore
from stream.config import load_config
from stream.metrics import Metrics
from tests import fakes


def _run(mode: str):
    cfg = load_config(None, {"DRIFTSTREAM_PROCESSING__ON_OFFSET_OUT_OF_RANGE": mode,
                             "DRIFTSTREAM_STATE__HMAC_KEY": "k", "DRIFTSTREAM_ACCEPT_UNDECLARED_MODELS": "true"})
    t = cfg.topics
    broker = fakes.FakeBroker(default_partitions=1)
    for i in range(200):
        ev = {"id": f"e{i}", "model": "m", "ts": 100.0 + i, "features": {"x": 1.0}, "prediction": 1}
        broker.append(t.inference, 0, f"e{i}", orjson.dumps(ev), int((100.0 + i) * 1000))
        lab = {"id": f"e{i}", "model": "m", "ts": 100.5 + i, "label": 1}
        broker.append(t.labels, 0, f"e{i}", orjson.dumps(lab), int((100.5 + i) * 1000))
    clock = fakes.FakeClock()

    consumer = fakes.FakeConsumer(broker, {"group.id": "g", "auto.offset.reset": "earliest"}, clock=clock)
    producer = fakes.FakeProducer(broker)
    store = CheckpointStore(fakes.fake_redis(), "p", "g", b"k")
    svc = Service(cfg, consumer, producer, store, Metrics(CollectorRegistry()), clock=clock)
    assign = svc.on_assign

    def assign_then_retention(c, partitions):  # positioned at offset 0, then the head is deleted
        assign(c, partitions)
        broker.truncate(t.inference, 0, 120)
        broker.truncate(t.labels, 0, 120)

    svc.on_assign = assign_then_retention
    code = svc.run(max_seconds=20.0)
    producer.flush()
    dq = [orjson.loads(m.value()) for m in broker.messages(t.data_quality)]
    return code, [e for e in dq if e.get("check") == "offset_out_of_range"]


def test_skipped_input_is_reported_and_processing_goes_on_when_configured_to_reset():
    code, events = _run("reset")
    assert code == 0
    assert sorted((e["topic"], e["stored_offset"], e["log_start"], e["skipped"]) for e in events) == [
        ("inference", 0, 120, 120), ("labels", 0, 120, 120)]


def test_skipped_input_stops_the_service_by_default():
    code, events = _run("fail")
    assert code == 1 and not events
