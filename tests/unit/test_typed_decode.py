"""The one-step path (msgspec straight into typed events) accepts only what the two-step path (orjson, then
validate) accepts, with the very same values: types, key order and float bits. Differential, on the
workload's events and on mutations of them that aim at every limit and at the places where the two
decoders differ (extra and duplicate keys, ints beyond 64 bits, overflowing floats, escapes, bad UTF-8,
deep nesting)."""

from __future__ import annotations

import random

import orjson
import pytest

from stream.errors import InvalidMessage
from stream.formats.json import typed_inference, typed_label
from stream.validate import validate_inference, validate_label
from stream.tools.workload import Workload, events

INFERENCE = ("id", "model", "ts", "features", "prediction", "score")
LABEL = ("id", "model", "ts", "label")


def _canon(v):
    t = type(v)
    if t is dict:
        return ("dict", tuple((_canon(k), _canon(x)) for k, x in v.items()))
    if t is float:
        return ("float", v.hex())
    return (t.__name__, v)


def _two_step(raw: bytes, kind: str):
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    try:
        ev = validate_inference(obj, json_bytes=len(raw)) if kind == "inference" else validate_label(obj)
    except InvalidMessage:
        return None
    return _canon(tuple(getattr(ev, f) for f in (INFERENCE if kind == "inference" else LABEL)))


def _one_step(raw: bytes, kind: str):
    ev = typed_inference(raw) if kind == "inference" else typed_label(raw)
    return None if ev is None else _canon(tuple(getattr(ev, f) for f in (INFERENCE if kind == "inference" else LABEL)))


class Raw(bytes):
    """JSON text inserted as is."""


def _enc(v) -> bytes:
    if isinstance(v, Raw):
        return bytes(v)
    if isinstance(v, list) and v and v[0] == "__obj__":  # ordered pairs; duplicates allowed
        return b"{" + b",".join(_enc(k) + b":" + _enc(x) for k, x in v[1:]) + b"}"
    if isinstance(v, dict):
        return _enc(["__obj__", *v.items()])
    return orjson.dumps(v)


_E = "\\ud83d\\ude00"  # an escaped astral character: one code point
POOL = [Raw(x if isinstance(x, bytes) else x.encode()) for x in [
    "1", "0", "1.0", "-0", "-0.0", "true", "false", "null", '""', '"x"', '"' + "a" * 128 + '"', '"' + "a" * 129 + '"',
    '"' + "a" * 256 + '"', '"' + "a" * 257 + '"', '"' + "a" * 1024 + '"', '"' + "a" * 1025 + '"', "[]", "{}", "[1]",
    '{"a":1}', "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "-9223372036854775808", "-9223372036854775809", "1" + "0" * 400, "1e308", "1.7976931348623157e308", "1.8e308",
    "1e400", "-1e400", "1e-400", "5e-324", "NaN", "Infinity", "1e11", "100000000000", "100000000001",
    "100000000000.00002", "-1e-300", "1E2", "0.1", '"\\u00e9"', '"' + _E + '"', '"\\ud800"', '"' + _E * 128 + '"',
    '"' + _E * 129 + '"', '"' + "é" * 129 + '"', '"fraud\\n"', '"fr aud"', '"\\u0066raud"', '"fraud\\u0000"',
    '"fraud"', '"fraud-v2.1_x"', "01", "1.", "+1", "tru", b'"\xff"', b'"\xed\xa0\x80"', "[" * 1023 + "]" * 1023,
    '{"a":' * 600 + "1" + "}" * 600, "1 2", "[1,]",
]]


