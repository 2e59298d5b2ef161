"""A partition with the model stage on: its summaries carry what the stage needs, its own decisions stay
unpublished, and the same records give the same summary items whatever the micro-batch size."""

from __future__ import annotations

import dataclasses
import random

import orjson
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from stream.scope.summary import undelta
from tests.fakes import MemoryPublisher


def _records(n=3000, change=1500, seed=4):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        wrong = rng.random() < (0.05 if i < change else 0.6)
        v = {"id": f"e{i}", "model": "m", "ts": 100.0 + i, "features": {"x": float(i % 7)}, "prediction": 1}
        lab = {"id": f"e{i}", "model": "m", "ts": 100.5 + i, "label": 0 if wrong else 1}
        out += [Record("inference", 0, i, int((100.0 + i) * 1000), None, orjson.dumps(v)),
                Record("labels", 0, i, int((100.5 + i) * 1000), None, orjson.dumps(lab))]
    return out


def _run(data_drift: bool, batch: int):
    cfg = load_config(None, {})
    dm = dataclasses.replace(cfg.default_model,
                             data_drift=dataclasses.replace(cfg.default_model.data_drift, enabled=data_drift))
    cfg = dataclasses.replace(cfg, default_model=dm)
    pub, sums = MemoryPublisher(), []
    proc = PartitionProcessor(0, cfg, 1, pub, Metrics(CollectorRegistry()), sums.append)
    recs = _records()
    for k in range(0, len(recs), batch):
        proc.process(recs[k:k + batch])
    return pub, sums


def _items(sums):
    outcomes = [(o.topic, o.offset, o.served) for s in sums for o in s.outcomes]
    rows = [off for s in sums for off in undelta(s.rows.offsets)]
    labels = [off for s in sums for off in undelta(s.labels.offsets)]
    evidence = [e.id for s in sums for e in s.evidence]
    return outcomes, rows, labels, evidence


def test_summaries_carry_every_outcome_and_the_partition_publishes_no_decision():
    pub, sums = _run(data_drift=False, batch=256)
    outcomes, rows, labels, evidence = _items(sums)
    assert len(outcomes) == 3000 and sum(s for _, _, s in outcomes) > 500
    assert rows == [] and labels == []  # data drift off: the stage needs only the outcomes
    topics = {t for t, _ in pub.sent}
    assert "retrain-events" not in topics
    assert not [e for t, e in pub.sent if t == "model-updates" and e["type"] == "challenger-better"]
    drifts = [e["id"] for t, e in pub.sent if t == "drift-events"]
    assert drifts and evidence == drifts  # the partition's own alarms: published, and evidence for the stage
    # watermarks only move forward and stay below what comes later
    wms = [s.watermark for s in sums if s.watermark is not None]
    assert wms == sorted(wms)


def test_summary_items_do_not_depend_on_the_batch_size():
    _, a = _run(data_drift=True, batch=256)
    _, b = _run(data_drift=True, batch=37)
    ia, ib = _items(a), _items(b)
    assert ia == ib and ia[1] and ia[2]  # with data drift on, rows and labels too
