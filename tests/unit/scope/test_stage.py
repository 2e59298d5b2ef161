"""Model-scope stage: determinism under any arrival interleaving, replays, state round trips, bounded lag,
and the issue's target at the pure level (1 vs 32 partitions)."""

from __future__ import annotations

import dataclasses
import functools
import math
import random
import zlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config import ChallengerConfig, DataDriftConfig, ModelSpec
from stream.scope.stage import ModelStage, ScopeConfig
from stream.scope.summary import Summary, decode, encode
from tests.unit.scope.sim import interleave, partition_items, resume_point, summaries, workload_events

T0 = 1_700_000_000.0
SPACING = 0.01

SMALL_SPEC = ModelSpec(
    data_drift=DataDriftConfig(reference_size=300, window_size=200, step=50),
    challenger=ChallengerConfig(window=500, min_pairs=100, every=50),
)
DETERMINISTIC = ScopeConfig(max_watermark_lag_seconds=0.0, incident_quiet_seconds=10.0)


def _online_error(i: int, served: float) -> float:
    # a challenger that is better than the served model after the change (deterministic per event)
    u = (zlib.crc32(str(i).encode()) % 10_000) / 10_000
    return float(u < (0.08 if i >= 3000 else 0.06))


@functools.lru_cache(maxsize=None)
def _items(partitions: int) -> list:
    ev = workload_events(6000, change_points=(3000,), feature_shift_at=(4500,), seed=11)
    return partition_items(ev, partitions, online_error=_online_error, evidence_every=97)


def _run(stage: ModelStage, arrivals: list[Summary], wire: bool = True) -> list[dict]:
    out = []
    for s in arrivals:
        out += [dataclasses.asdict(o) for o in stage.add(decode(encode(s)) if wire else s)]
    return out


def _stage(partitions: int, cfg: ScopeConfig = DETERMINISTIC) -> ModelStage:
    return ModelStage("fraud", SMALL_SPEC, partitions, cfg)


def _streams(partitions: int, cut_seed: int, max_batch: int = 300) -> list[list[Summary]]:
    return [summaries("fraud", p, items, seed=cut_seed, max_batch=max_batch)
            for p, items in enumerate(_items(partitions))]


@functools.lru_cache(maxsize=None)
def _reference(partitions: int) -> tuple[str, ...]:
    streams = _streams(partitions, cut_seed=0)
    # round robin arrival
    longest = max(len(s) for s in streams)
    arrivals = []
    for k in range(longest):
        arrivals += [s[k] for s in streams if k < len(s)]
    return tuple(orjson.dumps(e).decode() for e in _run(_stage(partitions), arrivals))


def test_reference_run_has_every_kind_of_output():
    kinds = {(e["topic"], e["event"]["type"], e["event"].get("kind")) for e in map(orjson.loads, _reference(4))}
    assert ("drift_events", "drift", "concept") in kinds
    assert ("drift_events", "drift", "feature") in kinds
    assert ("retrain_events", "retrain", None) in kinds
    assert ("model_updates", "challenger-better", None) in kinds
    for e in map(orjson.loads, _reference(4)):
        assert e["event"]["scope"] == "model"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions=st.sampled_from([1, 3, 4, 8]), cut_seed=st.integers(0, 10_000),
       order_seed=st.integers(0, 10_000), max_batch=st.sampled_from([1, 7, 64, 300, 2000]))
def test_outputs_do_not_depend_on_cuts_or_arrival_interleaving(partitions, cut_seed, order_seed, max_batch):
    arrivals = interleave(_streams(partitions, cut_seed, max_batch), order_seed)
    got = tuple(orjson.dumps(e).decode() for e in _run(_stage(partitions), arrivals))
    assert got == _reference(partitions)


def test_one_partition_and_many_give_the_same_decisions():
    # same items in the same event-time order: only positions (partition, offset) and ids may differ
    def decisions(p):
        return [(e["topic"], e["event"]["type"], e["event"].get("kind"), e["event"].get("signal"),
                 e["event"]["ts"]) for e in map(orjson.loads, _reference(p))]

    assert decisions(1) == decisions(4) == decisions(8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions=st.sampled_from([2, 4]), data=st.data())
