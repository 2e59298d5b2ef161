"""Batches of mostly regular rows with irregular ones sprinkled in at low rates: check_many checks the
regular runs between them column by column (segments) and the irregular rows one by one, and
add_inferences feeds the drift signals the same way. Everything must equal the per-event path: validity,
issues in order with their evidence, the values and positions fed to each signal, drift findings, and
the state bytes of both the checker and the monitor, also when both are restored from their state (through
orjson) between batches."""

from __future__ import annotations

import random

import orjson
import pytest

from stream import quality
from stream.config import DataDriftConfig, DataQualityConfig, FeatureSpec
from stream.datadrift import DataDriftMonitor, Position
from stream.events import InferenceEvent
from stream.quality import DataQualityChecker

SPEC = {
    "amount": FeatureSpec("numeric", nullable=False, min=0.0, max=10.0),
    "count": FeatureSpec("numeric", nullable=False, min=0, max=5),
    "country": FeatureSpec("categorical", categories=("DE", "FR")),
    "vip": FeatureSpec("boolean"),
    "score2": FeatureSpec("numeric"),
}
HUGE = 2**64 - 1  # the largest int a JSON event can carry


def regular(rng: random.Random, extras: list[str]) -> dict:
    f = {"amount": rng.choice([1.0, 1.0, 1.0, 2.5, 11.0]), "count": rng.choice([3, 3, 3, 0, 7]),
         "country": rng.choice(["DE", "DE", "FR", "XX"]), "vip": rng.random() < 0.5,
         "score2": rng.choice([0.5, 0.5, round(rng.random(), 3)])}
    for e in extras:
        f[e] = rng.choice([1.5, 2, "x", None])
    return f


def irregular(rng: random.Random, row: dict) -> dict:
    """``row`` made irregular in one of the ways real data is dirty."""
    row = dict(row)
    kind = rng.randrange(12)
    if kind == 0:  # a missing feature
        del row[rng.choice(list(row))]
    elif kind == 1:  # an extra feature on this row only
        row[rng.choice(["e9", "amount_v2"])] = rng.choice([1, "a", None])
    elif kind == 2:  # as many features, not the same ones
        del row[rng.choice(list(row))]
        row["e8"] = 1.0
    elif kind == 3:  # a wrong type
        row[rng.choice(["amount", "count"])] = rng.choice(["1.0", "3"])
        row["country"] = rng.choice([row["country"], 7])
    elif kind == 4:  # null in a non-nullable feature (or a nullable one)
        row[rng.choice(["amount", "count", "country"])] = None
    elif kind == 5:  # the same keys in another order
        row = dict(reversed(list(row.items())))
    elif kind == 6:  # a bool in a numeric column
        row[rng.choice(["amount", "count", "score2"])] = rng.random() < 0.5
    elif kind == 7:  # a huge int: an int column takes it, a float column does not
        row[rng.choice(["amount", "count"])] = HUGE
    elif kind == 8:  # an int where floats are, a float where ints are
        row["amount"], row["count"] = 1, 3.0
    elif kind == 9:  # an int in a boolean column
        row["vip"] = 1
    elif kind == 10:  # nulls everywhere
        row = dict.fromkeys(row)
    else:  # a value out of range and one unseen, in a row that is otherwise regular
        row["amount"], row["country"] = -1.0, "YY"
    return row


def dirty_stream(rng: random.Random, n: int, rate: float, extras: list[str]) -> list[dict]:
    """Regular rows (all of them with the features ``extras`` too, if any), with irregular ones at
    ``rate``, alone or in short bursts, and now and then a short run with one more feature."""
    rows: list[dict] = []
    while len(rows) < n:
        u = rng.random()
        if u < rate:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                rows.append(irregular(rng, regular(rng, extras)))
        elif u < rate * 1.2:
            rows.extend({**regular(rng, extras), "burst": 1} for _ in range(rng.choice([2, 5, 9])))
        else:
            rows.append(regular(rng, extras))
    return rows[:n]


def cuts(rng: random.Random, n: int) -> list[tuple[int, int]]:
    out, i = [], 0
    while i < n:
        k = min(rng.choice([1, 3, 8, 64, 128, 128, 250, 400]), n - i)
        out.append((i, i + k))
        i += k
    return out


def _values(s) -> list:
    return [(type(v), v) for v in s.values]


def _finding(f) -> tuple:
    return f.kind, f.signal, f.detector, f.result, f.at


