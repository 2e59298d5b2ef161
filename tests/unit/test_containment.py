"""Issue 20: an exception inside one model's component (online model, concept detectors, data drift, data
quality, policy, challenger) never leaves the processing loop: that component is disabled for that model with
a critical data-quality event and a metric, the other models go on, and the state stays consistent."""

from __future__ import annotations

import dataclasses
import random

import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.events import Record
from stream.metrics import Metrics
from stream.model import COMPONENTS
from stream.partition import PartitionProcessor


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, topic, key, event):
        self.sent.append((topic, orjson.loads(orjson.dumps(event))))

    def dead_letter(self, topic, record, reason, detail):
        self.sent.append((topic, {"type": "dead-letter", "reason": reason}))


class Boom(RuntimeError):
    pass


def _cfg():
    cfg = load_config(None, {})
    dm = cfg.default_model
    dm = dataclasses.replace(dm, data_drift=dataclasses.replace(dm.data_drift, enabled=True))
    return dataclasses.replace(cfg, default_model=dm, accept_undeclared_models=True)


def _records(n: int, models=("a", "b"), seed=3):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        m = models[i % len(models)]
        x = rng.random()
        y = int(x + (0.5 if i > n // 2 else 0.0) > 0.7)
        v = {"id": f"e{i}", "model": m, "ts": 100.0 + i, "features": {"x": x, "c": rng.choice("pq")},
             "prediction": int(x > 0.7), "score": x}
        out.append(Record("inference", 0, i, int((100.0 + i) * 1000), None, orjson.dumps(v)))
        lab = {"id": f"e{i}", "model": m, "ts": 100.5 + i, "label": y}
        out.append(Record("labels", 0, i, int((100.5 + i) * 1000), None, orjson.dumps(lab)))
    return out


def _break(proc: PartitionProcessor, model: str, component: str) -> None:
    """Make ``component`` of ``model`` raise from its next call on."""
    mp = proc.models[model]

    def boom(*a, **k):
        raise Boom(f"{component} is broken")

    if component == "online_model":
        mp.monitor.online.learn_one = boom
        mp.monitor.online.predict_one = boom
        mp.monitor.online.replay_ops = boom  # the compiled model's per-batch replay (ModelMonitor.settle_online)
    elif component == "concept_detectors":
        mp.monitor.run_detectors = boom
    elif component == "data_drift":
        mp.data_drift.run_tests = boom
    elif component == "data_quality":
        mp.quality.check_many = boom
    elif component == "policy":
        mp.policy.decide_at = boom
    elif component == "challenger":
        mp.challenger.add = boom
        mp.challenger.add_many = boom  # the pairs of a batch go in by runs (ModelPipeline._decide)


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_failing_component_is_disabled_for_its_model_only(component):
    cfg = _cfg()
    pub = Publisher()
    metrics = Metrics(CollectorRegistry())
    proc = PartitionProcessor(0, cfg, 1, pub, metrics)
    recs = _records(3000)
    proc.process(recs[:400])  # both models exist now
    _break(proc, "a", component)
    for k in range(400, len(recs), 256):
        proc.process(recs[k:k + 256])  # nothing raises out of the loop
    failed = [e for t, e in pub.sent if e.get("check") == "component_failed"]
    assert [(e["model"], e["component"], e["severity"]) for e in failed] == [("a", component, "critical")]
    assert "Boom" in failed[0]["error"]
    assert metrics.component_failures.labels("a", component)._value.get() == 1
    assert proc.models["a"].disabled == {component} and not proc.models["b"].disabled
    # the other model went on: it kept joining up to the end
    assert proc.models["b"].monitor.joined == 1500
    # the state stays consistent: it saves, loads, keeps the component off and continues
    payload = proc.to_payload()
    again = PartitionProcessor(0, cfg, 2, Publisher(), Metrics(CollectorRegistry()))
    again.load_payload(payload)
    assert again.models["a"].disabled == {component}
    if component == "online_model":
        assert again.models["a"].monitor.online is None
    again.process(_records(3100)[6000:])
    assert again.to_payload()


def test_an_online_model_that_fails_while_learning_keeps_the_served_errors_counted():
    cfg = _cfg()
    proc = PartitionProcessor(0, cfg, 1, Publisher(), Metrics(CollectorRegistry()))
    recs = _records(1000, models=("a",))
    proc.process(recs[:200])
    mon = proc.models["a"].monitor
    mon.online.learn_one = lambda *a, **k: (_ for _ in ()).throw(Boom("no"))
    mon.online.replay_ops = mon.online.learn_one  # the compiled model learns in its per-batch replay
    proc.process(recs[200:])
    assert mon.joined == 1000 and mon.online is None and proc.models["a"].disabled == {"online_model"}
