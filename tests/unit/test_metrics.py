"""Metrics collected per micro-batch expose exactly what per-message Prometheus updates would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from stream.metrics import BatchHistogram, Metrics

BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in registry.collect() for s in fam.samples if s.name.startswith(name)}


def test_batch_histogram_equals_prometheus_histogram():
    rng = random.Random(3)
    values = [rng.choice([0.0, -2.0, 1.0, 5.0, 5.000001, 86400.0, 1e9]) if rng.random() < 0.3
              else rng.expovariate(1 / 120) for _ in range(5000)]
    ref_reg, reg = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("d_seconds", "doc", ["model"], registry=ref_reg, buckets=(*BUCKETS, float("inf")))
    ours = BatchHistogram("d_seconds", "doc", "model", BUCKETS, reg)
    for i, v in enumerate(values):
        ref.labels("m" if i % 3 else "n").observe(max(v, 0.0))
    for start in range(0, len(values), 700):
        chunk = list(enumerate(values))[start:start + 700]
        ours.observe_many("m", [v for i, v in chunk if i % 3])
        ours.observe_many("n", [v for i, v in chunk if not i % 3])
    got, want = samples(reg, "d_seconds"), samples(ref_reg, "d_seconds")
    want = {k: v for k, v in want.items() if not k[0].endswith("_created")}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert abs(got[k] - v) <= 1e-6 * max(1.0, abs(v)), k
    text = generate_latest(reg).decode()
    assert "# TYPE d_seconds histogram" in text and 'd_seconds_bucket{le="+Inf",model="m"}' in text


def test_message_counts_and_joins_appear_after_flush():
    reg = CollectorRegistry()
    m = Metrics(reg)
    for _ in range(3):
        m.message("inference", 0, "processed")
    m.message("labels", 1, "dead_letter")
    m.joined("fraud", 2.0)
    m.joined("fraud", -1.0)
    assert samples(reg, "driftstream_messages_total") == {}
    m.flush()
    got = samples(reg, "driftstream_messages_total")
    assert got[("driftstream_messages_total", (("outcome", "processed"), ("partition", "0"), ("topic", "inference")))] == 3
    assert got[("driftstream_messages_total", (("outcome", "dead_letter"), ("partition", "1"), ("topic", "labels")))] == 1
    assert samples(reg, "driftstream_join_matched_total")[("driftstream_join_matched_total", (("model", "fraud"),))] == 2
    delay = samples(reg, "driftstream_label_delay_seconds")
    assert delay[("driftstream_label_delay_seconds_count", (("model", "fraud"),))] == 2
    assert delay[("driftstream_label_delay_seconds_sum", (("model", "fraud"),))] == 2.0
    m.flush()  # nothing new: nothing counted twice
    assert samples(reg, "driftstream_messages_total") == got
