"""DataDriftMonitor on synthetic micro-batches."""

from __future__ import annotations

import random

import orjson
import pytest

from stream.config import DataDriftConfig
from stream.outputs import data_drift_event
from stream.datadrift import DataDriftMonitor, Position

CFG = DataDriftConfig(reference_size=300, window_size=200, step=50, alpha=0.001)
TYPES = {"x": "numeric", "c": "categorical"}


def make_events(n: int, shift_at: int | None, seed: int = 1):
    """(features, prediction, score, label) per event; from ``shift_at`` on, x moves by +1 sd and c changes mix."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        shifted = shift_at is not None and i >= shift_at
        x = rng.gauss(1.0 if shifted else 0.0, 1.0)
        c = rng.choices(["a", "b", "c"], [0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2])[0]
        out.append(({"x": round(x, 4), "c": c}, int(rng.random() < 0.3), round(rng.random(), 3), rng.choice("01")))
    return out


def run(mon: DataDriftMonitor, evs, start: int, batch: int, partition: int = 0):
    events = []
    for b in range(start, start + len(evs), batch):
        for i in range(b, min(b + batch, start + len(evs))):
            f, pred, score, label = evs[i - start]
            mon.add_inference(f, TYPES, True, pred, score, Position("inference", i, 1000.0 + i, f"e-{i}"))
            mon.add_label(label, Position("labels", i, 1005.0 + i, f"e-{i}"))
        events += [data_drift_event(f, mon.model, partition) for f in mon.run_tests()]
    return events


def test_no_drift_on_stationary_data():
    mon = DataDriftMonitor("m", "classification", CFG)
    assert run(mon, make_events(3000, None), 0, 137) == []
    assert mon.latest  # tests did run
    assert {k[1] for k in mon.latest} == {"x", "c", "prediction", "score", "label"}


def test_drift_after_a_shift_and_only_on_the_shifted_features():
    mon = DataDriftMonitor("m", "classification", CFG)
    events = run(mon, make_events(3000, 1500), 0, 250)
    signals = {(e["kind"], e["signal"], e["detector"]) for e in events}
    assert signals == {("feature", "x", "KS"), ("feature", "c", "chi2")}
    for e in events:
        assert e["offset"] >= 1500 and e["topic"] == "inference" and e["ts"] == 1000.0 + e["offset"]
        assert e["id"] == f"inference:0:{e['offset']}:drift:{e['kind']}:{e['signal']}:{e['detector']}"
        assert e["type"] == "drift" and e["event_id"] == f"e-{e['offset']}"
        assert e["p_value"] < e["threshold"] == 0.001
        assert e["windows"] == {"reference_size": 300, "current_size": 200}


def test_only_transitions_are_emitted():
    mon = DataDriftMonitor("m", "classification", CFG)
    events = run(mon, make_events(4000, 1500), 0, 100)
    # the shifted window stays drifted for thousands of values, yet each test alarms once
    assert sorted(e["signal"] for e in events) == ["c", "x"]
    sig = next(s for s in mon.signals.values() if s.signal == "x")
    assert sig.in_drift


def test_alarm_again_after_returning_to_no_drift():
    mon = DataDriftMonitor("m", "classification", CFG)
    rng = random.Random(4)
    xs = [rng.gauss(0, 1) for _ in range(700)] + [rng.gauss(3, 1) for _ in range(400)] \
        + [rng.gauss(0, 1) for _ in range(600)] + [rng.gauss(3, 1) for _ in range(400)]
    found = []
    for i, x in enumerate(xs):
        mon.add_inference({"x": x}, {"x": "numeric"}, True, 0, None, Position("inference", i, float(i), f"e-{i}"))
        if i % 64 == 63:
            found += [f.at.offset for f in mon.run_tests() if f.signal == "x"]
    found += [f.at.offset for f in mon.run_tests() if f.signal == "x"]
    assert len(found) == 2 and 700 <= found[0] < 1100 and 1700 <= found[1]


def test_events_do_not_depend_on_batch_boundaries():
    evs = make_events(3000, 1500)
    by_batch = [run(DataDriftMonitor("m", "classification", CFG), evs, 0, b) for b in (1, 77, 500, 3000)]
    assert by_batch[0] and all(b == by_batch[0] for b in by_batch)


def test_state_round_trip_gives_identical_subsequent_events():
    evs = make_events(3000, 1500)
    whole = run(DataDriftMonitor("m", "classification", CFG), evs, 0, 100)
    first = DataDriftMonitor("m", "classification", CFG)
    head = run(first, evs[:1400], 0, 100)
    second = DataDriftMonitor("m", "classification", CFG)
    second.load_state(orjson.loads(orjson.dumps(first.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)))
    tail = run(second, evs[1400:], 1400, 100)
    assert whole and head + tail == whole
    assert orjson.dumps(second.to_state(), option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(
        _final_state(evs), option=orjson.OPT_SERIALIZE_NUMPY)


def _final_state(evs):
    mon = DataDriftMonitor("m", "classification", CFG)
    run(mon, evs, 0, 100)
    return mon.to_state()


def test_invalid_rows_do_not_feed_feature_drift_but_feed_prediction_drift():
    mon = DataDriftMonitor("m", "classification", CFG)
    mon.add_inference({"x": 1.0, "c": "a"}, TYPES, False, 1, 0.5, Position("inference", 0, 0.0, "e-0"))
    mon.run_tests()
    assert {s.signal: s.test.n_seen for s in mon.signals.values()} == {"prediction": 1, "score": 1}


def test_nulls_and_untyped_features_are_skipped_and_features_are_capped():
    mon = DataDriftMonitor("m", "classification", DataDriftConfig(max_features=2))
    mon.add_inference({"a": None, "b": 1.0, "c": "x", "d": 2.0}, {"a": "numeric", "b": "numeric", "c": "categorical",
                      "d": "numeric"}, True, 1, None, Position("inference", 0, 0.0, "e-0"))
    assert [s.signal for s in mon.signals.values() if s.kind == "feature"] == ["b", "c"]


@pytest.mark.parametrize("numeric_test, categorical_test, names", [("psi", "js", {"PSI", "JS"}),
                                                                   ("ks", "chi2", {"KS", "chi2"})])
def test_configured_tests_are_used(numeric_test, categorical_test, names):
    cfg = DataDriftConfig(reference_size=300, window_size=200, step=50, numeric_test=numeric_test,
                          categorical_test=categorical_test, psi_threshold=0.2, js_threshold=0.1)
    events = run(DataDriftMonitor("m", "classification", cfg), make_events(3000, 1500), 0, 200)
    assert {e["detector"] for e in events} == names


def test_regression_uses_numeric_tests_on_prediction_and_label():
    mon = DataDriftMonitor("m", "regression", CFG)
    rng = random.Random(3)
    for i in range(900):
        y = rng.gauss(0 if i < 600 else 4, 1)
        mon.add_inference({}, {}, True, y, None, Position("inference", i, float(i), f"e-{i}"))
        mon.add_label(y, Position("labels", i, float(i), f"e-{i}"))
        mon.add_label("not a number", Position("labels", i, float(i), f"e-{i}"))  # skipped
    found = {(f.kind, f.signal, f.detector) for f in mon.run_tests()}
    assert found == {("prediction", "prediction", "KS"), ("label", "label", "KS")}


def test_disabled_monitor_tracks_nothing():
    mon = DataDriftMonitor("m", "classification", DataDriftConfig(enabled=False))
    mon.add_inference({"x": 1.0}, {"x": "numeric"}, True, 1, 0.3, Position("inference", 0, 0.0, "e-0"))
    mon.add_label(1, Position("labels", 0, 0.0, "e-0"))
    assert mon.run_tests() == [] and mon.signals == {}


@pytest.mark.parametrize("detector", ["ADWIN", "PageHinkley"])
def test_mean_detector_on_numeric_features_is_exact_across_batches_and_restarts(detector):
    import dataclasses

    cfg = dataclasses.replace(CFG, mean_detector=detector)
    evs = make_events(3000, 1500)
    whole = run(DataDriftMonitor("m", "classification", cfg), evs, 0, 100)
    means = [e for e in whole if e["detector"] == detector]
    assert means and all(e["signal"] == "x" and e["kind"] == "feature" for e in means)
    after = [int(e["event_id"][2:]) >= 1500 for e in means]
    # ADWIN (delta 0.002) is quiet before the shift; River's Page-Hinkley defaults also alarm on noise
    assert all(after) if detector == "ADWIN" else any(after)
    assert all(e["id"].endswith(f":drift:feature:x:{detector}") for e in means)
    assert run(DataDriftMonitor("m", "classification", cfg), evs, 0, 7) == whole
    first = DataDriftMonitor("m", "classification", cfg)
    head = run(first, evs[:1400], 0, 100)
    second = DataDriftMonitor("m", "classification", cfg)
    second.load_state(orjson.loads(orjson.dumps(first.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)))
    assert head + run(second, evs[1400:], 1400, 100) == whole
    # off by default
    assert not [e for e in run(DataDriftMonitor("m", "classification", CFG), evs, 0, 100)
                if e["detector"] == detector]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_add_rows_gives_the_buffers_and_signals_of_add_inference_one_by_one(task):
    """The model stage adds a batch's merged rows column by column (``add_rows``); it must leave what the
    rows added one by one leave, and refuse (adding nothing) where a signal would be created."""
    import dataclasses

    rng = random.Random(4)
    cfg = dataclasses.replace(CFG, max_features=3)  # "d" is over the limit: its cache entry is None
    types = {"a": "numeric", "b": "categorical", "c": "numeric", "d": "numeric"}

    def row(i: int, score: bool = True):
        feats = {"a": rng.gauss(0, 1) if rng.random() > 0.1 else None, "b": rng.choice("xyz"),
                 "c": rng.randint(0, 5), "d": 1.0}
        pred = rng.random() if task == "regression" else rng.choice([0, 1, "1"])
        if task == "regression" and rng.random() < 0.1:
            pred = "not a number"
        return (feats, types, True, pred, rng.random() if score else None)

    def state(m):
        return [(k, s.values, [(p.topic, p.offset) for p in s.positions]) for k, s in m.signals.items()]

    one, cols = DataDriftMonitor("m", task, cfg), DataDriftMonitor("m", task, cfg)
    first = [row(i) for i in range(5)]
    at = [Position("inference", i, float(i), f"e{i}") for i in range(5)]
    assert not cols.add_rows(first, at)  # signals to create: one by one
    assert all(not s.values for s in cols.signals.values())
    for m in (one, cols):
        for r, p in zip(first, at):
            m.add_inference(*r, p)
    batch = [row(i) for i in range(5, 400)]
    at = [Position("inference", i, float(i), f"e{i}") for i in range(5, 400)]
    for r, p in zip(batch, at):
        one.add_inference(*r, p)
    assert cols.add_rows(batch, at)
    assert state(cols) == state(one)
    assert list(cols.signals) == list(one.signals)
    # an invalid row, or a new feature: refused, nothing added
    bad = [row(0), (row(1)[0], types, False, 0, None)]
    assert not cols.add_rows(bad, at[:2])
    assert not cols.add_rows([({"new": 1.0}, {"new": "numeric"}, True, 0, 0.5)], at[:1])
    assert state(cols) == state(one)
