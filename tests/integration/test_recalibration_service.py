"""Re-calibration after a change on the real broker and Redis: each partition's calibrated detector, and the
model stage's on the merged stream, calibrate again on the new concept's errors (error rate 0.05 -> 0.6)
and say so on the drift events that follow and in the metric."""

from __future__ import annotations

import dataclasses

from stream.config import DetectorConfig
from stream.tools.workload import Workload, events, produce
from stream.topics import admin_client, ensure_topics
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, read_topic, run_until

PARTITIONS = 2


def _recalibrated(e: dict) -> bool:
    return (e["calibration"] or {}).get("recalibration", {}).get("outcome") == "recalibrated"


def test_both_scopes_recalibrate_on_the_new_concept(stack):
    cfg = fresh_config(stack, scope=True)
    det = DetectorConfig("PageHinkley", {}, false_alarm_every=1000, calibration_window=2000)
    cfg = dataclasses.replace(
        cfg, topics=dataclasses.replace(cfg.topics, partitions=PARTITIONS),
        # every model-scope alarm its own incident, so that those after the swap are published too
        scope=dataclasses.replace(cfg.scope, incident_quiet_seconds=1.0),
        default_model=dataclasses.replace(cfg.default_model, error_detectors=(det,)))
    ensure_topics(admin_client(cfg), cfg)
    w = Workload(n_events=20_000, change_points=(8_000,), seed=61, spacing=0.01)
    produce(producer(cfg), w, cfg.topics.inference, cfg.topics.labels)
    svc, registry = run_until(cfg, sum(1 for _ in events(w)), timeout=240, settle=8.0)
    change_ts = w.t0 + 8_000 * w.spacing

    drifts = [e for e in read_topic(cfg, cfg.topics.drift_events) if e["kind"] == "concept" and not e.get("warning")]
    part = [e for e in drifts if e["scope"] == "partition"]
    model = [e for e in drifts if e["scope"] == "model"]
    for p in range(PARTITIONS):
        mine = [e for e in part if e["partition"] == p]
        recal = [e for e in mine if _recalibrated(e)]
        assert recal, [(e["ts"], e["calibration"]) for e in mine]
        cal = recal[-1]["calibration"]
        assert abs(cal["reference_rate"] - 0.6) < 0.06 and cal["params"] != cal["recalibration"]["previous"]["params"]
        assert min(e["ts"] for e in recal) > change_ts
        assert all("recalibration" not in e["calibration"] for e in mine if e["ts"] < change_ts)
    recal = [e for e in model if _recalibrated(e)]
    assert recal, [(e["ts"], e["calibration"]) for e in model]
    assert abs(recal[-1]["calibration"]["reference_rate"] - 0.6) < 0.06 and min(e["ts"] for e in recal) > change_ts
    assert registry.get_sample_value("driftstream_detector_recalibrations_total", {
        "model": "fraud", "detector": "PageHinkley", "outcome": "recalibrated"}) >= PARTITIONS
