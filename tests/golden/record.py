"""The golden workload: a fixed, seeded input stream run through the real service loop over in-memory fakes.

Why: a restructuring of ``stream/`` must not change behaviour. This module builds one workload that makes
the service produce every kind of output (two models, concept drift, feature shift, poison messages, late
labels, labels that never match, predictions whose label never comes, duplicates, a volume drop, a growing
label delay, a constant feature), runs :class:`stream.app.Service` over it on four partitions with a
kill -9 and a restart in the middle, and collects every output event of every output topic.
``outputs.jsonl.gz`` beside this file holds what the code before the restructuring produced;
``tests/unit/test_golden_outputs.py`` checks that the current code produces the same set, id for id and
byte for byte.

It uses only what survives the restructuring: ``Service(cfg, consumer, producer, store, metrics, clock=,
control_consumer=)``, ``Service.run(max_seconds)``, ``load_config``, ``CheckpointStore`` and ``Metrics``
(the workload generator lives here, not in ``stream``). The clock is a :class:`~tests.fakes.FakeClock`
moved only by the fake consumer, by 0.25 s per ``consume`` call (the poll timeout): time-driven outputs (the
no-data check's ``silent_seconds``) are then multiples of 0.25 s whatever the path to them, the same on
every run.

Record (from a checkout of the code to record, e.g. a git worktree of the commit before a change)::

    cd /tmp/base && PYTHONPATH=/tmp/base /work/main/.venv/bin/python /work/main/tests/golden/record.py --write

Without ``--write`` it runs the workload, prints counts per output type and compares with the recording.
Re-record from the working tree (``.venv/bin/python tests/golden/record.py --write``) only for an intended
change of behaviour, and say in the commit which outputs changed and why.

Why the clock steps are all 0.25 s: with 1/64 s per busy fetch, the no-data event of one partition had
``silent_seconds`` 20.1 after the crash/restart and 20.0 without it, under the same id (that field is
wall-clock time, so a real replay can also change it; see the report on issue 16).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):  # run as a script (possibly against another checkout through PYTHONPATH)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fakes  # type: ignore[import-not-found,no-redef]
else:
    from tests import fakes

GOLDEN = Path(__file__).with_name("outputs.jsonl.gz")
PARTITIONS = 4
SEED = 2026
#: inference events of the workload (both models), before the volume drop thins some out
N_EVENTS = 6000
SPACING = 0.05
T0 = 1_700_000_000.0
CHANGE_POINTS = (2200, 4400)
FEATURE_SHIFT_AT = 3800
VOLUME_DROP = (4800, 5400)  # only every 5th event in this range (one 30 s volume window)
CONSTANT_REGION = (1500, 2400)  # price.region is constant here
DELAY_GROWTH_AT = 3000  # price labels come 25 s after the prediction from here on (5 s before)
#: the crash: the first service is killed once it has consumed this many messages
CRASH_AFTER = 6007

CONFIG = """
accept_undeclared_models = false

[kafka]
"bootstrap.servers" = "fake:9092"

[redis]
url = "redis://fake:6379/0"

[topics]
partitions = 4

[processing]
group_id = "golden"
batch_size = 300
micro_batch_records = 64
poll_timeout_seconds = 0.25
checkpoint_every_messages = 600
checkpoint_every_seconds = 30.0
max_message_bytes = 4096
start_from = "earliest"
max_buffered_per_partition = 400
max_idle_wait_seconds = 2.0
gc_threshold = 0

[join]
max_pending = 100000
ttl_seconds = 60.0
remember_joined = 2000

[state]
key_prefix = "golden"
hmac_key = "golden-test-key"

[models.fraud]
task = "classification"
error_detectors = [{ name = "ADWIN", params = { delta = 0.002 } }, { name = "HDDMA" }]
data_quality = { enabled = true, constant_window = 50, rate_limit_events = 150, label_delay_growth_factor = 2.0, label_delay_window = 100, volume_drop_ratio = 0.5, volume_window_seconds = 30.0, no_data_seconds = 20.0 }

[models.fraud.online_model]
enabled = true
kind = "logistic"
learning_rate = 0.05
adapt = true

