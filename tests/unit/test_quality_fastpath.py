"""Hand-made batches at the edges of the column-wise data-quality pass: which batches take the columnar
path and which fall back to event by event, and that both give exactly what the per-event reference gives
(validity, issues in order with their evidence, checker state, data-drift buffers)."""

from __future__ import annotations

import math
import random

import pytest

from stream.config import DataDriftConfig, DataQualityConfig, FeatureSpec
from stream.datadrift import DataDriftMonitor, Position
from stream.events import InferenceEvent
from stream import quality
from stream.quality import DataQualityChecker

SPEC = {
    "amount": FeatureSpec("numeric", nullable=False, min=0.0, max=10.0),
    "count": FeatureSpec("numeric", min=0, max=5),
    "country": FeatureSpec("categorical", categories=("DE", "FR")),
    "vip": FeatureSpec("boolean"),
}
OK = {"amount": 1.0, "count": 3, "country": "DE", "vip": False}


def same_as_per_event(spec, batches, cfg=None, task="classification"):
    """Run ``batches`` through check_many + add_inferences and the same rows event by event; assert equal
    results; return per batch whether it went column by column (but for an undeclared model's first rows,
    which fix its types): in one segment that ends the batch (see :func:`segments_of`)."""
    return [len(segs) == 1 and segs[0][1] == len(rows)
            for segs, rows in zip(segments_of(spec, batches, cfg, task), batches)]


def segments_of(spec, batches, cfg=None, task="classification"):
    """:func:`same_as_per_event`, returning per batch its segments checked column by column, as (start,
    stop) rows; the other rows went one by one."""
    cfg = cfg or DataQualityConfig(constant_window=3, rate_limit_events=1)
    dcfg = DataDriftConfig(enabled=True)
    ref_q, ref_d = DataQualityChecker("m", spec, cfg), DataDriftMonitor("m", task, dcfg)
    q, d = DataQualityChecker("m", spec, cfg), DataDriftMonitor("m", task, dcfg)
    n, columnar = 0, []
    for rows in batches:
        pos = [Position("inference", n + i, float(n + i), f"e{n + i}") for i in range(len(rows))]
        preds = [i % 2 for i in range(len(rows))]
        scores = [0.5 if i % 3 else None for i in range(len(rows))]
        expected_valid, expected = [], []
        for i, f in enumerate(rows):
            ok, found = ref_q.check(InferenceEvent(f"e{n + i}", "m", 0.0, f, preds[i]))
            expected_valid.append(ok)
            expected.extend((i, x.check, x.feature, x.evidence) for x in found)
            ref_d.add_inference(f, ref_q.types, ok, preds[i], scores[i], pos[i])
        valid, issues, columns, first = q.check_many(rows)
        d.add_inferences(rows, columns, q.types, valid, preds, scores, pos)
        assert valid == expected_valid
        assert [(i, x.check, x.feature, x.evidence) for i, x in issues] == expected
        assert q.to_state() == ref_q.to_state()
        columnar.append([(seg.start, seg.stop) for seg in columns])
        n += len(rows)
    assert list(d.signals) == list(ref_d.signals)
    for key, s in ref_d.signals.items():
        got = d.signals[key]
        assert [(type(v), v) for v in got.values] == [(type(v), v) for v in s.values] or _nan_equal(got.values, s.values)
        assert got.positions == s.positions, key
    return columnar


def _nan_equal(a, b):
    return len(a) == len(b) and all(type(x) is type(y) and (x == y or (x != x and y != y)) for x, y in zip(a, b))


@pytest.mark.parametrize("bad, alone", [
    ({}, None),
    ({"amount": None}, None),                       # null: a column may hold nulls
    ({"count": None, "country": None}, None),
    ({"extra": 1.0}, "segment"),                    # one key too many: a segment of its own key set
    ({"drop": "count"}, "one"),                     # one key missing: checked on its own
    ({"drop": "count", "extra": 1}, "one"),         # as many keys as declared, but not the declared ones
    ({"count": True}, "one"),                       # a bool in a numeric feature is a wrong type
    ({"vip": 1}, "one"),                            # an int in a boolean feature too
    ({"count": 2.0}, "one"),                        # ints and floats in one column: another Python type
    ({"count": 2**64 - 1}, None),                   # a huge int is an int
    ({"amount": 2**64 - 1}, "one"),                 # but not a float
    ({"amount": "1.0"}, "one"),
    ({"country": 7}, "one"),
    ({"amount": math.nan}, None),                   # NaN is a float: in range, and never equal to itself
    ({"amount": -0.0}, None),                       # equal to 0.0
    ({"reorder": True}, None),                      # same keys in another order
])
@pytest.mark.parametrize("where", [0, 3, 7])
def test_a_bad_row_decides_the_path_and_results_do_not_change(bad, alone, where, monkeypatch):
    """Rows around an irregular one are still checked column by column: the irregular row alone (one by
    one, or a segment of its own key set), here with segments as short as one row."""
    monkeypatch.setattr(quality, "MIN_SEGMENT", 1)
    rows = [dict(OK) for _ in range(8)]
    row = dict(OK)
    if "drop" in bad:
        del row[bad["drop"]]
    if bad.get("reorder"):
        row = dict(reversed(list(row.items())))
    row.update({k: v for k, v in bad.items() if k not in ("drop", "reorder")})
    rows[where] = row
    rows[5] = {**rows[5], "amount": 11.0, "country": "XX"}  # two issues in one row: their order
    around = [(a, b) for a, b in [(0, where), (where + 1, 8)] if a < b]
    expected = {None: [(0, 8)], "one": around, "segment": sorted(around + [(where, where + 1)])}[alone]
    assert segments_of(SPEC, [rows, [dict(OK) for _ in range(4)]]) == [expected, [(0, 4)]]


