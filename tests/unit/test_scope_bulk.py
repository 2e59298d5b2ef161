"""The model stage's bulk paths are exactly its one-by-one paths: outcomes in columns on the wire (and the
layout before them read back), the challenger's add_many, runs of outcomes taken in bulk by the stage."""

from __future__ import annotations

import dataclasses
import functools
import random

import orjson
import pytest

from stream.champion import ChampionChallenger
from stream.config import ChallengerConfig, DataDriftConfig, ModelSpec, RetrainPolicyConfig
from stream.scope.stage import PER_OUTCOME_TRIGGERS, ModelStage, ScopeConfig
from stream.scope.summary import LABELS, SummaryBuilder, _LegacyOutcome, _LegacySummary, decode, encode
from tests.unit.scope.sim import interleave, partition_items, summaries, workload_events

SPEC = ModelSpec(
    data_drift=DataDriftConfig(reference_size=300, window_size=200, step=50),
    challenger=ChallengerConfig(window=500, min_pairs=100, every=50),
)
DETERMINISTIC = ScopeConfig(max_watermark_lag_seconds=0.0, incident_quiet_seconds=10.0)


def _outcome(k: int) -> tuple:
    return (100.0 + k, float(k % 3 == 0), None if k % 4 == 0 else 0.5, LABELS, 40 + k, f"e{k}", 70 - k, 40 + k,
            99.0 + k)


def test_outcomes_go_in_columns_one_by_one_or_together_and_read_back_whole():
    one, many = SummaryBuilder("m", 2, [3, 4]), SummaryBuilder("m", 2, [3, 4])
    rows = [_outcome(k) for k in range(7)]
    for o in rows:
        one.outcome(*o)
    many.outcomes(*map(list, zip(*rows[:3])))
    many.outcomes(*map(list, zip(*rows[3:])))
    a, b = one.build([80, 90], 150.0), many.build([80, 90], 150.0)
    assert a == b and decode(encode(a)) == a
    assert [tuple(o) for o in decode(encode(a)).outcomes] == rows  # offsets absolute again
    assert len(a.outcomes) == 7 and a.outcomes.offset[:2] == [40, 1]  # delta-encoded on the wire


def test_a_summary_in_the_layout_before_outcome_columns_is_read():
    b = SummaryBuilder("m", 1, [0, 0])
    rows = [_outcome(k) for k in range(5)]
    for o in rows:
        b.outcome(*o)
    b.label(101.0, 41, "x")
    new = b.build([60, 50], 120.0)
    old = _LegacySummary(new.model, new.partition, new.start, new.end, new.watermark,
                         [_LegacyOutcome(*o) for o in rows], new.rows, new.labels, new.evidence)
    assert decode(encode(old)) == new


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("window", [1, 7, 50])
def test_challenger_add_many_is_add_one_by_one(task, window):
    rng = random.Random(window)
    one, many = ChampionChallenger(task, window, 0.01, 2), ChampionChallenger(task, window, 0.01, 2)
    for _ in range(60):
        n = rng.randint(0, 2 * window + 3)
        if task == "classification":
            e0 = [float(rng.random() < 0.3) for _ in range(n)]
            e1 = [float(rng.random() < 0.2) for _ in range(n)]
        else:
            e0 = [rng.gauss(0, 1) for _ in range(n)]
            e1 = [rng.gauss(0, 1) for _ in range(n)]
        for x, y in zip(e0, e1):
            one.add(x, y)
        many.add_many(e0, e1)
        assert many.to_state() == one.to_state()
        assert (many._s0, many._s1, many._b, many._c) == (one._s0, one._s1, one._b, one._c)
        assert many.compare() == one.compare()


@functools.lru_cache(maxsize=None)
def _items(partitions: int, fractional: bool) -> list:
    ev = workload_events(3000, change_points=(1500,), feature_shift_at=(2400,), seed=5)
    u = lambda i: ((i * 2654435761) % 1000) / 1000  # noqa: E731 -- a deterministic draw per event
    parts = partition_items(ev, partitions, online_error=lambda i, s: float(u(i) < (0.1 if i > 1500 else 0.05)),
                            evidence_every=61)
    if fractional:  # served errors that are not whole numbers: per-partition sums depend on their order
        for items in parts:
            for it in items:
                if it.outcome is not None:
                    o = list(it.outcome)
                    o[1] = o[1] * 0.75 + u(int(o[5].rsplit("-", 1)[1])) / 7
                    it.outcome = tuple(o)
    return parts