def _mutate(ev: dict, kind: str, rng: random.Random) -> bytes:
    pairs = list(ev.items())
    fields = INFERENCE if kind == "inference" else LABEL
    for _ in range(rng.choice([1, 1, 2, 3])):
        op = rng.random()
        if op < 0.35 and pairs:  # another value for a field
            i = rng.randrange(len(pairs))
            pairs[i] = (pairs[i][0], rng.choice(POOL))
        elif op < 0.42 and pairs:  # a field missing
            del pairs[rng.randrange(len(pairs))]
        elif op < 0.52:  # a field twice
            pairs.insert(rng.randrange(len(pairs) + 1), (rng.choice(fields), rng.choice(POOL + [p[1] for p in pairs])))
        elif op < 0.60:  # an extra key
            pairs.insert(rng.randrange(len(pairs) + 1), (rng.choice(["extra", "ID", "", "é"]), rng.choice(POOL)))
        elif op < 0.64 and pairs:  # a field's name escaped
            i = rng.randrange(len(pairs))
            k = pairs[i][0]
            if isinstance(k, str) and k and not isinstance(k, Raw):
                pairs[i] = (Raw(b'"\\u00' + format(ord(k[0]), "02x").encode() + k[1:].encode() + b'"'), pairs[i][1])
        elif kind == "inference":  # the features
            at = [j for j, p in enumerate(pairs) if p[0] == "features" and isinstance(p[1], dict)]
            if not at:
                continue
            f = list(pairs[at[0]][1].items())
            r = rng.random()
            if r < 0.45 and f:
                i = rng.randrange(len(f))
                f[i] = (f[i][0], rng.choice(POOL))
            elif r < 0.6 and f:
                i = rng.randrange(len(f))
                f[i] = (rng.choice(["", "a" * 128, "a" * 129, "é" * 129, "x\u0000", Raw(b'"\\ud800"')]), f[i][1])
            elif r < 0.75 and f:
                i = rng.randrange(len(f))
                f.insert(rng.randrange(len(f) + 1), (f[i][0], rng.choice(POOL + [1.5, 2])))
            elif r < 0.85:
                f = [(f"g{i}", rng.choice([1.0, 2, True, None, "s"])) for i in range(rng.choice([0, 256, 257]))]
            else:
                f = rng.choice(POOL)
            pairs[at[0]] = ("features", ["__obj__", *f] if isinstance(f, list) else f)
    raw = _enc(["__obj__", *pairs])
    r = rng.random()
    if r < 0.03:
        raw = b" \n\t" + raw + b" \r\n"
    elif r < 0.05:
        raw = raw + b"x"
    elif r < 0.06:
        raw = b"[" + raw + b"]"
    return raw


@pytest.fixture(scope="module")
def workload_events():
    inference, labels = [], []
    for kind, _, ev in events(Workload(n_events=300, extra_features=8, label_delay=0.05)):
        (inference if kind == "inference" else labels).append(ev)
    return inference, labels


def test_well_formed_events_take_the_one_step_path_with_the_same_values(workload_events):
    inference, labels = workload_events
    for kind, evs in (("inference", inference), ("label", labels)):
        for ev in evs:
            raw = orjson.dumps(ev)
            assert _one_step(raw, kind) is not None, raw
            assert _one_step(raw, kind) == _two_step(raw, kind)


@pytest.mark.parametrize("seed", [1, 2])
def test_one_step_accepts_only_what_two_steps_accept_with_the_same_values(workload_events, seed):
    rng = random.Random(seed)
    inference, labels = workload_events
    counts = {"both": 0, "one-step refuses, two-step accepts": 0, "both refuse": 0}
    for _ in range(15_000):
        kind = "inference" if rng.random() < 0.7 else "label"
        raw = _mutate(rng.choice(inference if kind == "inference" else labels), kind, rng)
        one, two = _one_step(raw, kind), _two_step(raw, kind)
        if one is not None:
            assert one == two, raw[:300]  # never accepted where the two-step path refuses, same values
            counts["both"] += 1
        else:
            counts["one-step refuses, two-step accepts" if two is not None else "both refuse"] += 1
    assert min(counts.values()) > 100, counts  # every outcome was exercised
