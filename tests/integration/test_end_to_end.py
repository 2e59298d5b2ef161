"""The first end-to-end path against the real broker and Redis."""

from __future__ import annotations

import orjson

from stream.tools.workload import Workload, events, produce
from tests.integration.helpers import producer, read_topic, run_until


def _n_messages(w: Workload) -> int:
    return sum(1 for _ in events(w))


def test_abrupt_error_rise_gives_drift_after_change_and_none_before(cfg):
    w = Workload(n_events=16_000, change_points=(8_000,), seed=3, noise=0.05)
    produce(producer(cfg), w, cfg.topics.inference, cfg.topics.labels)
    svc, registry = run_until(cfg, _n_messages(w))
    drifts = read_topic(cfg, cfg.topics.drift_events)
    assert drifts, "no drift event after an abrupt rise in error rate"
    idx = [int(d["event_id"].split("-")[1]) for d in drifts]
    assert min(idx) >= 8_000, f"drift event before the change: {sorted(idx)[:5]}"
    # every partition carries data after the change, and ADWIN flags it in each
    assert {d["partition"] for d in drifts if d["detector"] == "ADWIN"} == set(range(cfg.topics.partitions))
    for d in drifts:
        assert d["type"] == "drift" and d["kind"] == "concept" and d["model"] == "fraud"
        assert d["id"] == f"{d['topic']}:{d['partition']}:{d['offset']}:drift:{d['detector']}"
    # the online challenger published a prediction for every inference event
    online = read_topic(cfg, cfg.topics.online_predictions, idle=2.0)
    assert len({o["id"] for o in online}) == w.n_events


def test_poison_messages_go_to_dead_letter_and_good_events_flow(cfg):
    w = Workload(n_events=4_000, change_points=(), seed=5)
    p = producer(cfg)
    poison = [
        (cfg.topics.inference, b"this is not json"),
        (cfg.topics.inference, orjson.dumps({"id": "x1", "model": "fraud", "ts": 1.0, "features": {}})),  # no prediction
        (cfg.topics.inference, orjson.dumps({"id": "x2", "model": "fraud", "ts": "yesterday", "features": {},
                                             "prediction": 1})),
        (cfg.topics.labels, orjson.dumps([1, 2, 3])),
        (cfg.topics.labels, b"\xff\xfe\x00binary"),
    ]
    for topic, value in poison:
        p.produce(topic, key=b"poison", value=value, timestamp=int(w.t0 * 1000))
    p.flush(10)
    produce(p, w, cfg.topics.inference, cfg.topics.labels)
    total = sum(1 for _ in events(w)) + len(poison)
    svc, registry = run_until(cfg, total)
    dead = read_topic(cfg, cfg.topics.dead_letter)
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == sorted(["invalid_json", "missing_prediction", "bad_ts", "not_an_object", "invalid_json"])
    for d in dead:
        assert d["source"]["topic"] in (cfg.topics.inference, cfg.topics.labels)
        assert d["error"]
        assert d["value"] is not None or d["value_base64"] is not None
    assert any(d["value"] == "this is not json" for d in dead)
    # good events still flowed: every good inference event got its online prediction
    online = read_topic(cfg, cfg.topics.online_predictions, idle=2.0)
    assert len({o["event_id"] for o in online}) == w.n_events
    counted = {s.labels["outcome"]: 0.0 for m in registry.collect() for s in m.samples if s.name == "driftstream_messages_total"}
    for m in registry.collect():
        for s in m.samples:
            if s.name == "driftstream_messages_total":
                counted[s.labels["outcome"]] += s.value
    assert counted == {"processed": total - len(poison), "dead_letter": len(poison)}