@pytest.mark.parametrize("min_segment", [1, 2, None])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("declared", [True, False])
def test_sprinkled_irregular_rows(seed, declared, min_segment, monkeypatch):
    if min_segment is not None:
        monkeypatch.setattr(quality, "MIN_SEGMENT", min_segment)
    rng = random.Random(seed * 7 + declared)
    rate = [0.005, 0.01, 0.02, 0.05][seed % 4]
    # every row has unexpected features too (a declared model with extra ones): all invalid
    extras = ["f0", "f1"] if seed % 3 == 2 else []
    rows = dirty_stream(rng, 3000, rate, extras)
    spec = SPEC if declared else {}
    task = ["classification", "regression"][seed % 2]
    preds = [rng.choice([0, 1, 1, 2.5]) if rng.random() < 0.99 else rng.choice(["a", True, None]) for _ in rows]
    scores = [rng.choice([0.1, 0.9]) if rng.random() < 0.98 else rng.choice([None, 1]) for _ in rows]
    pos = [Position("inference", i, float(i), f"e{i}") for i in range(len(rows))]
    qcfg = DataQualityConfig(constant_window=rng.choice([3, 8, 40]), rate_limit_events=rng.choice([1, 7, 100]))
    dcfg = DataDriftConfig(enabled=True, reference_size=60, window_size=40, step=10, alpha=0.05,
                           max_features=rng.choice([3, 32]))

    ref_q, ref_d = DataQualityChecker("m", spec, qcfg), DataDriftMonitor("m", task, dcfg)
    q, d = DataQualityChecker("m", spec, qcfg), DataDriftMonitor("m", task, dcfg)
    split = restores = 0  # batches checked partly column by column, partly one by one; restores so far
    for a, b in cuts(rng, len(rows)):
        expected_valid, expected = [], []
        for i in range(a, b):
            ok, found = ref_q.check(InferenceEvent(f"e{i}", "m", 0.0, rows[i], preds[i]))
            expected_valid.append(ok)
            expected.extend((i, x.check, x.feature, x.evidence) for x in found)
            ref_d.add_inference(rows[i], ref_q.types, ok, preds[i], scores[i], pos[i])

        batch = rows[a:b]
        valid, issues, columns, first = q.check_many(batch)
        d.add_inferences(batch, columns, q.types, valid, preds[a:b], scores[a:b], pos[a:b])
        covered = sum(seg.stop - seg.start for seg in columns)
        split += 0 < covered < b - a - first
        assert all(x.stop <= y.start for x, y in zip(columns, columns[1:]))
        assert first == (columns[0].start if columns else b - a)

        assert valid == expected_valid
        assert [(a + i, x.check, x.feature, x.evidence) for i, x in issues] == expected
        assert orjson.dumps(q.to_state()) == orjson.dumps(ref_q.to_state())
        # in order of first appearance, by kind after a restore (see DataDriftMonitor.to_state)
        assert list(d.signals) == list(ref_d.signals) or (restores and d.signals.keys() == ref_d.signals.keys())
        for key, s in ref_d.signals.items():
            assert _values(d.signals[key]) == _values(s), key
            assert d.signals[key].positions == s.positions, key
        assert list(map(_finding, d.run_tests())) == list(map(_finding, ref_d.run_tests()))
        assert list(map(_finding, d.recoveries)) == list(map(_finding, ref_d.recoveries))
        assert orjson.dumps(d.to_state(), option=orjson.OPT_SERIALIZE_NUMPY) \
            == orjson.dumps(ref_d.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
        if rng.random() < 0.15:  # a restore: both continue from their state alone
            q2 = DataQualityChecker("m", spec, qcfg)
            q2.load_state(orjson.loads(orjson.dumps(q.to_state())))
            d2 = DataDriftMonitor("m", task, dcfg)
            d2.load_state(orjson.loads(orjson.dumps(d.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)))
            q, d, restores = q2, d2, restores + 1
    assert split > 0  # some batches were split, not all one by one


@pytest.mark.parametrize("where", [[0], [1], [63], [126], [127], [5, 6], [5, 7], [40, 90, 91, 92]])
def test_irregular_rows_at_the_edges_of_a_batch(where):
    """One batch of 128 rows, irregular ones at the given rows: only those go one by one."""
    rng = random.Random(1)
    rows = [regular(rng, []) for _ in range(128)]
    for k, i in enumerate(where):
        rows[i] = {key: v for key, v in rows[i].items() if key != ["count", "amount", "vip", "country"][k % 4]}
    q = DataQualityChecker("m", SPEC, DataQualityConfig(constant_window=5, rate_limit_events=3))
    ref = DataQualityChecker("m", SPEC, DataQualityConfig(constant_window=5, rate_limit_events=3))
    valid, issues, columns, first = q.check_many(rows)
    expected = [(i, x) for i, f in enumerate(rows) for x in [ref.check(InferenceEvent("e", "m", 0.0, f, 1))]]
    assert valid == [ok for _, (ok, _) in expected]
    assert [(i, x.check, x.feature, x.evidence) for i, x in issues] \
        == [(i, x.check, x.feature, x.evidence) for i, (_, found) in expected for x in found]
    assert orjson.dumps(q.to_state()) == orjson.dumps(ref.to_state())
    one_by_one = sorted(set(range(128)) - {i for seg in columns for i in range(seg.start, seg.stop)})
    least = quality.MIN_SEGMENT
    # rows between two irregular ones (or an edge) go one by one if there are fewer than the minimum
    bounds = [-1, *where, 128]
    short = [i for x, y in zip(bounds, bounds[1:]) if y - x - 1 < least for i in range(x + 1, y)]
    assert one_by_one == sorted(where + short)
