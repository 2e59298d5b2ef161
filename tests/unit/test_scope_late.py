"""Items later than the watermark lag bound (issue 17): a partition slow beyond
``scope.max_watermark_lag_seconds`` sends items of event times the model stage already decided without it.

What happens (stream/scope/merge.py): each such item is taken at the event time already decided (after
everything decided, in (partition, topic, offset) order within its release), counted per model and input
partition, and each *episode* (from the partition's first late item until its watermark reaches what was
decided) is reported once as a ``late_partition`` data-quality event naming the partition, its oldest late
item and how late it was. A replay from any checkpoint gives the same outputs."""

from __future__ import annotations

import dataclasses
import functools

import orjson
import pytest

from stream.config import ChallengerConfig, DataDriftConfig, ModelSpec, load_config
from stream.scope.service import ScopeService, _Owned
from stream.scope.stage import ModelStage, ScopeConfig
from stream.scope.summary import INFERENCE, LABELS, Summary, undelta
from tests import fakes
from tests.unit.scope.sim import partition_items, summaries, workload_events

SPEC = ModelSpec(data_drift=DataDriftConfig(reference_size=300, window_size=200, step=50),
                 challenger=ChallengerConfig(window=500, min_pairs=100, every=50))
LAG = 5.0
SCOPE = ScopeConfig(max_watermark_lag_seconds=LAG, incident_quiet_seconds=10.0, idle_partition_seconds=0.0)
T0 = 1_700_000_000.0


@functools.lru_cache(maxsize=None)
def _streams() -> list[list[Summary]]:
    ev = workload_events(6000, change_points=(3000,), feature_shift_at=(4500,), seed=11)
    items = partition_items(ev, 2, online_error=lambda i, served: float(i % 11 == 0), evidence_every=97)
    return [summaries("fraud", p, it, seed=3, max_batch=60) for p, it in enumerate(items)]


def _arrivals(lapses: tuple[tuple[float, float], ...]) -> list[Summary]:
    """Both partitions in step (by watermark), except that partition 1 holds back its summaries of each lapse
    ``(from, to)`` (seconds after T0) and sends them at once when partition 0 has reached ``to``."""
    a, b = _streams()
    out: list[Summary] = []
    held: list[tuple[float, Summary]] = []
    for s in sorted(a + b, key=lambda s: (s.watermark, s.partition)):
        lapse = next(((lo, hi) for lo, hi in lapses if lo <= s.watermark - T0 < hi), None)
        if s.partition == 1 and lapse is not None:
            held.append((lapse[1], s))
            continue
        out.append(s)
        while held and s.partition == 0 and s.watermark - T0 >= held[0][0]:
            out.append(held.pop(0)[1])
    return out + [s for _, s in held]


def _run(arrivals: list[Summary], stage: ModelStage | None = None) -> list[list[dict]]:
    stage = stage or ModelStage("fraud", SPEC, 2, SCOPE)
    return [[dataclasses.asdict(o) for o in stage.add(s)] for s in arrivals]


LAPSES = ((10.0, 20.0), (35.0, 45.0))


def _late_events(outs: list[list[dict]]) -> list[dict]:
    return [o["event"] for batch in outs for o in batch if o["event"].get("check") == "late_partition"]


def test_each_episode_of_a_late_partition_is_reported_once_with_how_late_it_came():
    arrivals = _arrivals(LAPSES)
    assert sorted(map(id, arrivals)) == sorted(id(s) for st in _streams() for s in st)  # each summary once
    stage = ModelStage("fraud", SPEC, 2, SCOPE)
    reports = []
    for s in arrivals:
        decided = stage.merge.released
        outs = stage.add(s)
        late = [o for o in outs if o.event.get("check") == "late_partition"]
        if late:
            assert outs[:len(late)] == late  # before what the summary's release decides
            (o,) = late
            assert o.topic == "data_quality" and s.partition == 1
            ev = o.event
            # its oldest late item: the earliest of the summary's items at or before what was decided
            items = [(o_.ts, o_.topic, o_.offset) for o_ in s.outcomes]
            items += [(ts, INFERENCE, off) for ts, off in zip(s.rows.ts, undelta(s.rows.offsets))]
            items += [(ts, LABELS, off) for ts, off in zip(s.labels.ts, undelta(s.labels.offsets))]
            items += [(e.ts, e.topic, e.offset) for e in s.evidence]
            late_items = sorted(i for i in items if i[0] <= decided)
            ts, topic, offset = late_items[0]
            assert ev == {
                "id": f"scope:fraud:{('inference', 'labels')[topic]}:1:{offset}:late", "type": "data-quality",
                "scope": "model", "check": "late_partition", "feature": "*", "severity": "warning", "model": "fraud",
                "partition": 1, "topic": ("inference", "labels")[topic], "offset": offset, "ts": ts,
                "evidence": {"late_seconds": decided - ts, "decided_until": decided, "late_items": len(late_items),
                             "max_watermark_lag_seconds": LAG}}
            # the partition was slow beyond the bound: up to the lapse's length minus the bound
            assert 10.0 - LAG - 1.5 < ev["evidence"]["late_seconds"] <= 10.0 - LAG + 1.5
            reports.append(ev)
    assert len(reports) == len(LAPSES)  # one per episode, not one per late summary
    assert stage.merge.late > sum(r["evidence"]["late_items"] for r in reports)  # later summaries were late too
    assert stage.merge.late_episodes == [None, None]  # both episodes ended when partition 1 caught up


