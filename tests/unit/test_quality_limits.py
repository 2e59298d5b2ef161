"""Flood control of data-quality issues, and batches whose rows all carry the same unexpected features (checked
column by column, their issues limited in one step), against plain references: a checker without a limit
finds every issue event by event, and :func:`limit` applies the rule of the module docstring to them. Random
irregular streams cut at random points, with restores from the state in between; the data-drift buffers
filled from the batches equal the per-event ones."""

from __future__ import annotations

import random

import orjson
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
EXTRA_VALUES = [1.5, 2, "x", None, True, 2**64 - 1]  # the largest int a JSON event can carry


def limit(found: list[tuple[int, object]], rate: int) -> tuple[list[tuple], list[list]]:
    """At most one issue per (check, feature) per ``rate`` events, the suppressed count in the next one's
    evidence. ``found``: (row, issue) in event order; row ``i`` is the model's event ``i + 1``."""
    limits: dict[tuple[str, str], list[int]] = {}
    kept = []
    for i, issue in found:
        key, seen = (issue.check, issue.feature), i + 1
        lim = limits.get(key)
        if lim is not None and seen - lim[0] < rate:
            lim[1] += 1
            continue
        kept.append((i, issue.check, issue.feature,
                     {**issue.evidence, "suppressed_since_last": 0 if lim is None else lim[1]}))
        limits[key] = [seen, 0]
    return kept, [[c, f, last, sup] for (c, f), (last, sup) in limits.items()]


def random_stream(rng: random.Random, n: int, declared: bool) -> list[dict]:
    """Runs of rows that share a set of unexpected features (none, or some in random key positions), with
    irregular rows now and then: a value out of range or unseen, a null, a wrong type, a missing or
    another unexpected feature, keys in another order."""
    rows: list[dict] = []
    base = {"amount": 1.0, "count": 3, "country": "DE", "vip": False}
    while len(rows) < n:
        # the first run has none: an undeclared model's first event fixes its known features
        extras = rng.sample(["e1", "e2", "e3", "amount2"], rng.choice([0, 1, 1, 2, 3]) if rows else 0)
        order = list(base) + extras
        rng.shuffle(order)
        for _ in range(rng.choice([1, 5, 40, 200])):
            f = {"amount": rng.choice([1.0, 1.0, 2.5, 11.0]), "count": rng.choice([3, 3, 0, 7]),
                 "country": rng.choice(["DE", "DE", "FR", "XX"]), "vip": rng.random() < 0.5}
            for e in extras:
                f[e] = rng.choice(EXTRA_VALUES)
            row = {k: f[k] for k in order}
            if rng.random() < 0.03:
                kind = rng.randrange(6)
                if kind == 0:
                    row[rng.choice(list(base))] = None
                elif kind == 1:
                    row["count"] = 2.0 if declared else "3"  # another Python type / another feature type
                elif kind == 2:
                    del row[rng.choice(list(row))]
                elif kind == 3:
                    row["e9"] = 1
                elif kind == 4:
                    row = dict(reversed(list(row.items())))
                else:
                    row["amount"] = rng.choice([-1.0, 1.0])
            rows.append(row)
    return rows[:n]


def cuts(rng: random.Random, n: int) -> list[tuple[int, int]]:
    out, i = [], 0
    while i < n:
        k = min(rng.choice([1, 2, 3, 17, 64, 128, 300]), n - i)
        out.append((i, i + k))
        i += k
    return out


def restored(q: DataQualityChecker, spec, cfg) -> DataQualityChecker:
    fresh = DataQualityChecker("m", spec, cfg)
    fresh.load_state(orjson.loads(orjson.dumps(q.to_state())))
    return fresh


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("declared", [True, False])
def test_batches_and_events_report_what_the_plain_limit_keeps(seed, declared):
    rng = random.Random(seed)
    spec = SPEC if declared else {}
    rows = random_stream(rng, 2500, declared)
    rate = rng.choice([1, 2, 7, 100, 1000])
    cfg = DataQualityConfig(constant_window=rng.choice([2, 5, 40]), rate_limit_events=rate)

    every = DataQualityChecker("m", spec, DataQualityConfig(constant_window=cfg.constant_window, rate_limit_events=0))
    all_found, all_valid = [], []
    for i, f in enumerate(rows):
        ok, found = every.check(InferenceEvent(f"e{i}", "m", 0.0, f, 1))
        all_valid.append(ok)
        all_found.extend((i, x) for x in found)
    expected, expected_limits = limit(all_found, rate)

    one = DataQualityChecker("m", spec, cfg)  # event by event, with the limit
    got_one = []
    for i, f in enumerate(rows):
        _, found = one.check(InferenceEvent(f"e{i}", "m", 0.0, f, 1))
        got_one.extend((i, x.check, x.feature, x.evidence) for x in found)
    assert got_one == expected
    assert one.to_state()["limits"] == expected_limits

    q, got, valid, columnar = DataQualityChecker("m", spec, cfg), [], [], 0
    for a, b in cuts(rng, len(rows)):
        if rng.random() < 0.1:
            q = restored(q, spec, cfg)
        v, found, columns, first = q.check_many(rows[a:b])
        valid.extend(v)
        got.extend((a + i, x.check, x.feature, x.evidence) for i, x in found)
        columnar += any(seg.unexpected for seg in columns)
    assert valid == all_valid
    assert got == expected
    state = q.to_state()
    assert state["limits"] == expected_limits
    assert state["runs"] == every.to_state()["runs"] and state["events_seen"] == len(rows)
    assert columnar > 0  # batches with unexpected features went column by column


