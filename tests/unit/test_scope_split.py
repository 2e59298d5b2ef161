"""Summaries larger than one message: split into ordered parts by the partition, reassembled by the model
stage's service, with exactly the outputs of the unsplit case (issue 17).

Before, a summary over the summaries topic's limit was refused by the publisher and replaced by an
``output_rejected`` notice on the dead-letter topic: the model stage never saw that micro-batch."""

from __future__ import annotations

import functools
import types

import orjson
import pytest

from stream.config import ChallengerConfig, DataDriftConfig, ModelSpec, load_config
from stream.publish import FRAMING_BYTES, OutputLimits, Publisher
from stream.scope.parts import Assembler, Part, decode_message, split
from stream.scope.service import ScopeService, _Owned, summary_messages
from stream.scope.stage import ScopeConfig
from stream.scope.summary import Summary, SummaryBuilder, encode
from tests import fakes
from tests.unit.scope.sim import interleave, partition_items, summaries, workload_events

SPEC = ModelSpec(data_drift=DataDriftConfig(reference_size=300, window_size=200, step=50),
                 challenger=ChallengerConfig(window=500, min_pairs=100, every=50))
SCOPE = ScopeConfig(max_watermark_lag_seconds=5.0, incident_quiet_seconds=10.0, idle_partition_seconds=0.0)
PARTITIONS = 3
TOPIC = "summaries"


@functools.lru_cache(maxsize=None)
def _streams() -> list[list[Summary]]:
    ev = workload_events(5000, change_points=(2500,), feature_shift_at=(3800,), seed=5)
    items = partition_items(ev, PARTITIONS, online_error=lambda i, served: float(i % 13 == 0), evidence_every=97)
    return [summaries("fraud", p, it, seed=1, max_batch=200) for p, it in enumerate(items)]


def _service(scope: ScopeConfig = SCOPE) -> tuple[ScopeService, fakes.MemoryPublisher]:
    pub = fakes.MemoryPublisher()
    svc = ScopeService(None, pub, None, topic=TOPIC, partitions=PARTITIONS, spec_of=lambda m: SPEC,
                       outputs=ScopeService.output_topics(load_config(None, {}).topics), scope=scope,
                       checkpoint_every_messages=10 ** 9, checkpoint_every_seconds=float("inf"), clock=lambda: 0.0)
    svc.owned[0] = _Owned(0, 1)
    return svc, pub


def _wire(values: list[bytes]) -> list[fakes.FakeMessage]:
    return [fakes.FakeMessage(TOPIC, 0, off, 0, b"fraud", v) for off, v in enumerate(values)]


def _messages(max_bytes: int, order_seed: int = 4) -> list[fakes.FakeMessage]:
    """The summaries topic's partition 0 as the partitions would fill it: each summary's messages in order,
    the partitions' messages interleaved at random."""
    per_partition = [[v for s in stream for _, v in summary_messages(s, max_bytes)] for stream in _streams()]
    return _wire(interleave(per_partition, order_seed))


def _same_completions(max_bytes: int, order_seed: int) -> tuple[list[fakes.FakeMessage], list[fakes.FakeMessage]]:
    """One arrival order of the whole summaries, and the same summaries split, their parts interleaved with
    other partitions' parts, each summary's last part where the whole summary was: the order in which
    summaries are complete is the same."""
    arrivals = interleave(_streams(), order_seed)
    parts = [split(s, max_bytes) for s in arrivals]
    waiting: dict[int, list[int]] = {}
    for k, s in enumerate(arrivals):
        waiting.setdefault(s.partition, []).append(k)
    sent = [0] * len(arrivals)
    out: list[bytes] = []
    for k, s in enumerate(arrivals):
        for q, ks in waiting.items():  # every other partition's next summary sends one more part early
            j = ks[0] if ks else None
            if q != s.partition and j is not None and sent[j] < len(parts[j]) - 1:
                out.append(parts[j][sent[j]])
                sent[j] += 1
        out += parts[k][sent[k]:]
        waiting[s.partition].pop(0)
    return _wire([encode(s) for s in arrivals]), _wire(out)