def test_late_items_are_taken_after_what_was_decided_so_decisions_never_go_back_in_event_time():
    outs = _run(_arrivals(LAPSES))
    decisions = [o["event"] for batch in outs for o in batch if o["topic"] in ("drift_events", "retrain_events")]
    assert len(decisions) >= 3
    ts = [e["ts"] for e in decisions]
    assert ts == sorted(ts)


def test_partitions_in_step_send_nothing_late():
    outs = _run(_arrivals(()))
    assert _late_events(outs) == []


def test_late_items_are_counted_per_model_and_partition():
    from prometheus_client import CollectorRegistry

    from stream.metrics import Metrics

    reg = CollectorRegistry()
    svc = ScopeService(None, fakes.MemoryPublisher(), None, topic="s", partitions=2, spec_of=lambda m: SPEC,
                       outputs=ScopeService.output_topics(load_config(None, {}).topics), scope=SCOPE,
                       checkpoint_every_messages=10 ** 9, checkpoint_every_seconds=float("inf"),
                       clock=lambda: 0.0, metrics=Metrics(reg))
    svc.owned[0] = _Owned(0, 1)
    from stream.scope.summary import encode

    for off, s in enumerate(_arrivals(LAPSES)):
        svc.process([fakes.FakeMessage("s", 0, off, 0, b"fraud", encode(s))])
    late = svc.owned[0].stages["fraud"].merge.late
    assert late > 0
    sample = reg.get_sample_value
    assert sample("driftstream_scope_late_partition_items_total", {"model": "fraud", "partition": "1"}) == late
    assert sample("driftstream_scope_late_partition_items_total", {"model": "fraud", "partition": "0"}) is None
    assert sample("driftstream_scope_late_items", {"model": "fraud"}) == late
    sent = [e for t, e in svc.publisher.sent if t == load_config(None, {}).topics.data_quality]
    assert [e["check"] for e in sent] == ["late_partition"] * len(LAPSES)