[models.fraud.retrain]
on_concept_drift = true
on_schema_change = true
cooldown_seconds = 60.0
fallback_window_seconds = 600.0

[models.fraud.challenger]
window = 400
alpha = 0.01
min_pairs = 100
every = 50

[models.fraud.data_drift]
enabled = true
numeric_test = "ks"
categorical_test = "chi2"
reference_size = 200
window_size = 100
step = 50
alpha = 0.0001

[models.fraud.features.amount]
type = "numeric"
nullable = false
min = 0

[models.fraud.features.age]
type = "numeric"
nullable = false
min = 0
max = 130

[models.fraud.features.country]
type = "categorical"
categories = ["DE", "FR", "NL", "ES", "IT", "PL"]

[models.fraud.features.channel]
type = "categorical"
categories = ["web", "app", "pos"]

[models.price]
task = "regression"
data_quality = { enabled = true, constant_window = 50, rate_limit_events = 150, label_delay_growth_factor = 2.0, label_delay_window = 100, volume_drop_ratio = 0.5, volume_window_seconds = 30.0, no_data_seconds = 20.0 }

[models.price.online_model]
enabled = true
kind = "linear"
learning_rate = 0.02
adapt = true

[models.price.retrain]
on_concept_drift = true
every_labels = 400
data_drift_sustained_seconds = 30.0
cooldown_seconds = 45.0
fallback_window_seconds = 600.0

[models.price.challenger]
window = 400
alpha = 0.01
min_pairs = 100
every = 50

[models.price.data_drift]
enabled = true
numeric_test = "psi"
categorical_test = "js"
reference_size = 200
window_size = 100
step = 50
psi_threshold = 0.25
js_threshold = 0.1
mean_detector = "PageHinkley"

[models.price.features.x1]
type = "numeric"
nullable = false

[models.price.features.x2]
type = "numeric"
min = 0

[models.price.features.region]
type = "categorical"
categories = ["N", "S", "E", "W"]