@pytest.mark.parametrize("where", [0, 2, 5, 6, 9])
def test_pieces_shorter_than_the_minimum_go_one_by_one(where):
    rows = [dict(OK) for _ in range(10)]
    rows[where] = {**OK, "count": True}
    expected = [(a, b) for a, b in [(0, where), (where + 1, 10)] if b - a >= quality.MIN_SEGMENT]
    assert segments_of(SPEC, [rows]) == [expected]
    # a batch shorter than the minimum is still one segment
    assert segments_of(SPEC, [[dict(OK)], [dict(OK), dict(OK)]]) == [[(0, 1)], [(0, 2)]]


def test_issues_within_a_row_follow_that_rows_key_order():
    a = {"amount": -1.0, "count": 9, "country": "XX", "vip": True}
    b = dict(reversed(list(a.items())))
    c = {"count": 9, "vip": True, "amount": 20.0, "country": "YY"}
    assert same_as_per_event(SPEC, [[a, b, c, b, a]], DataQualityConfig(constant_window=2, rate_limit_events=1)) \
        == [True]


@pytest.mark.parametrize("features", [{"x": 1.5}, {}])
def test_one_feature_and_no_feature_models(features):
    rows = [dict(features) for _ in range(6)]
    batches = [rows[:1], rows[1:4], rows[4:], [{"x": 2.0, "y": 1}] if features else [{"y": 1}], [{"y": 1}]]
    # the same unexpected feature in every row of a batch: column by column too; missing ones: event by event
    assert same_as_per_event({}, batches) == [False, True, True, True, not features]
    spec = {k: FeatureSpec("numeric") for k in features}
    assert same_as_per_event(spec, [rows, [{"x": "a"}] if features else [{"y": 1}]]) == [True, not features]


def test_a_batch_whose_numeric_column_is_all_null():
    """A nullable feature that is null in every event of a batch, after its signal exists (this crashed
    add_inferences: it looked at the type of the first non-null value)."""
    spec = {"amount": FeatureSpec("numeric"), "count": FeatureSpec("numeric"), "country": FeatureSpec("categorical")}
    row = {"amount": 1.0, "count": 2, "country": "DE"}
    nulls = [{"amount": None, "count": None, "country": None} for _ in range(3)]
    assert same_as_per_event(spec, [[row, row], nulls, [row]]) == [True, True, True]
    assert same_as_per_event({}, [[row, row], nulls, [row]]) == [True, True, True]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 40, 500])
@pytest.mark.parametrize("seed", range(4))
def test_constant_runs_across_batches(window, seed):
    """Long runs of equal values (floats with NaN and -0.0, ints, strings) cut into batches shorter and
    longer than the window: runs that start, continue and reach the window in any batch."""
    rng = random.Random(seed)
    values = {"f": [1.0, 2.0, -0.0, 0.0, math.nan], "i": [1, 2, 3], "s": ["a", "b"]}
    rows, current = [], {}
    while len(rows) < 3000:
        for k, vs in values.items():
            if rng.random() < 0.02 or k not in current:
                current[k] = rng.choice(vs)
        rows.append(dict(current) if rng.random() > 0.01 else {**current, "f": None})
    batches, i = [], 0
    while i < len(rows):
        k = rng.choice([1, 2, 7, 60, 250, 700])
        batches.append(rows[i:i + k])
        i += k
    cfg = DataQualityConfig(constant_window=window, rate_limit_events=rng.choice([1, 50]))
    spec = {"f": FeatureSpec("numeric", min=-1.0, max=1.5), "i": FeatureSpec("numeric", min=1, max=2),
            "s": FeatureSpec("categorical", categories=("a",))}
    assert all(same_as_per_event(spec, batches, cfg))
    # the first event fixes the types, so a first batch of one event goes event by event
    assert same_as_per_event({}, batches, cfg)[1:] == [True] * (len(batches) - 1)


def test_out_of_range_with_nan_first_or_later():
    spec = {"f": FeatureSpec("numeric", min=0.0, max=1.0), "g": FeatureSpec("numeric", max=1.0),
            "h": FeatureSpec("numeric", min=0.0)}
    col = [math.nan, 0.5, -1.0, math.nan, 2.0, 0.5]
    rows = [{"f": v, "g": v, "h": v} for v in col]
    cfg = DataQualityConfig(constant_window=100, rate_limit_events=1)
    assert same_as_per_event(spec, [rows, rows[::-1], rows[1:2] + rows[3:4]], cfg) == [True, True, True]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_scores_and_predictions_with_and_without_nulls(task):
    rows = [dict(OK) for _ in range(9)]
    assert all(same_as_per_event(SPEC, [rows, rows[:4], rows[:1]], task=task))
