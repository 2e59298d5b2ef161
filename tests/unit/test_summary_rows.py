"""The summary's data-drift rows built column by column (SummaryBuilder.rows, and ModelPipeline's use of it
on the data-quality segments) against the row-by-row reference (SummaryBuilder.row): on random batches with
missing features, features first seen mid-batch, nulls, invalid rows, scores present / absent / partly,
booleans, ints, floats and categorical values, the encoded summaries are the same bytes."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry

from stream.config import DataQualityConfig, FeatureSpec, ModelSpec, OnlineModelConfig, load_config
from stream.events import InferenceEvent, Record
from stream.metrics import Metrics
from stream.model import ModelPipeline, PartitionContext
from stream.quality import DataQualityChecker
from stream.scope.summary import SummaryBuilder, encode
from tests.fakes import MemoryPublisher

SPEC = {
    "amount": FeatureSpec("numeric", min=0.0, max=10.0),
    "count": FeatureSpec("numeric", min=0, max=5),
    "country": FeatureSpec("categorical", categories=("DE", "FR")),
    "vip": FeatureSpec("boolean"),
}
TYPES = {"amount": "numeric", "count": "numeric", "country": "categorical", "vip": "boolean", "late": None}


def random_features(rng: random.Random, i: int, odd: float) -> dict:
    f = {
        "amount": rng.choice([1.0, 2.5, 0.0, 11.0, None]) if rng.random() < 0.3 else 1.5,
        "count": rng.choice([0, 1, 3, 7, None]) if rng.random() < 0.3 else 2,
        "country": rng.choice(["DE", "FR", "XX", None]) if rng.random() < 0.3 else "DE",
        "vip": rng.random() < 0.5,
    }
    if i > 40 and rng.random() < 0.2:
        f["late"] = rng.choice([1.0, "a", None])  # an unexpected feature first seen mid-batch
    if rng.random() < odd:
        kind = rng.randrange(5)
        if kind == 0:
            del f[rng.choice(list(f))]  # a missing feature
        elif kind == 1:
            f[f"new{rng.randrange(3)}"] = rng.choice([True, 3, "z"])
        elif kind == 2:
            f["amount"] = "12"  # wrong type
        elif kind == 3:
            f["count"] = 2.0
        else:
            f = dict(reversed(list(f.items())))  # same keys, another order
    return f


def random_score(rng: random.Random, mode: str) -> float | None:
    if mode == "none":
        return None
    if mode == "all":
        return rng.random()
    return rng.random() if rng.random() < 0.3 else None


def runs_of_one_key_set(rows: list[dict], rng: random.Random) -> list[tuple[int, int]]:
    """Random cuts of rows 0.. into pieces of rows with one key set (one key order or not); a piece of one
    row may go either way."""
    out, a = [], 0
    while a < len(rows):
        b = a + 1
        while b < len(rows) and rows[b].keys() == rows[a].keys() and rng.random() < 0.95:
            b += 1
        out.append((a, b))
        a = b
    return out


@pytest.mark.parametrize("seed", range(20))
def test_rows_builds_the_bytes_row_builds(seed):
    rng = random.Random(seed)
    ref, got = SummaryBuilder("m", 3, [0, 0]), SummaryBuilder("m", 3, [0, 0])
    offset = rng.randrange(10**6)
    for batch in range(4):
        n = rng.choice([1, 2, 7, 64, 300])
        mode = rng.choice(["none", "all", "some", "late"])
        feats, ts, offs, valid, preds, scores = [], [], [], [], [], []
        for i in range(n):
            feats.append(random_features(rng, i, rng.choice([0.0, 0.05, 0.3])))
            ts.append(100.0 + offset + rng.random())
            offset += rng.choice([1, 1, 1, 2, 300])
            offs.append(offset)
            valid.append(rng.random() < 0.9)
            preds.append(rng.choice([0, 1, "cat", True, 2.5]))
            scores.append(random_score(rng, mode) if mode != "late" or i > n // 2 else None)
        for i in range(n):
            ref.row(ts[i], offs[i], valid[i], feats[i], TYPES, preds[i], scores[i])
        for a, b in runs_of_one_key_set(feats, rng):
            if b - a == 1 and rng.random() < 0.5:
                got.row(ts[a], offs[a], valid[a], feats[a], TYPES, preds[a], scores[a])
                continue
            # the columns in some key order (a segment's may not be its first row's), tuples or lists
            keys = list(feats[a])
            rng.shuffle(keys)
            cols = {k: tuple(f[k] for f in feats[a:b]) for k in keys}
            got.rows(ts[a:b], offs[a:b], valid[a:b], cols, TYPES, preds[a:b], scores[a:b], feats[a])
        end, wm = [offset + 1, batch], rng.choice([None, 5.0])
        assert encode(got.build(end, wm)) == encode(ref.build(end, wm))


def test_rows_creates_new_features_in_the_first_rows_key_order_and_the_score_where_row_would():
    ref, got = SummaryBuilder("m", 0, [0, 0]), SummaryBuilder("m", 0, [0, 0])
    types = {"a": "numeric", "b": "categorical"}
    ref.row(1.0, 10, True, {"a": 1.0}, types, 1, None)
    got.row(1.0, 10, True, {"a": 1.0}, types, 1, None)
    rows = [{"c": True, "b": "x", "a": None}, {"a": 2.0, "b": None, "c": False}, {"b": "y", "c": True, "a": 3.0}]
    for i, f in enumerate(rows):
        ref.row(2.0 + i, 11 + i, i != 1, f, types, 0, None if i < 2 else 0.5)
    got.rows([2.0, 3.0, 4.0], [11, 12, 13], [True, False, True], {"a": (None, 2.0, 3.0), "b": ("x", None, "y"),
             "c": (True, False, True)}, types, [0, 0, 0], [None, None, 0.5], rows[0])
    ref.row(5.0, 20, True, {}, types, 1, None)
    got.rows([5.0], [20], [True], {}, types, [1], [None])
    a, b = ref.build([21, 0], None), got.build([21, 0], None)
    assert list(b.rows.features) == ["a", "c", "b"] and list(b.rows.types) == ["a", "b"]
    assert b.rows.score == [None, None, None, 0.5, None]
    assert encode(a) == encode(b)


def _pipeline(declared: bool, quality: bool) -> ModelPipeline:
    cfg = load_config(None, {})
    spec = ModelSpec(features=SPEC if declared else {}, online_model=OnlineModelConfig(enabled=False),
                     data_quality=DataQualityConfig(enabled=quality, constant_window=50, rate_limit_events=5))
    ctx = PartitionContext(0, cfg.topics, MemoryPublisher(), Metrics(CollectorRegistry()), summaries=[].append)
    return ModelPipeline("m", spec, ctx)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("quality", [True, False])
def test_model_pipeline_summary_rows_equal_row_by_row(seed, declared, quality):
    """check_quality's summary (segments column by column, the rest one by one) against row() on every
    event with the validity the same checks give; the columnar path is taken on most batches."""
    rng = random.Random(seed)
    pipe = _pipeline(declared, quality)
    twin = DataQualityChecker("m", dict(pipe.spec.features), pipe.spec.data_quality)
    ref = SummaryBuilder("m", 0, [0, 0])
    offset, segmented = 0, 0
    for batch in range(6):
        n = rng.choice([1, 3, 5, 40, 256])
        odd = rng.choice([0.0, 0.02, 0.2])
        mode = rng.choice(["none", "all", "some", "late"])
        evs = []
        for i in range(n):
            score = random_score(rng, mode) if mode != "late" or i > n // 2 else None
            evs.append(InferenceEvent(f"e{offset}", "m", 50.0 + offset, random_features(rng, i, odd),
                                      rng.choice([0, 1]), score))
            pipe.on_inference(Record("inference", 0, offset, 0, None, b""), evs[-1], offset)
            offset += 1
        pipe.check_quality()
        if quality:
            valid, _, segments, _ = twin.check_many([ev.features for ev in evs])
            segmented += bool(segments)
        else:
            valid = [True] * n
        for ev, ok in zip(evs, valid):
            ref.row(ev.ts, int(ev.id[1:]), ok, ev.features, twin.types, ev.prediction, ev.score)
        end = [offset, 0]
        assert encode(pipe.batch_summary.build(end, None)) == encode(ref.build(end, None))
    assert not quality or segmented >= 3
