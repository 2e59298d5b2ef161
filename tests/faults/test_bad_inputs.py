"""10,000 generated bad inputs mixed into good traffic: each lands in ``dead-letter`` with the reason it
deserves (matched by source topic/partition/offset), the results for the good events equal a clean run of
the good traffic alone, and ``driftstream_messages_total`` adds up exactly."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any

import orjson

from stream.config import DataDriftConfig, FeatureSpec, ModelSpec
from stream.topics import admin_client, ensure_topics
from stream.tools.workload import Workload, events, produce
from tests.faults.harness import compare, read_exact, report
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, run_until

N_BAD = 10_000
SEED = 7301
MAX_BYTES = 4096
TTL = 20.0  # event-time seconds; labels without a prediction expire (to dead-letter) once this far behind

FRAUD = ModelSpec(
    features={
        "amount": FeatureSpec("numeric", nullable=False, min=0),
        "age": FeatureSpec("numeric", nullable=False, min=0, max=130),
        "country": FeatureSpec("categorical", categories=("DE", "FR", "NL", "ES", "IT", "PL")),
        "channel": FeatureSpec("categorical", categories=("web", "app", "pos")),
    },
    # small windows so that the data-drift tests run (and alarm) within the short stream
    data_drift=DataDriftConfig(enabled=True, reference_size=100, window_size=60, step=10),
)


def _config(stack):
    c = fresh_config(stack, max_idle_wait_seconds=60.0, max_message_bytes=MAX_BYTES)
    c = dataclasses.replace(c, accept_undeclared_models=False, models={"fraud": FRAUD},
                            join=dataclasses.replace(c.join, ttl_seconds=TTL))
    ensure_topics(admin_client(c), c)
    return c


def bad_inputs(w: Workload, rng: random.Random, n: int) -> list[tuple[str, bytes, bytes | None, int, str]]:
    """``(kind, key, value, kafka_ts_ms, expected reason)``, kind ``inference`` or ``labels``.

    Kafka timestamps fall inside the good stream's event time (so bad messages are interleaved with good
    ones in the deterministic merge); duplicates come after their original; labels without a prediction
    carry the stream's first event time so they never move the join's watermark."""
    good = [(k, ts, ev) for k, ts, ev in events(w)]
    inferences = [(ts, ev) for k, ts, ev in good if k == "inference"]
    labels = [(ts, ev) for k, ts, ev in good if k == "labels"]
    t_end = w.t0 + w.n_events * w.spacing
    features = {"amount": 12.5, "age": 30, "country": "DE", "channel": "web"}

    def inference(i: int) -> dict[str, Any]:
        return {"id": f"bad-{i}", "model": "fraud", "ts": w.t0 + 1, "features": dict(features), "prediction": 1,
                "score": 0.4}

    def label(i: int) -> dict[str, Any]:
        return {"id": f"bad-{i}", "model": "fraud", "ts": w.t0 + 1, "label": 0}

    out = []
    for i in range(n):
        kind = rng.choice(("inference", "labels"))
        key = f"bad-{i}".encode()
        ts = rng.uniform(w.t0, t_end)
        obj = inference(i) if kind == "inference" else label(i)
        case = rng.randrange(14)
        if case == 0:
            value, reason = rng.choice([b"{", b"not json", b'{"id": "x",}', rng.randbytes(rng.randint(1, 60)) + b"\xff",
                                        orjson.dumps(obj)[:-3]]), "invalid_json"
        elif case == 1:  # NaN written as raw text
            field = "score" if kind == "inference" else "label"
            value = orjson.dumps(obj).replace(orjson.dumps({field: obj[field]})[1:-1], f'"{field}":NaN'.encode())
            assert b"NaN" in value
            reason = "invalid_json"
        elif case == 2:
            value, reason = orjson.dumps(rng.choice([[1, 2], 3, "text", None, True, [obj]])), "not_an_object"
        elif case == 3:  # a huge string: the whole message is over processing.max_message_bytes
            obj["id" if rng.random() < 0.5 else "model"] = "x" * rng.randint(MAX_BYTES, 4 * MAX_BYTES)
            value, reason = orjson.dumps(obj), "oversized"
        elif case == 4:
            value, reason = None, "empty_value"
        elif case == 5:  # a required key missing
            field = rng.choice(["id", "model", "ts", "features", "prediction"] if kind == "inference"
                               else ["id", "model", "ts", "label"])
            del obj[field]
            value, reason = orjson.dumps(obj), f"missing_{field}"
        elif case == 6:  # wrong types
            field, bad = rng.choice(
                [("id", 17), ("id", ""), ("model", 3), ("model", "has space"), ("ts", "yesterday"), ("ts", True),
                 ("ts", -5)]
                + ([("features", [1, 2]), ("features", {"a": [1]}), ("prediction", {"p": 1}), ("prediction", None),
                    ("score", "high")] if kind == "inference" else [("label", [0]), ("label", None), ("label", {})])
            )
            obj[field] = bad
            value, reason = orjson.dumps(obj), f"bad_{field}"
        elif case == 7:  # huge values
            field, bad = rng.choice(
                [("ts", 10**30), ("ts", 1.5e300), ("id", "i" * 300)]
                + ([("features", {"amount": "s" * 2000}), ("prediction", "p" * 200), ("score", 10**400)]
                   if kind == "inference" else [("label", "l" * 200)])
            )
            obj[field] = bad
            # json, not orjson: it writes integers beyond 64 bits (orjson reads 10**30 as 1e30, a bad ts)
            value, reason = json.dumps(obj).encode(), f"bad_{field}"
            if bad == 10**400:  # infinite as a double: orjson refuses the document
                reason = "invalid_json"
        elif case in (8, 9):  # a model that is not declared (accept_undeclared_models = false)
            obj["model"] = f"other-{rng.randrange(50)}"
            value, reason = orjson.dumps(obj), "unknown_model"
        elif case == 10:  # a second prediction with the id of a good one, after it
            ots, ev = rng.choice(inferences[:-1])
            kind, key, ts = "inference", ev["id"].encode(), ots + rng.uniform(0.1, 3.0)
            dup = dict(ev, prediction=1 - ev["prediction"], features=dict(ev["features"], amount=999.0))
            value, reason = orjson.dumps(dup), "duplicate_id"
        elif case == 11:  # a second label for a good event, after the first
            lts, ev = rng.choice(labels)
            kind, key, ts = "labels", ev["id"].encode(), lts + rng.uniform(0.05, 3.0)
            value, reason = orjson.dumps(dict(ev, label=1 - ev["label"])), "duplicate_label"
        else:  # cases 12, 13: a label whose prediction never comes
            kind = "labels"
            obj = label(i)
            obj["ts"] = w.t0
            value, reason = orjson.dumps(obj), "label_without_prediction"
        out.append((kind, key, value, int(ts * 1000), reason))
    return out


def _produce_mixed(cfg, w: Workload, bad) -> tuple[int, dict[tuple[str, int, int], str]]:
    """Good and bad messages in Kafka-timestamp order; returns (count, {(topic, partition, offset): reason})."""
    topic = {"inference": cfg.topics.inference, "labels": cfg.topics.labels}
    msgs = [(int(ts * 1000), kind, ev["id"].encode(), orjson.dumps(ev), None) for kind, ts, ev in events(w)]
    msgs += [(ts_ms, kind, key, value, reason) for kind, key, value, ts_ms, reason in bad]
    msgs.sort(key=lambda m: m[0])
    p = producer(cfg)
    where: dict[tuple[str, int, int], str] = {}
    failures: list[str] = []

    def delivered(reason):
        def cb(err, msg):
            if err is not None:
                failures.append(str(err))
            elif reason is not None:
                where[(msg.topic(), msg.partition(), msg.offset())] = reason
        return cb

    for ts_ms, kind, key, value, reason in msgs:
        while True:
            try:
                p.produce(topic[kind], key=key, value=value, timestamp=ts_ms, on_delivery=delivered(reason))
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(60) == 0 and not failures, failures[:3]
    assert len(where) == len(bad)
    return len(msgs), where


def _good_results(cfg) -> dict[tuple, dict]:
    """Drift events and online predictions keyed by what they are about, minus input positions."""
    out = {}
    for name in ("drift_events", "online_predictions"):
        for ev in read_exact(cfg, getattr(cfg.topics, name)):
            key = (ev["type"], ev["event_id"], ev.get("kind"), ev.get("signal"), ev.get("detector"))
            assert key not in out, f"two results for {key}"
            out[key] = {k: v for k, v in ev.items() if k not in ("id", "offset", "topic", "prediction_offset")}
    return out


def _outcomes(registry) -> dict[str, float]:
    counts: dict[str, float] = {}
    for m in registry.collect():
        for s in m.samples:
            if s.name == "driftstream_messages_total":
                counts[s.labels["outcome"]] = counts.get(s.labels["outcome"], 0.0) + s.value
    return counts


def test_ten_thousand_bad_inputs_are_dead_lettered_and_good_results_unchanged(stack):
    started = time.monotonic()
    w = Workload(n_events=3_000, change_points=(1_500,), feature_shift_at=(1_500,), seed=71, label_delay=4.0)
    bad = bad_inputs(w, random.Random(SEED), N_BAD)

    clean = _config(stack)
    n_good = produce(producer(clean), w, clean.topics.inference, clean.topics.labels)
    run_until(clean, n_good, timeout=120)
    expected = _good_results(clean)
    assert any(k[0] == "drift" for k in expected)

    mixed = _config(stack)
    total, where = _produce_mixed(mixed, w, bad)
    assert total == n_good + N_BAD
    _, registry = run_until(mixed, total, timeout=180)

    dead = read_exact(mixed, mixed.topics.dead_letter)
    got_reasons = {}
    for d in dead:
        src = (d["source"]["topic"], d["source"]["partition"], d["source"]["offset"])
        assert src not in got_reasons, f"{src} dead-lettered twice"
        assert d["error"], d
        got_reasons[src] = d["reason"]
    missing = sorted(set(where) - set(got_reasons))
    unexpected = sorted(set(got_reasons) - set(where))   # a good message dead-lettered
    wrong = sorted((src, where[src], got_reasons[src]) for src in set(where) & set(got_reasons)
                   if where[src] != got_reasons[src])

    cmp = compare(expected, _good_results(mixed))
    outcomes = _outcomes(registry)
    ghosts = sum(1 for *_, r in bad if r == "label_without_prediction")  # counted processed, dead-lettered on expiry
    line = report("bad-inputs", N_BAD, cmp, started, bad_inputs=N_BAD, dead_lettered=len(dead),
                  bad_not_dead_lettered=len(missing), good_dead_lettered=len(unexpected), wrong_reason=len(wrong),
                  outcomes=orjson.dumps(outcomes).decode(),
                  reasons=orjson.dumps(sorted({r for *_, r in bad})).decode())
    assert not missing, f"{line}\n  bad inputs not in dead-letter (first 5): {missing[:5]}"
    assert not unexpected, f"{line}\n  good inputs dead-lettered (first 5): {unexpected[:5]}"
    assert not wrong, f"{line}\n  (source, expected reason, got) first 5: {wrong[:5]}"
    assert outcomes == {"processed": n_good + ghosts, "dead_letter": N_BAD - ghosts}, line
    assert sum(outcomes.values()) == total, line
    assert cmp.compared > 0 and cmp.ok, line
