"""Data quality and feature / prediction / label drift end to end, on workloads with known ground truth."""

from __future__ import annotations

import dataclasses
import random
import signal
import time

import orjson

from stream.config import DataDriftConfig
from stream.topics import admin_client, ensure_topics
from stream.tools.workload import Workload, events, produce
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, read_topic, run_until


def _config(stack, partitions: int, **drift):
    c = fresh_config(stack, max_idle_wait_seconds=60.0)
    spec = dataclasses.replace(c.default_model, data_drift=DataDriftConfig(**drift))
    c = dataclasses.replace(c, topics=dataclasses.replace(c.topics, partitions=partitions), default_model=spec)
    ensure_topics(admin_client(c), c)
    return c


def test_feature_shift_gives_feature_drift_on_amount_after_it_and_no_concept_drift(stack):
    cfg = _config(stack, 2, reference_size=500, window_size=300, step=100, alpha=1e-4)
    w = Workload(n_events=8_000, change_points=(), feature_shift_at=(4_000,), seed=5, noise=0.05)
    produce(producer(cfg), w, cfg.topics.inference, cfg.topics.labels)
    run_until(cfg, sum(1 for _ in events(w)))
    drifts = read_topic(cfg, cfg.topics.drift_events)

    assert not [d for d in drifts if d["kind"] == "concept"], "a pure feature shift raised concept drift"
    feature = [d for d in drifts if d["kind"] == "feature"]
    amount = [d for d in feature if d["signal"] == "amount"]
    assert {d["partition"] for d in amount} == {0, 1}, "feature drift on amount missed in a partition"
    assert min(int(d["event_id"].split("-")[1]) for d in amount) >= 4_000, "feature drift before the shift"
    # transition-only: ~20 tests per partition flag the shift, a new event needs a no-drift result in between
    assert all(sum(d["partition"] == p for d in amount) <= 3 for p in (0, 1)), amount
    assert {d["signal"] for d in feature} == {"amount"}, f"false feature drift: {feature}"
    for d in amount:
        assert d["detector"] == "KS" and d["topic"] == cfg.topics.inference and d["model"] == "fraud"
        assert d["id"] == f"{d['topic']}:{d['partition']}:{d['offset']}:drift:feature:amount:KS"
        assert d["p_value"] < d["threshold"] == 1e-4
        assert d["windows"] == {"reference_size": 500, "current_size": 300}
    # the served model reacts to amount, so its predictions drift too; the labels follow the same concept
    assert all(int(d["event_id"].split("-")[1]) >= 4_000 for d in drifts)

    quality = read_topic(cfg, cfg.topics.data_quality, idle=2.0)
    assert sorted((q["check"], q["partition"]) for q in quality) == [("model_undeclared", 0), ("model_undeclared", 1)]
    for q in quality:
        assert q["evidence"]["inferred_types"] == {"amount": "numeric", "age": "numeric", "country": "categorical",
                                                   "channel": "categorical"}


def test_broken_upstream_gives_the_right_data_quality_events(stack):
    cfg = _config(stack, 1, enabled=False)
    rng = random.Random(9)
    p = producer(cfg)
    n, t0 = 3_000, 1_700_000_000.0
    for i in range(n):
        features = {"amount": round(rng.uniform(1, 100), 2), "channel": "web", "country": rng.choice("ABC")}
        if i < 1_000:
            features["age"] = rng.randint(18, 80)  # from event 1000 on the upstream stops sending age
        ev = {"id": f"b-{i}", "model": "scorer", "ts": t0 + i, "features": features, "prediction": 0}
        p.produce(cfg.topics.inference, key=ev["id"], value=orjson.dumps(ev), timestamp=int((t0 + i) * 1000))
    p.flush(30)
    run_until(cfg, n)
    quality = read_topic(cfg, cfg.topics.data_quality)

    got = sorted((q["check"], q["feature"], q["offset"], q["evidence"].get("suppressed_since_last")) for q in quality)
    assert got == [
        ("constant_feature", "channel", 499, 0),       # the 500th equal value (constant_window = 500)
        ("missing_feature", "age", 1_000, 0),          # first missing value
        ("missing_feature", "age", 2_000, 999),        # rate limit: one per 1000 events, the rest counted
        ("model_undeclared", "*", 0, 0),
    ]
    for q in quality:
        assert q["id"] == f"{cfg.topics.inference}:0:{q['offset']}:dq:{q['check']}:{q['feature']}"
        assert q["type"] == "data-quality" and q["model"] == "scorer" and q["ts"] == t0 + q["offset"]
    assert read_topic(cfg, cfg.topics.drift_events, idle=1.0) == []


def test_sigkill_with_data_drift_and_quality_gives_same_outputs_and_state_as_clean_run(stack, redis_client, tmp_path):
    """Crash equivalence with the data-drift tests on: their events must not depend on batch boundaries or
    on where a checkpoint fell, and their state must round-trip through the checkpoint payload."""
    from tests.integration.test_engine import _caught_up, _end_offsets, _final_states, _outputs, _sibling, \
        _spawn, _write_toml

    clean = _config(stack, 2, reference_size=300, window_size=200, step=50)
    w = Workload(n_events=8_000, change_points=(), feature_shift_at=(4_000,), seed=13, missing_labels=0.02,
                 label_delay=4.0)
    total = produce(producer(clean), w, clean.topics.inference, clean.topics.labels)
    run_until(clean, total, timeout=120)
    expected = _outputs(clean)
    expected_states = _final_states(clean, redis_client)
    assert any(e.get("kind") == "feature" for e in expected.values())
    assert any(e.get("check") == "model_undeclared" for e in expected.values())

    crash = _sibling(clean, clean, checkpoint_every_messages=300, checkpoint_every_seconds=0.3, batch_size=170)
    toml = _write_toml(tmp_path / "crash.toml", crash)
    toml.write_text(toml.read_text().replace("[processing]", f"partitions = {crash.topics.partitions}\n[processing]")
                    + "[default_model.data_drift]\nreference_size = 300\nwindow_size = 200\nstep = 50\n"
                      "enabled = true\n")
    log = tmp_path / "service.log"
    ends = _end_offsets(crash)
    rng = random.Random(77)
    for _ in range(4):
        proc = _spawn(toml, log)
        time.sleep(rng.uniform(1.5, 3.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if _caught_up(crash, redis_client, ends):
            break
    assigned_before = log.read_text().count("assigned partitions")
    proc = _spawn(toml, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        log.read_text().count("assigned partitions") == assigned_before or not _caught_up(crash, redis_client, ends)
    ):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()[-3000:]
    got = _outputs(crash)
    assert set(got) == set(expected), f"lost {len(set(expected) - set(got))}, extra {len(set(got) - set(expected))}"
    assert got == expected
    assert _final_states(crash, redis_client) == expected_states
