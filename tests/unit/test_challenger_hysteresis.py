"""A challenger verdict is published once per episode: one insignificant test while the online model is
still ahead does not re-arm it (a p-value hovering around alpha published "challenger-better" 15 times)."""

from __future__ import annotations

from stream.champion import ChampionChallenger, Comparison
from stream.scope.stage import ModelStage
from stream.config import load_config


def _cmp(better: bool, champ: float, chall: float) -> Comparison:
    import dataclasses

    fields = {f.name: None for f in dataclasses.fields(Comparison)}
    fields.update(champion_error=champ, challenger_error=chall, challenger_better=better)
    return Comparison(**fields)


def test_model_stage_publishes_one_verdict_while_the_challenger_stays_ahead():
    cfg = load_config(None, {})
    st = ModelStage("m", cfg.default_model, 2)
    seq = iter([_cmp(True, 0.3, 0.2), _cmp(False, 0.3, 0.27), _cmp(True, 0.3, 0.2),  # still ahead: no re-arm
                _cmp(False, 0.3, 0.31), _cmp(True, 0.3, 0.2)])                      # fell behind: re-armed
    st.challenger.compare = lambda: next(seq)
    out = []
    item = (100.0, 0, 1, 5, 1, "", (0.0, 0.0, "e", 5, 5, 99.0))
    for _ in range(5):
        st._challenge(item, out)
    assert [o.event["type"] for o in out] == ["challenger-better", "challenger-better"]


def test_partition_pipeline_publishes_one_verdict_while_the_challenger_stays_ahead():
    from prometheus_client import CollectorRegistry

    from stream.events import Origin
    from stream.metrics import Metrics
    from stream.model import ModelPipeline, PartitionContext
    from stream.policy import Position
    from tests.fakes import MemoryPublisher

    cfg = load_config(None, {})
    pub = MemoryPublisher()
    mp = ModelPipeline("m", cfg.default_model, PartitionContext(0, cfg.topics, pub, Metrics(CollectorRegistry())))
    seq = iter([_cmp(True, 0.3, 0.2), _cmp(False, 0.3, 0.27), _cmp(True, 0.3, 0.2),
                _cmp(False, 0.3, 0.31), _cmp(True, 0.3, 0.2)])
    mp.challenger.compare = lambda: next(seq)
    for _ in range(5):
        mp._challenge(Origin("labels", 0, 1), Position(1, 1, 100.0), 1)
    assert [e["type"] for _, e in pub.sent] == ["challenger-better", "challenger-better"]
    assert isinstance(mp.challenger, ChampionChallenger)


def test_scope_gauges_of_a_model_are_dropped_when_its_stage_moves_away():
    from prometheus_client import CollectorRegistry

    from stream.metrics import Metrics
    from stream.scope.service import ScopeService, _Owned

    reg = CollectorRegistry()
    metrics = Metrics(reg)
    metrics.scope_status("m", 3, 1)
    metrics.scope_waiting_partitions("m", 2)
    svc = ScopeService(None, None, None, topic="s", partitions=2, spec_of=lambda m: None, outputs={},
                       metrics=metrics)
    svc.owned[0] = _Owned(0, 1, stages={"m": object()})
    svc.on_lost(None, [type("TP", (), {"partition": 0})()])
    assert reg.get_sample_value("driftstream_scope_partitions_skipped", {"model": "m"}) is None
    assert reg.get_sample_value("driftstream_scope_late_items", {"model": "m"}) is None
    assert reg.get_sample_value("driftstream_scope_partitions_waited", {"model": "m"}) is None


def test_an_undecodable_summary_goes_to_the_dead_letter_topic_with_its_reason():
    from prometheus_client import CollectorRegistry

    from stream.metrics import Metrics
    from stream.scope.service import ScopeService, _Owned

    class Msg:
        def error(self):
            return None

        def partition(self):
            return 0

        def topic(self):
            return "summaries"

        def offset(self):
            return 7

        def key(self):
            return b"m"

        def value(self):
            return b"\x93not a summary"

        def timestamp(self):
            return (1, 1234)

    class Pub:
        def __init__(self):
            self.dead = []

        def dead_letter(self, topic, record, reason, detail):
            self.dead.append((topic, record.offset, reason, detail))

    reg = CollectorRegistry()
    pub = Pub()
    svc = ScopeService(None, pub, None, topic="summaries", partitions=2, spec_of=lambda m: None, outputs={},
                       metrics=Metrics(reg), dead_letter_topic="dead-letter")
    svc.owned[0] = _Owned(0, 1)
    svc.checkpoint_every_messages = 10**9
    svc.checkpoint_every_seconds = 1e9
    svc.process([Msg()])
    assert pub.dead == [("dead-letter", 7, "invalid_summary", pub.dead[0][3])] and "undecodable" in pub.dead[0][3]
    assert svc.invalid == 1 and svc.owned[0].next_offset == 8
    assert reg.get_sample_value("driftstream_scope_invalid_summaries_total") == 1
