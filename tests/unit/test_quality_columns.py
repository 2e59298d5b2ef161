"""The column-wise data-quality pass (check_many) against the per-event reference (check), on random
streams cut into random batches: same validity, same issues in the same order, same state after; and the
data-drift buffers it fills equal the per-event ones."""

from __future__ import annotations

import random

import pytest

from stream.config import DataDriftConfig, DataQualityConfig, FeatureSpec
from stream.datadrift import DataDriftMonitor, Position
from stream.events import InferenceEvent
from stream.quality import DataQualityChecker

SPEC = {
    "amount": FeatureSpec("numeric", nullable=False, min=0.0, max=10.0),
    "count": FeatureSpec("numeric", min=0, max=5),
    "country": FeatureSpec("categorical", categories=("DE", "FR")),
    "vip": FeatureSpec("boolean"),
}


def random_features(rng: random.Random, anomalies: float, nulls: float = 0.0) -> dict:
    f = {
        "amount": rng.choice([1.0, 1.0, 2.5, 0.0, -0.0, 11.0, -1.0]) if rng.random() < 0.5 else 1.0,
        "count": rng.choice([0, 1, 3, 7, -2]) if rng.random() < 0.5 else 3,
        "country": rng.choice(["DE", "FR", "XX"]) if rng.random() < 0.5 else "DE",
        "vip": rng.random() < 0.5,
    }
    if rng.random() < nulls:
        f[rng.choice(list(f))] = None
    if rng.random() < anomalies:
        kind = rng.randrange(6)
        if kind == 0:
            del f[rng.choice(list(f))]
        elif kind == 1:
            f["extra"] = 1.0
        elif kind == 2:
            f[rng.choice(list(f))] = None
        elif kind == 3:
            f["amount"] = "12"
        elif kind == 4:
            f["count"] = 2.0  # an int feature that gets a float: same type, another Python type
        else:
            f = dict(reversed(list(f.items())))  # same keys, another order
    return f


def batches(n: int, rng: random.Random) -> list[int]:
    cuts, i = [], 0
    while i < n:
        k = rng.choice([1, 2, 5, 17, 64, 300])
        cuts.append(min(k, n - i))
        i += k
    return cuts


def as_tuples(issues) -> list[tuple]:
    return [(i, x.check, x.feature, x.evidence) for i, x in issues]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("declared", [True, False])
def test_check_many_equals_check_event_by_event(seed, declared):
    rng = random.Random(seed)
    anomalies = [0.0, 0.01, 0.2][seed % 3]
    nulls = [0.0, 0.05][seed % 2]
    rows = [random_features(rng, anomalies, nulls) for _ in range(3000)]
    if not declared and seed % 4 == 1:
        for r in rows[:50]:
            r["amount"] = None  # an undeclared model learns this type only later
    cfg = DataQualityConfig(constant_window=rng.choice([2, 3, 7, 40]), rate_limit_events=rng.choice([1, 5, 100]))
    spec = SPEC if declared else {}
    ref = DataQualityChecker("m", spec, cfg)
    expected_valid, expected = [], []
    for i, f in enumerate(rows):
        ok, found = ref.check(InferenceEvent(f"e{i}", "m", 0.0, f, 1))
        expected_valid.append(ok)
        expected.extend((i, x) for x in found)

    got = DataQualityChecker("m", spec, cfg)
    got_valid, issues, start, columnar = [], [], 0, 0
    for k in batches(len(rows), rng):
        valid, found, columns, first = got.check_many(rows[start:start + k])
        columnar += bool(columns)
        assert (not columns) == (first == k)
        got_valid.extend(valid)
        issues.extend((start + i, x) for i, x in found)
        start += k
    assert got_valid == expected_valid
    assert as_tuples(issues) == as_tuples(expected)
    assert got.to_state() == ref.to_state()
    if anomalies < 0.2:
        assert columnar > 0  # the fast path was taken at least sometimes


@pytest.mark.parametrize("one_batch", [True, False])
@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("max_features", [2, 64])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_add_inferences_fills_the_same_buffers(task, max_features, declared, one_batch):
    rng = random.Random(7)
    rows = [random_features(rng, 0.0 if one_batch else 0.02, 0.05) for _ in range(500)]
    for r in rows[:30]:
        r["country"] = None  # first seen late: its signal is created after the prediction's
    preds = [rng.choice([0, 1, 2.5, "a", True]) for _ in rows]
    scores = [rng.choice([None, 0.3, 0.9]) if i > 40 else None for i in range(len(rows))]
    pos = [Position("inference", i, float(i), f"e{i}") for i in range(len(rows))]
    cfg = DataDriftConfig(enabled=True, max_features=max_features)
    spec = SPEC if declared else {}

    ref_q, ref_d = DataQualityChecker("m", spec, DataQualityConfig()), DataDriftMonitor("m", task, cfg)
    for i, f in enumerate(rows):
        ok, _ = ref_q.check(InferenceEvent(f"e{i}", "m", 0.0, f, preds[i]))
        ref_d.add_inference(f, ref_q.types, ok, preds[i], scores[i], pos[i])

    q, d, start = DataQualityChecker("m", spec, DataQualityConfig()), DataDriftMonitor("m", task, cfg), 0
    taken = 0
    for k in [len(rows)] if one_batch else batches(len(rows), rng):
        sl = slice(start, start + k)
        valid, _, columns, first = q.check_many(rows[sl])
        d.add_inferences(rows[sl], columns, q.types, valid, preds[sl], scores[sl], pos[sl])
        taken += bool(columns)
        start += k
    assert taken > 0
    assert list(d.signals) == list(ref_d.signals)
    for key, s in ref_d.signals.items():
        assert d.signals[key].values == s.values, key
        assert [type(v) for v in d.signals[key].values] == [type(v) for v in s.values], key
        assert d.signals[key].positions == s.positions, key