def test_replays_and_duplicates_change_nothing(partitions, data):
    streams = []
    for p, items in enumerate(_items(partitions)):
        original = summaries("fraud", p, items, seed=0)
        # the pipeline crashed after emitting summaries [0, b) and resumes from the checkpoint after a <= b
        b = data.draw(st.integers(0, len(original)), label=f"crash_{p}")
        a = data.draw(st.integers(0, b), label=f"checkpoint_{p}")
        k = _covered(items, original[:a])  # items covered by original[:a]
        replay = summaries("fraud", p, items, seed=data.draw(st.integers(1, 99), label=f"recut_{p}"), start=k,
                           start_offsets=resume_point(items, k))
        stream = original[:b] + replay
        if stream and data.draw(st.booleans(), label=f"dup_{p}"):  # an exact duplicate delivery too
            j = data.draw(st.integers(0, len(stream) - 1))
            stream.insert(j + 1, stream[j])
        streams.append(stream)
    arrivals = interleave(streams, data.draw(st.integers(0, 10_000), label="order"))
    stage = _stage(partitions)
    got = tuple(orjson.dumps(e).decode() for e in _run(stage, arrivals))
    assert got == _reference(partitions)


def _covered(items, sums: list[Summary]) -> int:
    if not sums:
        return 0
    end = sums[-1].end
    return sum(1 for it in items if it.offset < end[it.topic])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(partitions=st.sampled_from([1, 4]), cut=st.floats(0.0, 1.0), order_seed=st.integers(0, 1000))
