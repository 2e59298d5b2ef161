"""``online_model.publish_predictions = "off"``: no message on online-predictions, and nothing else changes
(the online model still predicts, learns, is compared with the served model and swaps)."""

from __future__ import annotations

import dataclasses
import random

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.config import ConfigError, load_config
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from tests.fakes import MemoryPublisher


def _records(n=6000, change=3000, seed=5):
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        x = rng.random()
        truth = int(x > 0.5) if i < change else int(x <= 0.5)  # the concept flips: the online model adapts
        v = {"id": f"e{i}", "model": "m", "ts": 100.0 + i, "features": {"x": x, "c": rng.choice("abc")},
             "prediction": int(x > 0.5)}
        lab = {"id": f"e{i}", "model": "m", "ts": 100.5 + i, "label": truth}
        recs += [Record("inference", 0, i, int((100.0 + i) * 1000), None, orjson.dumps(v)),
                 Record("labels", 0, i, int((100.5 + i) * 1000), None, orjson.dumps(lab))]
    return recs


@pytest.mark.parametrize("kind", ["logistic", "river"])  # the batched (compiled) and the per-event path
def test_off_publishes_no_online_prediction_and_changes_nothing_else(kind):
    outs = {}
    for mode in ("event", "off"):
        cfg = load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__ONLINE_MODEL__PUBLISH_PREDICTIONS": mode,
                                 "DRIFTSTREAM_DEFAULT_MODEL__ONLINE_MODEL__KIND": kind})
        cfg = dataclasses.replace(cfg, scope=dataclasses.replace(cfg.scope, enabled=False))
        pub = MemoryPublisher()
        proc = PartitionProcessor(0, cfg, 1, pub, Metrics(CollectorRegistry()))
        recs = _records()
        for k in range(0, len(recs), 200):
            proc.process(recs[k:k + 200])
        outs[mode] = pub.sent
    online = cfg.topics.online_predictions
    assert sum(t == online for t, _ in outs["event"]) == 6000
    assert not any(t == online for t, _ in outs["off"])
    rest = [(t, e) for t, e in outs["event"] if t != online]
    assert rest == outs["off"]
    assert any(e.get("type") in ("model-swap", "challenger-better") or t == cfg.topics.model_updates
               for t, e in rest), "the online model still acts"


def test_an_unknown_mode_is_refused():
    with pytest.raises(ConfigError):
        load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__ONLINE_MODEL__PUBLISH_PREDICTIONS": "batch"})