@pytest.mark.parametrize("rate", [0, 1, 3, 50])
def test_an_unexpected_feature_in_every_row_across_batches(rate):
    """The one-step limit of a whole column: reported rows and suppressed counts across batch boundaries,
    a limit that runs out inside a batch or not at all, and a new feature next to ones already limited."""
    rows = [{"e": i % 3 or None, "x": 1.0} for i in range(400)]
    rows[150:] = [{"x": 1.0, "f": "a", "e": 1} for _ in range(250)]
    cfg = DataQualityConfig(constant_window=1000, rate_limit_events=rate)
    every = DataQualityChecker("m", {"x": FeatureSpec("numeric")}, DataQualityConfig(rate_limit_events=0))
    all_found = [(i, x) for i, f in enumerate(rows) for x in every.check(InferenceEvent("e", "m", 0.0, f, 1))[1]]
    expected, expected_limits = limit(all_found, rate)
    for sizes in ([150, 250], [1] * 10 + [140, 250], [49, 51, 50, 100, 7, 143], [3, 147, 250]):
        q, got, a = DataQualityChecker("m", {"x": FeatureSpec("numeric")}, cfg), [], 0
        for k in sizes:
            valid, found, columns, _ = q.check_many(rows[a:a + k])
            assert columns and not any(valid)
            got.extend((a + i, x.check, x.feature, x.evidence) for i, x in found)
            a += k
        assert got == expected
        assert q.to_state()["limits"] == expected_limits


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_drift_buffers_from_batches_with_unexpected_features(seed, task):
    """Invalid rows feed predictions, scores and labels, not features; restores of both states in between."""
    rng = random.Random(seed)
    spec = SPEC if seed % 2 else {}
    rows = random_stream(rng, 1500, bool(spec))
    preds = [rng.choice([0, 1, 2.5, "a", True]) for _ in rows]
    scores = [rng.choice([None, 0.3, 0.9, 1]) if i % 5 else 0.5 for i in range(len(rows))]
    labels = [rng.choice([0, 1, "b", 2.0]) for _ in rows]
    pos = [Position("inference", i, float(i), f"e{i}") for i in range(len(rows))]
    qcfg, dcfg = DataQualityConfig(rate_limit_events=10), DataDriftConfig(enabled=True, max_features=4)

    ref_q, ref_d = DataQualityChecker("m", spec, qcfg), DataDriftMonitor("m", task, dcfg)
    q, d = DataQualityChecker("m", spec, qcfg), DataDriftMonitor("m", task, dcfg)
    for a, b in cuts(rng, len(rows)):
        for i in range(a, b):
            ok, _ = ref_q.check(InferenceEvent(f"e{i}", "m", 0.0, rows[i], preds[i]))
            ref_d.add_inference(rows[i], ref_q.types, ok, preds[i], scores[i], pos[i])
            ref_d.add_label(labels[i], pos[i])
        valid, _, columns, first = q.check_many(rows[a:b])
        d.add_inferences(rows[a:b], columns, q.types, valid, preds[a:b], scores[a:b], pos[a:b])
        for i in range(a, b):
            d.add_label(labels[i], pos[i])
        assert d.signals.keys() == ref_d.signals.keys()
        for key, s in ref_d.signals.items():
            got = d.signals[key]
            assert [(type(v), v) for v in got.values] == [(type(v), v) for v in s.values], key
            assert got.positions == s.positions, key
            got.values.clear(), got.positions.clear(), s.values.clear(), s.positions.clear()
        if rng.random() < 0.2:
            q = restored(q, spec, qcfg)
            state, d = d.to_state(), DataDriftMonitor("m", task, dcfg)
            d.load_state(state)