def _cuts(arrivals: list[Summary]) -> list[int]:
    """Checkpoint positions: spread over the run, and the first one inside each late episode."""
    stage = ModelStage("fraud", SPEC, 2, SCOPE)
    inside, was = [], False
    for k, s in enumerate(arrivals):
        stage.add(s)
        now = stage.merge.late_episodes[1] is not None
        if now and not was:
            inside.append(k + 1)
        was = now
    assert len(inside) == len(LAPSES)
    return sorted({5, len(arrivals) // 3, 2 * len(arrivals) // 3, *inside})


def test_a_replay_from_any_checkpoint_gives_the_same_outputs():
    arrivals = _arrivals(LAPSES)
    full = _run(arrivals)
    assert len(_late_events(full)) == len(LAPSES)
    for cut in _cuts(arrivals):
        stage = ModelStage("fraud", SPEC, 2, SCOPE)
        _run(arrivals[:cut], stage)
        state = orjson.loads(orjson.dumps(stage.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
        # the instance dies after a few more summaries (their outputs went out), the next one replays them
        _run(arrivals[cut:cut + 7], stage)
        again = ModelStage("fraud", SPEC, 2, SCOPE)
        again.load_state(state)
        assert _run(arrivals[cut:], again) == full[cut:], cut


class _Publisher(fakes.MemoryPublisher):
    def flush(self) -> None:
        pass


class _Store:
    """Records each checkpoint: (next offset, payload, outputs published before it)."""

    def __init__(self, pub: _Publisher) -> None:
        self.pub = pub
        self.saved: list[tuple[int, bytes, int]] = []

    def save(self, p, epoch, payload, offsets) -> None:
        self.saved.append((offsets["summaries"], payload, len(self.pub.sent)))


def _wall_clock_service(clock) -> tuple[ScopeService, _Publisher, _Store]:
    pub = _Publisher()
    store = _Store(pub)
    svc = ScopeService(None, pub, store, topic="s", partitions=2, spec_of=lambda m: SPEC,
                       outputs=ScopeService.output_topics(load_config(None, {}).topics),
                       scope=dataclasses.replace(SCOPE, idle_partition_seconds=3.0),
                       checkpoint_every_messages=10 ** 9, checkpoint_every_seconds=float("inf"), clock=clock)
    svc.owned[0] = _Owned(0, 1)
    return svc, pub, store


def test_a_wall_clock_idle_verdict_is_checkpointed_before_it_takes_effect_so_a_replay_decides_the_same():
    from stream.scope.summary import encode

    msgs = [fakes.FakeMessage("s", 0, off, 0, b"fraud", encode(s)) for off, s in enumerate(_arrivals(LAPSES))]
    t = [0.0]
    svc, pub, store = _wall_clock_service(lambda: t[0])
    for m in msgs:  # 0.25 s of wall clock per summary: partition 1 is silent for seconds in each lapse
        svc.process([m])
        t[0] += 0.25
    assert len(_late_events([[{"event": e} for _, e in pub.sent]])) == len(LAPSES)
    # one checkpoint per idle verdict, taken before the release it allows
    assert len(store.saved) == len(LAPSES)
    ends = [(off, published) for off, _, published in store.saved[1:]] + [(len(msgs), len(pub.sent))]
    for (off, payload, published), (until, published_until) in zip(store.saved, ends):
        assert orjson.loads(payload)["stages"]["fraud"]["merge"]["idle"] == [False, True]
        # the instance dies before its next checkpoint; the next one replays from this one with a clock that
        # never moves (it would never find partition 1 idle by itself) and publishes exactly what the first
        # one did since (a later verdict is checkpointed before anything depends on it)
        again, pub2, _ = _wall_clock_service(lambda: 5.0)
        again._load(again.owned[0], payload)
        again.owned[0].next_offset = off
        for m in msgs[off:until]:
            again.process([m])
        assert pub2.sent == pub.sent[published:published_until]
        assert any(e.get("check") == "late_partition" for _, e in pub2.sent)  # the lapse's late episode


class _Broker:
    """The input topics' watermarks as the broker reports them: everything of both partitions is already
    produced (a consumer catching up on a backlog), so partition 1's high watermarks are the end positions of
    its last summary. Records which partitions were asked about."""

    def __init__(self, arrivals: list[Summary]) -> None:
        self.high = {p: max((s.end for s in arrivals if s.partition == p), default=[0, 0]) for p in (0, 1)}
        self.asked: list[int] = []

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        assert not cached  # the backlog test needs the broker's answer, not the fetcher's last one
        self.asked.append(tp.partition)
        return 0, self.high[tp.partition][("inference", "labels").index(tp.topic)]


def _backlog_run(stalled: float) -> tuple[ScopeService, _Publisher, _Broker]:
    from stream.scope.summary import encode

    arrivals = _arrivals(LAPSES)
    broker = _Broker(arrivals)
    t = [0.0]
    svc, pub, _ = _wall_clock_service(lambda: t[0])
    svc.consumer = broker
    svc.scope = dataclasses.replace(svc.scope, stalled_partition_seconds=stalled)
    for off, s in enumerate(arrivals):  # 0.25 s of wall clock per summary, as above
        svc.process([fakes.FakeMessage("s", 0, off, 0, b"fraud", encode(s))])
        t[0] += 0.25
    return svc, pub, broker


def test_a_silent_partition_with_a_backlog_is_waited_for_not_declared_idle():
    # the same lapses as above, but the broker says partition 1 has input it has not processed: it is
    # catching up, not idle, so the model waits for it and nothing comes late
    svc, pub, broker = _backlog_run(stalled=0.0)
    events = [e for _, e in pub.sent]
    assert not _late_events([[{"event": e} for e in events]])
    assert svc.owned[0].stages["fraud"].merge.idle == [False, False]
    assert set(broker.asked) == {1}  # asked only about the partition the idle test would fire for
    # ... and it decides exactly what a stage waiting for every partition decides
    waiting = ModelStage("fraud", SPEC, 2, dataclasses.replace(SCOPE, max_watermark_lag_seconds=0.0))
    expected = [o.event for s in _arrivals(LAPSES) for o in waiting.add(s)] + [o.event for o in waiting.flush()]
    assert len(events) >= 5 and events == expected[:len(events)]


def test_a_partition_with_a_backlog_silent_past_the_stalled_bound_is_declared_idle():
    # its consumer is stuck (or dead, and not yet replaced): after stalled_partition_seconds the model goes
    # ahead without it, as the plain wall-clock rule would
    _, pub, _ = _backlog_run(stalled=3.5)
    assert len(_late_events([[{"event": e} for _, e in pub.sent]])) == len(LAPSES)


def test_without_an_answer_from_the_broker_the_wall_clock_rule_holds():
    asked = []

    class _Down:
        def get_watermark_offsets(self, tp, timeout=None, cached=False):
            from confluent_kafka import KafkaError, KafkaException

            asked.append(t[0])
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    from stream.scope.summary import encode

    t = [0.0]
    svc, pub, _ = _wall_clock_service(lambda: t[0])
    svc.consumer = _Down()
    for off, s in enumerate(_arrivals(LAPSES)):
        svc.process([fakes.FakeMessage("s", 0, off, 0, b"fraud", encode(s))])
        t[0] += 0.25
    assert len(_late_events([[{"event": e} for _, e in pub.sent]])) == len(LAPSES)
    # a broker that does not answer is not asked again at every summary (each question can block the loop)
    assert asked and all(b - a >= ScopeService.HIGHS_RETRY_SECONDS for a, b in zip(asked, asked[1:]))