[models.price.features.flag]
type = "boolean"
"""

COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")
CHANNELS = ("web", "app", "pos")
REGIONS = ("N", "S", "E", "W")


@dataclass(frozen=True)
class Message:
    topic: str  # "inference" or "labels" (the config's default topic names)
    ts: float
    key: bytes | None
    value: bytes | None


def _fraud_truth(k: int, x: dict[str, Any]) -> int:
    if k == 0:
        return int(x["amount"] > 120.0 or (x["country"] == "NL" and x["age"] < 25))
    if k == 1:
        return int(x["amount"] < 40.0 or x["channel"] == "app")
    return int(x["age"] > 60 or x["country"] in ("ES", "IT"))


def _price_truth(k: int, x: dict[str, Any]) -> float:
    base = 0.5 * x["x2"] + (2.0 if x["region"] == "N" else 0.0)
    if k == 0:
        return 3.0 * x["x1"] + base
    if k == 1:
        return -2.0 * x["x1"] + base + 4.0
    return 1.0 * x["x1"] - base


def workload(seed: int = SEED) -> list[Message]:
    """Every input message, in production order (Kafka timestamp = event time)."""
    rng = random.Random(seed)
    out: list[tuple[float, int, Message]] = []
    seq = 0

    def emit(topic: str, ts: float, key: str | None, value: Any) -> None:
        nonlocal seq
        raw = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
        out.append((ts, seq, Message(topic, ts, key.encode() if key is not None else None, raw)))
        seq += 1

    for i in range(N_EVENTS):
        ts = round(T0 + i * SPACING, 3)
        k = sum(1 for c in CHANGE_POINTS if i >= c)
        eid = f"g-{i}"
        if i % 2 == 0:
            model = "fraud"
            shift = 1.8 if i >= FEATURE_SHIFT_AT else 1.0
            x: dict[str, Any] = {"amount": round(rng.lognormvariate(4.0, 0.8) * shift, 2),
                                 "age": rng.randint(18, 80), "country": rng.choice(COUNTRIES),
                                 "channel": rng.choice(CHANNELS)}
            y: Any = _fraud_truth(k, x)
            served: Any = _fraud_truth(0, x)
            if rng.random() < 0.05:
                served = 1 - served
            ev: dict[str, Any] = {"id": eid, "model": model, "ts": ts, "features": x, "prediction": served,
                                  "score": 0.9 if served else 0.1}
            # data-quality findings of the fraud model (its features are declared)
            if i % 997 == 0:
                x["amount"] = None
            if i % 991 == 6:
                x["age"] = 150
            if i % 983 == 8:
                x["country"] = "XX"
            if i % 1499 == 4:
                del x["channel"]
            if i % 1201 == 10:
                x["extra"] = 1
            if i % 1301 == 12:
                x["age"] = "old"
        else:
            model = "price"
            x = {"x1": round(rng.gauss(0.0, 1.0), 4),
                 "x2": round(rng.uniform(0.0, 10.0) + (3.0 if i >= FEATURE_SHIFT_AT else 0.0), 3),
                 "region": rng.choice(REGIONS), "flag": rng.random() < 0.5}
            if CONSTANT_REGION[0] <= i < CONSTANT_REGION[1]:
                x["region"] = "N"
            y = round(_price_truth(k, x) + rng.gauss(0.0, 0.3), 4)
            served = round(_price_truth(0, x), 4)
            ev = {"id": eid, "model": model, "ts": ts, "features": x, "prediction": served}
        fate = rng.random()
        if VOLUME_DROP[0] <= i < VOLUME_DROP[1] and i % 5:
            continue  # never produced: the volume drop
        emit("inference", ts, eid, ev)
        if i % 900 == 450:  # the same prediction again: duplicate_id
            emit("inference", ts + 0.5, eid, ev)
        if fate < 0.04:
            continue  # its label never comes: label-missing after the TTL
        delay = 5.0
        if model == "price" and i >= DELAY_GROWTH_AT:
            delay = 25.0
        if fate > 0.98:
            delay = 90.0  # later than the TTL: label-missing, then the label is dead-lettered unmatched
        lts = round(ts + delay, 3)
        lab = {"id": eid, "model": model, "ts": lts, "label": y}
        emit("labels", lts, eid, lab)
        if i % 700 == 350:  # the same label again: duplicate_label
            emit("labels", lts + 1.0, eid, lab)
        if i % 400 == 200:  # a label whose prediction never existed
            emit("labels", lts, f"ghost-{i}", {"id": f"ghost-{i}", "model": model, "ts": lts, "label": y})

    # poison, spread over the partitions (by key) and over time
    poison_inference: list[tuple[str, Any]] = [
        ("bad-json", b'{"id": "bad-json", "model": "fraud", "ts": '),
        ("not-object", b"[1, 2, 3]"),
        ("not-utf8", b"\xff\xfe\x00garbage"),
        ("tombstone", None),
        ("no-ts", {"id": "no-ts", "model": "fraud", "features": {"amount": 1.0}, "prediction": 1}),
        ("no-features", {"id": "no-features", "model": "fraud", "ts": 1.0, "prediction": 1}),
        ("no-prediction", {"id": "no-prediction", "model": "price", "ts": 1.0, "features": {"x1": 1.0}}),
        ("no-id", {"model": "fraud", "ts": 1.0, "features": {"amount": 1.0}, "prediction": 1}),
        ("unknown-model", {"id": "unknown-model", "model": "ghostmodel", "ts": 1.0, "features": {"a": 1.0},
                           "prediction": 1}),
        ("bad-model", {"id": "bad-model", "model": "bad model!", "ts": 1.0, "features": {"a": 1.0},
                       "prediction": 1}),
        ("bad-score", {"id": "bad-score", "model": "fraud", "ts": 1.0, "features": {"amount": 1.0},
                       "prediction": 1, "score": "high"}),
        ("oversize", {"id": "oversize", "model": "fraud", "ts": 1.0, "prediction": 1,
                      "features": {f"pad{j}": "x" * 200 for j in range(25)}}),
    ]
    poison_labels: list[tuple[str, Any]] = [
        ("lab-bad-json", b'{"id": "lab-bad-json", "label": '),
        ("lab-tombstone", None),
        ("lab-no-label", {"id": "lab-no-label", "model": "fraud", "ts": 1.0}),
        ("lab-unknown-model", {"id": "lab-unknown-model", "model": "ghostmodel", "ts": 1.0, "label": 1}),
    ]
    for rep, at in enumerate((300, 2600, 5300)):
        for j, (name, value) in enumerate(poison_inference):
            ts = round(T0 + (at + 7 * j) * SPACING + 0.001, 3)
            v = value
            if isinstance(v, dict) and "ts" in v:
                v = {**v, "ts": ts}
                if "id" in v:
                    v["id"] = f"{v['id']}-{rep}"
            emit("inference", ts, f"{name}-{rep}", v)
        for j, (name, value) in enumerate(poison_labels):
            ts = round(T0 + (at + 11 * j) * SPACING + 0.002, 3)
            v = value
            if isinstance(v, dict):
                v = {**v, "ts": ts, "id": f"{v['id']}-{rep}"}
            emit("labels", ts, f"{name}-{rep}", v)
    out.sort(key=lambda t: (t[0], t[1]))
    return [m for _, _, m in out]


# -- running -------------------------------------------------------------------------------------------
class Crash(BaseException):
    """kill -9 of the first service (a BaseException: nothing in the service may catch and handle it)."""


def config(tmp: Path, environ: dict[str, str] | None = None) -> Any:
    """The workload's configuration; ``environ``: overrides as the loader reads them from the environment
    (``DRIFTSTREAM_MODELS__FRAUD__ONLINE_MODEL__HEAD=ovr``), to compare a variant with the recording."""
    from stream.config import load_config

    path = tmp / "golden.toml"
    path.write_text(CONFIG)
    return load_config(path, environ=dict(environ or {}))


def make_broker(cfg: Any, messages: list[Message]) -> fakes.FakeBroker:
    """The input topics with the workload; output topics are created by the first event sent to them."""
    broker = fakes.FakeBroker(default_partitions=PARTITIONS)
    topic = {"inference": cfg.topics.inference, "labels": cfg.topics.labels}
    for m in messages:
        broker.append(topic[m.topic], None, m.key, m.value, int(round(m.ts * 1000)))
    return broker


def _service(cfg: Any, broker: fakes.FakeBroker, store: Any, clock: fakes.FakeClock,
             before_consume: Any = None) -> tuple[Any, fakes.FakeConsumer, fakes.FakeProducer]:
    from prometheus_client import CollectorRegistry

    from stream.app import Service
    from stream.metrics import Metrics

    consumer = fakes.FakeConsumer(broker, {"group.id": cfg.processing.group_id,
                                           "auto.offset.reset": cfg.processing.start_from},
                                  clock=clock, busy_seconds=0.25, before_consume=before_consume)
    # deliveries trail a little behind production, so a kill -9 loses some outputs that were never flushed
    producer = fakes.FakeProducer(broker, deliver_per_poll=40)
    svc = Service(cfg, consumer, producer, store, Metrics(CollectorRegistry()), clock=clock, control_consumer=None)
    return svc, consumer, producer


@dataclass
class Run:
    #: (topic, id) -> (key, value) of every output event, duplicates dropped
    outputs: dict[tuple[str, str], tuple[str | None, str]]
    #: output events delivered, duplicates included
    delivered: int
    #: outputs lost in the producer's queue by the crash
    lost_in_crash: int
    consumed_before_crash: int


def run(crash_after: int | None = CRASH_AFTER, messages: list[Message] | None = None,
        environ: dict[str, str] | None = None) -> Run:
    """Run the workload to its end (with a kill -9 after ``crash_after`` consumed messages and a restart,
    or without) and collect the outputs (``environ``: config overrides, see :func:`config`)."""
    from stream.checkpoint import CheckpointStore

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config(Path(tmp), environ)
    broker = make_broker(cfg, workload() if messages is None else messages)
    redis = fakes.fake_redis()
    clock = fakes.FakeClock()
    lost, consumed = 0, 0

    def store() -> Any:
        return CheckpointStore(redis, cfg.state.key_prefix, cfg.processing.group_id, cfg.state.hmac_key.encode())

    try:
        if crash_after is not None:
            box: dict[str, Any] = {}

            def maybe_crash(n: int) -> None:
                if n >= crash_after:
                    box["consumer"].vanish()  # no revoke, no commit: the process is gone
                    raise Crash(n)

            svc, consumer, producer = _service(cfg, broker, store(), clock, before_consume=maybe_crash)
            box["consumer"] = consumer
            try:
                svc.run(max_seconds=10_000.0)
                raise AssertionError("the first service ended before the crash point")
            except Crash:
                pass
            lost = producer.crash()
            consumed = consumer.consumed
            del svc, consumer, producer
        svc, consumer, producer = _service(cfg, broker, store(), clock)
        code = svc.run(max_seconds=60.0)
        if code != 0:
            raise AssertionError(f"the service stopped with exit code {code}")
        if consumer.consumed == 0:
            raise AssertionError("the restarted service consumed nothing")
    finally:
        gc.unfreeze()  # Service.run freezes the collector's generations: give them back to the test process
    outputs, delivered = collect(broker, cfg)
    return Run(outputs, delivered, lost, consumed)


def collect(broker: fakes.FakeBroker, cfg: Any) -> tuple[dict[tuple[str, str], tuple[str | None, str]], int]:
    """Every output event (every topic but the two inputs) by (topic, id); a duplicate must be
    byte-identical (key and value) to the first."""
    inputs = {cfg.topics.inference, cfg.topics.labels}
    out: dict[tuple[str, str], tuple[str | None, str]] = {}
    delivered = 0
    for topic in sorted(broker.topics):
        if topic in inputs:
            continue
        for m in broker.messages(topic):
            delivered += 1
            value = m.value().decode()
            key = m.key().decode() if m.key() is not None else None
            ev = orjson.loads(value)
            ident = (topic, ev["id"])
            seen = out.get(ident)
            if seen is None:
                out[ident] = (key, value)
            elif seen != (key, value):
                raise AssertionError(f"two different events with the same id {ident}:\n  {seen}\n  {(key, value)}")
    return out, delivered


# -- the recording -------------------------------------------------------------------------------------
def to_lines(outputs: dict[tuple[str, str], tuple[str | None, str]]) -> list[bytes]:
    return [orjson.dumps({"topic": t, "id": i, "key": k, "value": v}) for (t, i), (k, v) in sorted(outputs.items())]


def write(outputs: dict[tuple[str, str], tuple[str | None, str]], path: Path = GOLDEN) -> None:
    data = b"".join(line + b"\n" for line in to_lines(outputs))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)


def read(path: Path = GOLDEN) -> dict[tuple[str, str], tuple[str | None, str]]:
    out = {}
    for line in gzip.decompress(path.read_bytes()).splitlines():
        d = orjson.loads(line)
        out[(d["topic"], d["id"])] = (d["key"], d["value"])
    return out


def kind(value: str) -> str:
    """The output type of an event, finer where a type has sub-kinds (drift kind, data-quality check,
    dead-letter reason)."""
    ev = orjson.loads(value)
    t = ev.get("type", "?")
    if t == "drift":
        return f"drift:{ev.get('kind')}"
    if t == "data-quality":
        return f"data-quality:{ev.get('check')}"
    if t == "dead-letter":
        return f"dead-letter:{ev.get('reason')}"
    return t


def counts(outputs: dict[tuple[str, str], tuple[str | None, str]]) -> Counter[str]:
    return Counter(kind(v) for _, v in outputs.values())


#: what the workload must make the service produce at least once (it is tuned so that all occur)
REQUIRED = (
    "drift:concept", "drift:feature", "retrain", "challenger-better", "model-swap", "online-prediction",
    "data-quality:label_missing", "data-quality:missing_feature", "data-quality:unexpected_feature",
    "data-quality:wrong_type", "data-quality:null_value", "data-quality:out_of_range",
    "data-quality:unseen_category", "data-quality:constant_feature", "data-quality:label_delay_growth",
    "data-quality:volume_drop", "data-quality:no_data",
    "dead-letter:invalid_json", "dead-letter:not_an_object", "dead-letter:empty_value", "dead-letter:oversized",
    "dead-letter:unknown_model", "dead-letter:duplicate_id", "dead-letter:duplicate_label",
    "dead-letter:label_without_prediction",
)


def missing_kinds(c: Counter[str]) -> list[str]:
    return [k for k in REQUIRED if not c.get(k)]


def differences(expected: dict[tuple[str, str], tuple[str | None, str]],
                got: dict[tuple[str, str], tuple[str | None, str]], limit: int = 10) -> list[str]:
    """Human-readable first differences (missing, unexpected, changed), at most ``limit`` of each."""
    lines: list[str] = []
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    changed = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing:
        lines.append(f"{len(missing)} expected events missing, e.g.:")
        lines += [f"  - {t} {i}: {expected[(t, i)][1][:300]}" for t, i in missing[:limit]]
    if extra:
        lines.append(f"{len(extra)} unexpected events, e.g.:")
        lines += [f"  + {t} {i}: {got[(t, i)][1][:300]}" for t, i in extra[:limit]]
    if changed:
        lines.append(f"{len(changed)} events with the same id but other content, e.g.:")
        for k in changed[:limit]:
            lines.append(f"  ~ {k[0]} {k[1]}")
            lines += _field_diff(expected[k], got[k])
    return lines


def _field_diff(a: tuple[str | None, str], b: tuple[str | None, str]) -> list[str]:
    out = []
    if a[0] != b[0]:
        out.append(f"      key: {a[0]!r} -> {b[0]!r}")
    ea, eb = orjson.loads(a[1]), orjson.loads(b[1])
    for f in sorted(set(ea) | set(eb)):
        if ea.get(f, "<absent>") != eb.get(f, "<absent>"):
            out.append(f"      {f}: {str(ea.get(f, '<absent>'))[:200]} -> {str(eb.get(f, '<absent>'))[:200]}")
    if not out and a[1] != b[1]:
        out.append(f"      same fields, other bytes (key order or number format):\n      {a[1][:300]}\n      {b[1][:300]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help=f"write the recording to {GOLDEN}")
    ap.add_argument("--override", action="append", default=[], metavar="DRIFTSTREAM_KEY=VALUE",
                    help="a config override as the loader reads it from the environment (repeatable), e.g. "
                         "DRIFTSTREAM_MODELS__FRAUD__ONLINE_MODEL__HEAD=ovr: compare a variant with the recording")
    args = ap.parse_args(argv)
    environ = dict(o.split("=", 1) for o in args.override)
    if args.write and environ:
        ap.error("--write records the workload's own configuration: no --override")
    import stream

    print(f"stream from {Path(stream.__file__).parent}")
    msgs = workload()
    print(f"workload: {len(msgs)} input messages "
          f"({sum(m.topic == 'inference' for m in msgs)} inference, {sum(m.topic == 'labels' for m in msgs)} labels)")
    if environ:
        print(f"config overrides: {environ}")
    crashed = run(CRASH_AFTER, msgs, environ)
    print(f"with a kill -9 after {crashed.consumed_before_crash} consumed messages: {len(crashed.outputs)} distinct "
          f"outputs, {crashed.delivered} delivered ({crashed.delivered - len(crashed.outputs)} duplicates), "
          f"{crashed.lost_in_crash} lost in the producer queue")
    plain = run(None, msgs, environ)
    print(f"without a crash: {len(plain.outputs)} distinct outputs, {plain.delivered} delivered")
    c = counts(crashed.outputs)
    for k, n in sorted(c.items()):
        print(f"  {n:6d}  {k}")
    problems = 0
    if crashed.outputs != plain.outputs:
        print("REPLAY NOT DETERMINISTIC: the crash/restart run differs from the run without a crash:")
        print("\n".join(differences(plain.outputs, crashed.outputs)))
        problems += 1
    miss = missing_kinds(c)
    if miss:
        print(f"output kinds that did not occur: {', '.join(miss)}")
        problems += 1
    if args.write:
        write(crashed.outputs)
        print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes, {len(crashed.outputs)} events)")
    elif GOLDEN.exists():
        diff = differences(read(), crashed.outputs)
        print("identical to the recording" if not diff else "\n".join(["DIFFERS from the recording:", *diff]))
        problems += bool(diff)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
