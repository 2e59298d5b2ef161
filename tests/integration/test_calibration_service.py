"""A calibration that cannot be met does not take the service (or the model's other detectors) down: on the
real broker and Redis, the refusal is published once per partition as a critical data-quality event, the
detector runs on its configured parameters and the change is still detected."""

from __future__ import annotations

import dataclasses

from stream.config import DetectorConfig
from stream.tools.workload import Workload, events, produce
from tests.integration.helpers import producer, read_topic, run_until


def test_a_refused_calibration_falls_back_and_is_reported(cfg):
    # a budget far too small for this target: calibration refuses (deterministically) on every partition
    det = DetectorConfig("DDM", {}, false_alarm_every=20_000, calibration_window=300,
                         calibration_max_updates=1_000_000)
    dm = dataclasses.replace(cfg.default_model, error_detectors=(det, DetectorConfig("ADWIN", {})))
    c = dataclasses.replace(cfg, default_model=dm)
    w = Workload(n_events=8_000, change_points=(5_000,), seed=52, spacing=0.01)
    produce(producer(c), w, c.topics.inference, c.topics.labels)
    svc, _ = run_until(c, sum(1 for _ in events(w)))
    refusals = [e for e in read_topic(c, c.topics.data_quality) if e.get("check") == "calibration_refused"]
    # the first calibration is refused once per partition; the fallback's alarm at the change starts a
    # re-calibration on the new concept, refused the same way (the budget) and reported as such
    dq = [e for e in refusals if "recalibration" not in e["calibration"]]
    again = [e for e in refusals if "recalibration" in e["calibration"]]
    parts = {e["partition"] for e in dq}
    assert dq and len(dq) == len(parts), [(e["partition"], e["offset"]) for e in dq]  # once per partition
    assert all(e["calibration"]["recalibration"]["outcome"] == "refused" for e in again)
    assert all(e["ts"] >= w.t0 + 50 for e in again)  # after the change (event 5,000 at 0.01 s spacing)
    assert all(e["severity"] == "critical" and e["detector"] == "DDM" and e["fallback"] == "defaults"
               and "budget" in e["error"] for e in dq)
    drifts = [e for e in read_topic(c, c.topics.drift_events) if e.get("kind") == "concept" and not e.get("warning")]
    assert {e["detector"] for e in drifts} >= {"DDM", "ADWIN"}  # both detectors kept working
    assert any(e["ts"] >= w.t0 + 50 for e in drifts if e["detector"] == "DDM")  # the change, uncalibrated