def _run(msgs: list[fakes.FakeMessage], restart_every: int = 0, scope: ScopeConfig = SCOPE) -> list[tuple[str, dict]]:
    """Outputs of the service over ``msgs``; with ``restart_every`` a new service continues from the previous
    one's checkpoint payload every that many messages."""
    svc, pub = _service(scope)
    sent: list[tuple[str, dict]] = []
    for k, m in enumerate(msgs):
        svc.process([m])
        if restart_every and (k + 1) % restart_every == 0:
            payload = svc._payload(svc.owned[0])
            sent += pub.sent
            svc, pub = _service(scope)
            svc._load(svc.owned[0], payload)
    return sent + pub.sent


def test_a_summary_larger_than_the_limit_goes_as_parts_within_it_not_to_the_dead_letter_topic():
    cfg = load_config(None, {})
    limit = 1_000
    broker = fakes.FakeBroker()
    pub = Publisher(fakes.FakeProducer(broker), limits=OutputLimits(topic_max={cfg.topics.summaries: limit}),
                    dead_letter_topic=cfg.topics.dead_letter)
    big = max((s for stream in _streams() for s in stream), key=lambda s: len(encode(s)))
    assert len(encode(big)) > 8 * limit
    from stream.app import Service

    Service._send_summary(types.SimpleNamespace(cfg=cfg, publisher=pub), big)
    pub.flush()
    assert broker.messages(cfg.topics.dead_letter) == []  # it was replaced by an output_rejected notice
    sent = broker.messages(cfg.topics.summaries)
    assert len(sent) > 8
    assert all(len(m.value()) + len(m.key()) <= limit - FRAMING_BYTES for m in sent)
    assert {m.key() for m in sent} == {b"fraud"}
    asm = Assembler()
    got = [asm.add(decode_message(m.value())) for m in sent]
    assert got[:-1] == [None] * (len(sent) - 1) and got[-1] == big


def test_the_stage_input_limit_bounds_the_parts_too():
    cfg = load_config(None, {"DRIFTSTREAM_PROCESSING__MAX_MESSAGE_BYTES": "1500"})
    broker = fakes.FakeBroker()
    pub = Publisher(fakes.FakeProducer(broker), dead_letter_topic=cfg.topics.dead_letter)
    big = max((s for stream in _streams() for s in stream), key=lambda s: len(encode(s)))
    from stream.app import Service

    Service._send_summary(types.SimpleNamespace(cfg=cfg, publisher=pub), big)
    pub.flush()
    sent = broker.messages(cfg.topics.summaries)
    assert len(sent) > 5 and all(len(m.value()) <= 1_500 for m in sent)


def test_a_summary_that_fits_is_sent_as_itself():
    s = _streams()[0][0]
    assert split(s, len(encode(s))) == [encode(s)]
    assert isinstance(decode_message(encode(s)), Summary)


@pytest.mark.parametrize("max_bytes", [300, 1_000, 7_777])
def test_split_is_deterministic_and_every_part_fits(max_bytes):
    for s in _streams()[1][:20]:
        parts = split(s, max_bytes)
        assert parts == split(s, max_bytes)
        assert all(len(v) <= max_bytes for v in parts)
        if len(parts) > 1:
            decoded = [decode_message(v) for v in parts]
            assert all(isinstance(d, Part) and d.count == len(parts) for d in decoded)
            assert [d.index for d in decoded] == list(range(len(parts)))
            assert b"".join(d.data for d in decoded) == encode(s)


@pytest.mark.parametrize("max_bytes,order_seed", [(400, 4), (900, 9), (2_500, 1)])
def test_stage_outputs_with_a_tiny_limit_equal_those_with_a_large_one(max_bytes, order_seed):
    whole, split_msgs = _same_completions(max_bytes, order_seed)
    assert all(isinstance(decode_message(m.value()), Summary) for m in whole)
    assert len(split_msgs) > 2 * len(whole)  # most summaries are split
    assert max(len(m.value()) for m in split_msgs) <= max_bytes
    expected = _run(whole)
    assert {e["type"] for _, e in expected} >= {"drift", "retrain", "challenger-better", "data-quality"}
    assert _run(split_msgs) == expected


def test_without_a_lag_bound_any_interleaving_of_the_parts_gives_the_same_outputs():
    wait = ScopeConfig(max_watermark_lag_seconds=0.0, incident_quiet_seconds=10.0)
    expected = _run(_messages(10 ** 9, 4), scope=wait)
    assert {e["type"] for _, e in expected} >= {"drift", "retrain", "challenger-better"}
    for max_bytes, seed in ((400, 1), (1_200, 7)):
        assert _run(_messages(max_bytes, seed), scope=wait) == expected