def _run(spec: ModelSpec, partitions: int, fractional: bool, bulk: bool) -> tuple[list[bytes], bytes]:
    streams = [summaries("m", p, items, seed=3, max_batch=150) for p, items in enumerate(_items(partitions, fractional))]
    stage = ModelStage("m", spec, partitions, DETERMINISTIC)
    assert stage._bulk_outcomes == (not any(getattr(spec.retrain, f) > 0 for f in PER_OUTCOME_TRIGGERS))
    stage._bulk_outcomes = bulk and stage._bulk_outcomes
    out = []
    for k, s in enumerate(interleave(streams, seed=1)):
        if k % 37 == 5:
            stage.request()  # decided at the next merged outcome
        out += [orjson.dumps(dataclasses.asdict(o)) for o in stage.add(decode(encode(s)))]
    return out, orjson.dumps(stage.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)


@pytest.mark.parametrize("spec", [
    SPEC,
    dataclasses.replace(SPEC, task="regression"),
    dataclasses.replace(SPEC, challenger=ChallengerConfig(window=300, min_pairs=50, every=7)),
    dataclasses.replace(SPEC, retrain=RetrainPolicyConfig(cooldown_seconds=5.0)),
    dataclasses.replace(SPEC, retrain=RetrainPolicyConfig(every_labels=400, cooldown_seconds=0.0)),
], ids=["default", "regression", "challenger-every-7", "short-cooldown", "every-400-labels"])
@pytest.mark.parametrize("fractional", [False, True])
def test_runs_of_outcomes_in_bulk_give_the_outputs_and_state_of_one_by_one(spec, fractional):
    bulk_out, bulk_state = _run(spec, 4, fractional, bulk=True)
    one_out, one_state = _run(spec, 4, fractional, bulk=False)
    assert bulk_out == one_out
    assert bulk_state == one_state
    kinds = {orjson.loads(e)["event"]["type"] for e in one_out}
    assert "retrain" in kinds  # requests and alarms decided in between runs


def test_every_retrain_policy_setting_is_known_to_the_bulk_path():
    # a new trigger must be classified: per-outcome (the stage then replays outcomes one by one) or not
    input_driven = {"enabled", "on_concept_drift", "on_schema_change", "cooldown_seconds", "fallback_window_seconds",
                    "retrain_on_improvement", "one_retrain_per_episode", "performance_window"}
    fields = {f.name for f in dataclasses.fields(RetrainPolicyConfig)}
    assert fields == input_driven | set(PER_OUTCOME_TRIGGERS)


@pytest.mark.parametrize("seed", range(5))
def test_counting_a_long_run_column_by_column_is_counting_it_one_by_one(seed, monkeypatch):
    """The per-partition sums of a run long enough for numpy (``COLUMNAR_RUN``) are bit for bit those of the
    one-by-one loop: fractional errors (regression) whose float sum depends on the order of addition."""
    from stream.scope import stage as stage_mod

    rng = random.Random(seed)
    P = rng.choice([1, 3, 8, 32])
    m = rng.randint(stage_mod.COLUMNAR_RUN, 3000)
    ps = [rng.randrange(P) for _ in range(m)]
    served = [rng.random() * 10 ** rng.randint(-3, 3) for _ in range(m)]
    ioffs = [rng.randrange(10 ** 6) for _ in range(m)]
    loffs = [rng.randrange(10 ** 6) for _ in range(m)]
    start = [[rng.randrange(100), rng.random() * 100] for _ in range(P)]
    columnar = [list(c) for c in start]
    top = stage_mod._count_per_partition(columnar, ps, served, ioffs, loffs)
    monkeypatch.setattr(stage_mod, "COLUMNAR_RUN", 10 ** 9)
    one = [list(c) for c in start]
    assert stage_mod._count_per_partition(one, ps, served, ioffs, loffs) == top
    assert columnar == one and all(type(a) is type(b) for x, y in zip(columnar, one) for a, b in zip(x, y))
