"""Synthetic workloads with known ground truth, for the demo, the tests and the benchmarks.

A fraud-like model: features ``amount`` (log-normal), ``age`` (uniform), ``country`` (categorical) and
``channel`` (categorical). The true concept is a rule on the features; the *served* model implements the
first concept, with ``noise`` of its predictions flipped. At each change point the true concept changes,
so the served model's error rate jumps: that is the concept drift the service must detect. Labels arrive
``label_delay`` seconds (event time) after their prediction.

Everything is a pure function of the seed: the same call produces the same events.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")
CHANNELS = ("web", "app", "pos")


@dataclass(frozen=True)
class Workload:
    n_events: int = 20_000
    change_points: tuple[int, ...] = (10_000,)
    models: tuple[str, ...] = ("fraud",)
    seed: int = 7
    #: event-time spacing between consecutive inference events (seconds)
    spacing: float = 0.01
    label_delay: float = 5.0
    #: fraction of served predictions that are wrong even before drift
    noise: float = 0.05
    #: fraction of events that never get a label
    missing_labels: float = 0.0
    #: event time of the first event; defaults to "now" (whole seconds) so that the broker's time-based
    #: retention never deletes a freshly produced workload
    t0: float = field(default_factory=lambda: float(int(time.time())))
    extra_features: int = 0
    id_prefix: str = "e"
    feature_shift_at: tuple[int, ...] = field(default_factory=tuple)
    #: how many distinct concepts the change points cycle through
    concepts: int = 3


def concept(i: int, x: dict[str, Any], change_points: tuple[int, ...], concepts: int = 3) -> int:
    """The true label of event ``i``; each change point moves to the next of ``concepts`` rules (with
    ``concepts=2`` the third segment is the first concept again: a recurring concept)."""
    k = sum(1 for c in change_points if i >= c) % concepts
    if k == 0:
        return int(x["amount"] > 120.0 or (x["country"] == "NL" and x["age"] < 25))
    if k == 1:
        return int(x["amount"] < 40.0 or x["channel"] == "app")
    return int(x["age"] > 60 or x["country"] in ("ES", "IT"))


def events(w: Workload) -> Iterator[tuple[str, float, dict[str, Any]]]:
    """Yield ``(kind, ts, event)`` in event-time order, kind ``inference`` or ``labels``."""
    rng = random.Random(w.seed)
    pending: list[tuple[float, dict[str, Any]]] = []  # labels, in ts order (constant delay keeps order)
    head = 0
    for i in range(w.n_events):
        ts = w.t0 + i * w.spacing
        while head < len(pending) and pending[head][0] <= ts:
            yield "labels", pending[head][0], pending[head][1]
            head += 1
        shift = 1.6 if any(i >= c for c in w.feature_shift_at) else 1.0
        x: dict[str, Any] = {
            "amount": round(rng.lognormvariate(4.0, 0.8) * shift, 2),
            "age": rng.randint(18, 80),
            "country": rng.choice(COUNTRIES),
            "channel": rng.choice(CHANNELS),
        }
        for j in range(w.extra_features):
            x[f"f{j}"] = round(rng.gauss(0.0, 1.0), 4)
        y = concept(i, x, w.change_points, w.concepts)
        served = concept(0, x, ())
        if rng.random() < w.noise:
            served = 1 - served
        model = w.models[i % len(w.models)]
        eid = f"{w.id_prefix}-{i}"
        yield "inference", ts, {"id": eid, "model": model, "ts": ts, "features": x, "prediction": served,
                                "score": round(0.9 if served else 0.1, 3)}
        if rng.random() >= w.missing_labels:
            pending.append((ts + w.label_delay, {"id": eid, "model": model, "ts": ts + w.label_delay, "label": y}))
    for lts, lab in pending[head:]:
        yield "labels", lts, lab


def produce(producer: Any, w: Workload, inference_topic: str = "inference", labels_topic: str = "labels",
            poll_every: int = 5000) -> int:
    """Produce the workload (key = event id, Kafka timestamp = event time); returns messages produced."""
    import orjson

    n = 0
    for kind, ts, ev in events(w):
        topic = inference_topic if kind == "inference" else labels_topic
        value = orjson.dumps(ev)
        while True:
            try:
                producer.produce(topic, key=ev["id"], value=value, timestamp=int(ts * 1000))
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        if n % poll_every == 0:
            producer.poll(0)
    producer.flush(60)
    return n
