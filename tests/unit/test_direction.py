"""Issue 20: every concept alarm says which way the served error moved, with the error before and after the
estimated change point; an improvement is published as info and does not retrain by default."""

from __future__ import annotations

import dataclasses
import random

import orjson
from prometheus_client import CollectorRegistry

from stream.config import DetectorConfig, load_config
from stream.detect import change_point
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor


def test_change_point_finds_a_shift_in_mean_and_both_levels():
    rng = random.Random(1)
    xs = [float(rng.random() < 0.1) for _ in range(600)] + [float(rng.random() < 0.5) for _ in range(200)]
    k, before, after = change_point(xs)
    assert abs(k - 600) < 30 and abs(before - 0.1) < 0.03 and abs(after - 0.5) < 0.08
    k, before, after = change_point(list(reversed(xs)))
    assert after < before
    assert change_point([1.0, 0.0]) == (0, 0.5, 0.5)


class Pub:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, topic, key, event):
        self.sent.append((topic, orjson.loads(orjson.dumps(event))))

    def dead_letter(self, *a):
        pass


def _stream(error_rates: list[tuple[int, float]], seed: int = 5) -> list[Record]:
    rng = random.Random(seed)
    out, i = [], 0
    for n, p in error_rates:
        for _ in range(n):
            wrong = rng.random() < p
            v = {"id": f"e{i}", "model": "m", "ts": 100.0 + i, "features": {"x": 1.0}, "prediction": 1}
            out.append(Record("inference", 0, i, int((100.0 + i) * 1000), None, orjson.dumps(v)))
            lab = {"id": f"e{i}", "model": "m", "ts": 100.5 + i, "label": 0 if wrong else 1}
            out.append(Record("labels", 0, i, int((100.5 + i) * 1000), None, orjson.dumps(lab)))
            i += 1
    return out


def test_a_degradation_is_critical_and_retrains_an_improvement_is_info_and_does_not():
    cfg = load_config(None, {})
    dm = dataclasses.replace(cfg.default_model, error_detectors=(DetectorConfig("ADWIN", {"delta": 0.002}),),
                             online_model=dataclasses.replace(cfg.default_model.online_model, enabled=False))
    dm = dataclasses.replace(dm, retrain=dataclasses.replace(dm.retrain, cooldown_seconds=10.0))
    cfg = dataclasses.replace(cfg, default_model=dm, accept_undeclared_models=True)
    pub = Pub()
    proc = PartitionProcessor(0, cfg, 1, pub, Metrics(CollectorRegistry()))
    recs = _stream([(3000, 0.05), (3000, 0.45), (3000, 0.05)])
    for k in range(0, len(recs), 256):
        proc.process(recs[k:k + 256])
    drifts = [e for t, e in pub.sent if t == cfg.topics.drift_events and e.get("kind") == "concept"]
    first_up = next(e for e in drifts if e["direction"] == "degradation")
    first_down = next(e for e in drifts if e["direction"] == "improvement")
    assert first_up["severity"] == "critical" and first_up["error_before"] < 0.15 < first_up["error_after"]
    assert first_down["severity"] == "info" and first_down["error_after"] < 0.2 < first_down["error_before"]
    assert first_up["statistic"]["estimate"] == first_up["error_after"]
    cp = first_up["estimated_change_point"]
    assert cp["joined_count"] <= first_up["joined_count"] and abs(cp["joined_count"] - 3000) < 300
    retrains = [e for t, e in pub.sent if t == cfg.topics.retrain_events]
    assert len(retrains) == 1 and retrains[0]["ts"] < 100.0 + 6000  # the degradation only
