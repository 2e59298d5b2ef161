"""Calibrated concept detectors inside the partition processor: a reference that calibration finds too
short is extended up to what it asks for; a refusal falls back (defaults or off) and is reported once."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from stream.config import DetectorConfig, load_config
from stream.detect import ConceptDetectors
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from tests.fakes import MemoryPublisher

CHANGE = 8000


def _records(n=10_000, change=CHANGE, before=0.05, after=0.6, seed=3):
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        wrong = rng.random() < (before if i < change else after)
        v = {"id": f"c{i}", "model": "m", "ts": 100.0 + i, "features": {"amount": 1.0}, "prediction": 1}
        lab = {"id": f"c{i}", "model": "m", "ts": 100.5 + i, "label": 0 if wrong else 1}
        recs += [Record("inference", 0, i, int((100.0 + i) * 1000), None, orjson.dumps(v)),
                 Record("labels", 0, i, int((100.5 + i) * 1000), None, orjson.dumps(lab))]
    return recs


def _run(det: DetectorConfig, recs, batch=250):
    cfg = load_config(None, {})
    spec = dataclasses.replace(cfg.default_model, error_detectors=(det,))
    cfg = dataclasses.replace(cfg, default_model=spec)
    pub = MemoryPublisher()
    proc = PartitionProcessor(0, cfg, 1, pub, Metrics(CollectorRegistry()))
    for k in range(0, len(recs), batch):
        proc.process(recs[k:k + batch])
    return proc, pub


def _concept(pub):
    return [e for t, e in pub.sent if t == "drift-events" and e.get("kind") == "concept"]


def _refusals(pub):
    return [e for t, e in pub.sent if t == "data-quality" and e.get("check") == "calibration_refused"]


def test_a_window_too_short_to_pin_the_rate_is_extended_to_what_calibration_asks_for():
    # the first calibration only: after the change it would calibrate again (tests/unit/test_recalibration.py)
    det = DetectorConfig("PageHinkley", {}, false_alarm_every=2000, calibration_window=300,
                         recalibrate_after_change=False)
    proc, pub = _run(det, _records())
    mon = proc.models["m"].monitor
    cal = mon.calibrations[0]
    # 300 errors at a 5% rate pin the rate to +-57%: calibration asked for more, and got it
    assert cal is not None and "refused" not in cal
    assert cal["target_ert"] == 2000 and 300 < cal["reference_size"] == mon.concept.needs[0] <= CHANGE
    assert mon.detectors[0] is not None and getattr(mon.detectors[0], cal["param"]) == cal["value"]
    concept = _concept(pub)
    assert concept and all(e["calibration"] == cal for e in concept)
    assert min(int(e["event_id"][1:]) for e in concept) >= CHANGE
    assert not _refusals(pub)


def test_the_extended_reference_does_not_depend_on_batch_sizes():
    det = DetectorConfig("PageHinkley", {}, false_alarm_every=2000, calibration_window=300)
    recs = _records()
    _, a = _run(det, recs, batch=250)
    _, b = _run(det, recs, batch=37)
    assert _concept(a) == _concept(b) and _concept(a)


def test_a_reference_beyond_the_cap_falls_back_to_the_configured_parameters_and_says_so_once():
    det = DetectorConfig("PageHinkley", {}, false_alarm_every=2000, calibration_window=300,
                         calibration_max_window=1000)
    proc, pub = _run(det, _records())
    mon = proc.models["m"].monitor
    (ev,) = _refusals(pub)
    cal = ev["calibration"]
    assert cal["fallback"] == "defaults" and "refused" in cal and cal["reference_size"] == 300
    assert "calibration_max_window" in cal["suggestion"]
    assert ev["severity"] == "critical" and ev["detector"] == "PageHinkley" and ev["fallback"] == "defaults"
    assert ev["topic"] == "labels" and ev["offset"] == 299
    # the detector runs on River's defaults (nothing configured, its alarms carry the refusal) and still
    # catches the change; the change (0.05 -> 0.6) brings the rate where 300 events pin it: the fallback's
    # alarm starts a re-calibration, which succeeds (before, a refused detector kept its fallback for good)
    concept = _concept(pub)
    first = min(concept, key=lambda e: int(e["event_id"][1:]))
    assert int(first["event_id"][1:]) >= CHANGE and first["calibration"] == cal
    now = mon.calibrations[0]
    assert "refused" not in now and now["recalibration"]["outcome"] == "recalibrated"
    assert now["recalibration"]["previous"]["reference_rate"] == cal["reference_rate"]
    assert mon.detectors[0].threshold == now["value"]
    assert proc.metrics.registry.get_sample_value(
        "driftstream_data_quality_issues_total", {"model": "m", "check": "calibration_refused"}) == 1


def test_a_refusal_with_fallback_off_turns_the_detector_off():
    det = DetectorConfig("PageHinkley", {}, false_alarm_every=2000, calibration_window=300,
                         calibration_max_window=1000, on_calibration_error="off")
    proc, pub = _run(det, _records())
    mon = proc.models["m"].monitor
    assert mon.detectors[0] is None and mon.calibrations[0]["fallback"] == "off"
    assert not _concept(pub) and len(_refusals(pub)) == 1
    assert mon.concept.buffers[0] == []  # nothing is collected any more


def test_a_detector_that_cannot_meet_the_law_falls_back_without_stopping_the_others():
    # FHDDM at a 2% error rate with a false alarm every 5,000 events: its window mean moves in steps too
    # coarse for any confidence level to give the law
    rng = np.random.default_rng(1)
    errors = (rng.random(6000) < 0.02).astype(np.float64)
    cds = ConceptDetectors((DetectorConfig("FHDDM", {}, false_alarm_every=5000, calibration_window=4000),
                            DetectorConfig("ADWIN", {})))
    cds.update_many(errors[:1500])
    alarms = cds.update_many(errors[1500:])
    cal = cds.calibrations[0]
    assert "refused" in cal and cal["fallback"] == "defaults" and "DDM or PageHinkley" in cal["suggestion"]
    (refused,) = cds.refusals
    assert refused.detector == "FHDDM" and refused.index == 2499 and cds.detectors[0] is not None
    assert cds.detectors[1] is not None and cds.buffers[0] == []  # ADWIN was never calibrated: it runs throughout
    assert all(i >= 2500 for i, name, _, _ in alarms if name == "FHDDM")


def test_a_calibration_over_its_work_budget_is_refused_the_same_way_every_time():
    rng = np.random.default_rng(2)
    errors = (rng.random(3000) < 0.1).astype(np.float64)
    cfg = (DetectorConfig("DDM", {}, false_alarm_every=10_000, calibration_window=2000,
                          calibration_max_updates=5_000_000),)
    results = []
    for _ in range(2):
        cds = ConceptDetectors(cfg)
        cds.update_many(errors)
        results.append(cds.calibrations[0])
    assert results[0] == results[1] and results[0]["fallback"] == "defaults"
    assert "budget of 5,000,000" in results[0]["refused"]


def test_state_taken_while_collecting_an_extended_reference_resumes_exactly():
    rng = np.random.default_rng(9)
    errors = np.concatenate([(rng.random(9000) < 0.05), (rng.random(1500) < 0.5)]).astype(np.float64)
    cfg = (DetectorConfig("PageHinkley", {}, false_alarm_every=2000, calibration_window=300),)

    def shifted(alarms, by):
        return [(i + by, *rest) for i, *rest in alarms]

    whole = ConceptDetectors(cfg)
    expect = whole.update_many(errors[:1000]) + shifted(whole.update_many(errors[1000:]), 1000)
    first = ConceptDetectors(cfg)
    got = first.update_many(errors[:1000])
    assert first.detectors[0] is None and first.needs[0] > 1000  # still collecting, past the window
    resumed = ConceptDetectors(cfg)
    resumed.load_state(orjson.loads(orjson.dumps(first.to_state())))
    got += shifted(resumed.update_many(errors[1000:]), 1000)
    assert got == expect and any(i >= 9000 for i, *_ in got)
    assert orjson.dumps(resumed.to_state()) == orjson.dumps(whole.to_state())