def test_parts_pending_at_a_checkpoint_are_restored_with_it():
    whole, msgs = _same_completions(500, 2)
    svc, _ = _service()
    for m in msgs[:41]:
        svc.process([m])
    assert svc.owned[0].parts.pending  # a restart here has parts of unfinished summaries
    assert _run(msgs, restart_every=41) == _run(whole)


def test_a_new_first_part_replaces_an_unfinished_summary_and_orphan_parts_are_dropped():
    s0, s1 = _streams()[0][:2]
    a, b = split(s0, 400), split(s1, 400)
    assert len(a) > 2 and len(b) > 2
    asm = Assembler()
    assert asm.add(decode_message(a[0])) is None
    assert asm.add(decode_message(a[2])) is None and asm.out_of_sequence == 1  # not the next part
    assert asm.add(decode_message(a[1])) is None
    # the sending partition restarted from its checkpoint: the same input comes again, from its first part
    got = [asm.add(decode_message(v)) for v in a]
    assert asm.superseded == 2 and asm.out_of_sequence == 1 and got[-1] == s0
    assert asm.add(decode_message(b[1])) is None and asm.out_of_sequence == 2  # no first part: dropped
    assert asm.dropped == 4
    assert asm.pending == {}


def test_parts_of_different_input_partitions_interleave():
    b = SummaryBuilder("m", 0, [0, 0])
    c = SummaryBuilder("m", 1, [0, 0])
    for i in range(300):
        b.label(float(i), i, "x" * 20)
        c.label(float(i), i, "y" * 20)
    s, t = b.build([0, 300], 299.0), c.build([0, 300], 299.0)
    pa, pb = split(s, 512), split(t, 512)
    asm = Assembler()
    out = [asm.add(decode_message(v)) for pair in zip(pa, pb) for v in pair]
    assert [x for x in out if x is not None] == [s, t]


def test_reassembled_bytes_that_are_no_summary_are_an_invalid_summary():
    bad = [encode(Part("fraud", 0, [0, 0], i, 2, b"\x93\x01" if i == 0 else b"\x02")) for i in range(2)]
    svc, pub = _service()
    svc.dead_letter_topic = "dlq"
    for off, v in enumerate(bad):
        svc.process([fakes.FakeMessage(TOPIC, 0, off, 0, b"fraud", v)])
    assert svc.invalid == 1
    assert [(t, e["reason"], e["offset"]) for t, e in pub.sent] == [("dlq", "invalid_summary", 1)]
    assert orjson.loads(svc._payload(svc.owned[0]))["parts"] == []


def test_an_out_of_sequence_part_is_dead_lettered_and_counted_a_superseded_one_only_counted():
    """A part that continues no assembly was only logged before: now it goes to the dead-letter topic with its
    reason and is counted; parts replaced by a replay's new first part are counted apart (not bad input)."""
    from prometheus_client import CollectorRegistry

    from stream.metrics import Metrics

    s0, s1 = _streams()[0][:2]
    a, b = split(s0, 400), split(s1, 400)
    svc, pub = _service()
    svc.dead_letter_topic = "dlq"
    svc.metrics = Metrics(CollectorRegistry())
    # a[0], a[1], then a replay from the first part (2 superseded), a stray part of another summary, the rest
    values = [a[0], a[1], *a, b[2]]
    for off, v in enumerate(values):
        svc.process([fakes.FakeMessage(TOPIC, 0, off, 0, b"fraud", v)])
    reg = svc.metrics.registry
    assert reg.get_sample_value("driftstream_scope_summary_parts_dropped_total", {"reason": "superseded"}) == 2
    assert reg.get_sample_value("driftstream_scope_summary_parts_dropped_total", {"reason": "out_of_sequence"}) == 1
    assert reg.get_sample_value("driftstream_dead_letter_total",
                                {"topic": TOPIC, "reason": "summary_part_out_of_sequence"}) == 1
    dead = [(t, e["reason"], e["offset"]) for t, e in pub.sent if t == "dlq"]
    assert dead == [("dlq", "summary_part_out_of_sequence", len(values) - 1)]
    assert svc.owned[0].stages["fraud"].merge.summaries == 1  # the replayed summary reached the stage once