def test_state_round_trips_exactly_at_any_cut(partitions, cut, order_seed):
    arrivals = interleave(_streams(partitions, cut_seed=5), order_seed)
    k = int(cut * len(arrivals))
    first = _stage(partitions)
    before = _run(first, arrivals[:k])
    blob = orjson.dumps(first.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
    second = _stage(partitions)
    second.load_state(orjson.loads(blob))
    assert orjson.dumps(second.to_state(), option=orjson.OPT_SERIALIZE_NUMPY) == blob
    after = _run(second, arrivals[k:])
    got = tuple(orjson.dumps(e).decode() for e in before + after)
    assert got == _reference(partitions)


def test_state_of_another_model_or_partition_count_is_refused():
    s = _stage(4).to_state()
    with pytest.raises(ValueError):
        _stage(3).load_state(s)
    with pytest.raises(ValueError):
        ModelStage("other", SMALL_SPEC, 4).load_state(s)


def test_a_summary_of_another_model_is_refused():
    s = _streams(1, 0)[0][0]
    with pytest.raises(ValueError):
        ModelStage("other", SMALL_SPEC, 1).add(s)


# -- bounded watermark lag ------------------------------------------------------------------------------------
def _idle_after(partitions: int, idle: int, seconds: float):
    """Summaries where partition ``idle`` goes silent after ``seconds`` of event time."""
    streams = _streams(partitions, cut_seed=2, max_batch=50)  # a summary spans < 1.2 s of event time
    streams[idle] = [s for s in streams[idle] if s.watermark is not None and s.watermark < T0 + seconds]
    return streams


def test_an_idle_partition_holds_the_model_back_forever_without_a_lag_bound():
    streams = _idle_after(4, idle=3, seconds=10.0)
    stage = _stage(4)
    _run(stage, interleave(streams, 1))
    st_ = stage.status()
    assert st_["watermark"] is not None and st_["watermark"] < T0 + 10.0
    assert 3 in st_["holding"] and st_["holding"][3] > 40.0  # reported: partition 3 holds decisions back
    assert st_["forced"] == []
    assert st_["buffered_items"] > 10_000  # nothing past partition 3's watermark was decided


@pytest.mark.parametrize("lag", [5.0, 20.0])
def test_an_idle_partition_holds_the_model_back_by_at_most_the_lag_bound(lag):
    streams = _idle_after(4, idle=3, seconds=10.0)
    stage = _stage(4, ScopeConfig(max_watermark_lag_seconds=lag, incident_quiet_seconds=10.0))
    top = 0.0
    # the live partitions progress together (arrival by event time); partition 3 stops after 10 s
    for s in sorted((s for stream in streams for s in stream), key=lambda s: s.watermark):
        stage.add(s)
        top = max(top, s.watermark or 0.0)
        wm = stage.status()["watermark"]
        # released up to the most advanced partition minus the bound, never later
        if stage.merge.watermarks[3] is not None and top - lag > stage.merge.watermarks[3]:
            assert wm == pytest.approx(top - lag)
    status = stage.status()
    assert 3 in status["forced"] and status["holding"] == {3: pytest.approx(top - stage.merge.watermarks[3])}
    assert stage.merge.late == 0  # the idle partition sent nothing late
    # everything older than top - lag was decided
    assert all(item[0] > top - lag for item in stage.merge.buffered)


def test_items_of_a_partition_that_comes_back_after_the_bound_are_late_and_counted():
    streams = _streams(2, cut_seed=3)
    stage = _stage(2, ScopeConfig(max_watermark_lag_seconds=5.0))
    for s in streams[0]:
        stage.add(s)
    assert stage.status()["forced"] == [1]
    for s in streams[1]:
        stage.add(s)
    assert stage.merge.late > 0
    assert stage.status()["late"] == stage.merge.late


# -- the target at the pure level ---------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _demo(partitions: int) -> list[dict]:
    ev = workload_events(60_000, change_points=(20_000, 40_000), feature_shift_at=(50_000,), concepts=2)
    items = partition_items(ev, partitions)
    streams = [summaries("fraud", p, it, seed=partitions) for p, it in enumerate(items)]
    stage = ModelStage("fraud", ModelSpec(), partitions,
                       ScopeConfig(max_watermark_lag_seconds=0.0))
    return [o.event | {"_topic": o.topic} for o in stage.add_many(interleave(streams, partitions))]


def _index(e: dict) -> int:
    if e.get("event_id"):
        return int(e["event_id"].rsplit("-", 1)[1])
    return round((e["ts"] - T0) / SPACING)


@pytest.mark.parametrize("partitions", [32])
def test_demo_workload_split_over_32_partitions_decides_as_one(partitions):
    results = {}
    for p in (1, partitions):
        events = _demo(p)
        concept = [e for e in events if e["_topic"] == "drift_events" and e["kind"] == "concept"]
        feature = [e for e in events if e["_topic"] == "drift_events" and e["kind"] == "feature"]
        retrain = [e for e in events if e["_topic"] == "retrain_events"]
        assert all(e["scope"] == "model" for e in events)
        # 0 false alarms before the first change; exactly one concept incident per true change
        assert [e for e in events if e["_topic"] == "drift_events" and _index(e) < 20_000] == []
        assert sum(1 for e in concept if 20_000 <= _index(e) < 40_000) == 1
        assert sum(1 for e in concept if _index(e) >= 40_000) == 1
        assert len(concept) == 2
        # one feature-drift incident per drifted signal (amount), after the shift
        assert [(e["signal"], _index(e) >= 50_000) for e in feature] == [("amount", True)]
        assert len(retrain) == 1
        assert set(retrain[0]["window"]["partitions"]) == {str(i) for i in range(p)}
        delays = [min(_index(e) for e in concept if _index(e) >= c) - c for c in (20_000, 40_000)]
        delays.append(_index(feature[0]) - 50_000)
        results[p] = delays
    print("first-detection delays (change 1, change 2, feature shift):", results)
    for one, many in zip(results[1], results[partitions]):
        assert many <= 1.2 * one


# -- the retrain window ------------------------------------------------------------------------------------------
def test_retrain_window_covers_every_partition_from_the_change_point_to_the_decision():
    retrain = [orjson.loads(e)["event"] for e in _reference(4) if '"type":"retrain"' in e]
    assert retrain
    for ev in retrain:
        w = ev["window"]
        assert set(w["partitions"]) == {"0", "1", "2", "3"}
        assert w["from"]["ts"] <= w["to"]["ts"] == ev["ts"]
        for p, span in w["partitions"].items():
            for key in ("inference_offset", "labels_offset"):
                frm, to = span["from"][key], span["to"][key]
                assert to is not None and (frm is None or frm <= to), (p, key, span)
        if w["source"] == "change_point":
            assert all(span["from"]["inference_offset"] is not None for span in w["partitions"].values())
