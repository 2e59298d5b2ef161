"""With the model-level stage on, the data-drift tests run once, on the merged stream: the partitions run
their own only with ``scope.partition_data_drift`` (then their events are the evidence of the model-scope
incident when they found the change first, which on 1/P of the traffic is seldom). The summaries carry the
rows either way, so the model-scope incidents are the same."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from stream.scope.service import summary_message
from stream.scope.stage import ModelStage
from stream.scope.summary import decode
from stream.tools.workload import Workload
from tests.fakes import partitioned_records


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, topic, key, event):
        self.sent.append((topic, event))

    def dead_letter(self, *args):
        pass


def _run(partition_data_drift: bool, partitions: int = 3, n: int = 12_000):
    cfg = load_config(None, {})
    dm = cfg.default_model
    cfg = dataclasses.replace(
        cfg, topics=dataclasses.replace(cfg.topics, partitions=partitions),
        scope=dataclasses.replace(cfg.scope, partition_data_drift=partition_data_drift),
        default_model=dataclasses.replace(dm, data_drift=dataclasses.replace(dm.data_drift, enabled=True)))
    # a fixed start: the two runs are compared, and the default start is the wall clock's second
    w = Workload(n_events=n, feature_shift_at=(n // 2,), seed=5, spacing=0.01, label_delay=3.0,
                 t0=1_700_000_000.0)
    per = partitioned_records(cfg, w, partitions)
    pending: list = []
    sink = _Sink()
    procs = [PartitionProcessor(p, cfg, 1, sink, Metrics(CollectorRegistry()), pending.append)
             for p in range(partitions)]
    stages: dict[str, ModelStage] = {}
    out = []
    pos = [0] * partitions
    while any(pos[p] < len(per[p]) for p in range(partitions)):
        for p, proc in enumerate(procs):
            proc.process(per[p][pos[p]:pos[p] + 150])
            pos[p] += 150
        for s in pending:
            got = decode(summary_message(s)[1])
            st = stages.get(got.model) or stages.setdefault(got.model, ModelStage(
                got.model, cfg.model_spec(got.model), partitions, cfg.scope,
                (cfg.topics.inference, cfg.topics.labels)))
            out += st.add(got)
        pending.clear()
    partition_drift = [ev for topic, ev in sink.sent if topic == cfg.topics.drift_events
                       and ev.get("scope") == "partition" and ev.get("kind") != "concept"]
    incidents = [o.event for o in out if o.topic == "drift_events" and o.event.get("kind") == "feature"]
    return partition_drift, incidents


def _strip(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k != "evidence"}


def test_the_partitions_run_no_data_drift_tests_of_their_own_by_default_and_the_stage_still_finds_the_shift():
    assert not load_config(None, {}).scope.partition_data_drift  # the default
    partition_drift, incidents = _run(False)
    assert partition_drift == []
    assert incidents, "the model stage found no feature drift"
    assert all(ev["scope"] == "model" and ev["evidence"] == [] for ev in incidents)


def test_with_partition_data_drift_their_events_are_the_evidence_and_the_incidents_are_the_same():
    off_partition, off = _run(False)
    on_partition, on = _run(True)
    assert on_partition, "no partition-scope data-drift event with scope.partition_data_drift"
    assert [_strip(e) for e in on] == [_strip(e) for e in off]
    # evidence is what the partitions found before the stage did (on 1/P of the traffic they usually find
    # it later, after the incident was published)
    ids = {e["id"] for e in on_partition}
    assert {i for e in on for i in e["evidence"]} <= ids


@pytest.mark.parametrize("flag", [False, True])
def test_partition_data_drift_only_matters_with_the_stage_on(flag):
    """Without the model-level stage the partitions' tests are the only ones: they run whatever the flag."""
    cfg = load_config(None, {})
    cfg = dataclasses.replace(cfg, scope=dataclasses.replace(cfg.scope, enabled=False, partition_data_drift=flag))
    proc = PartitionProcessor(0, cfg, 1, _Sink(), Metrics(CollectorRegistry()), None)
    assert proc.ctx.data_drift
    proc_on = PartitionProcessor(0, cfg, 1, _Sink(), Metrics(CollectorRegistry()), lambda s: None)
    assert proc_on.ctx.data_drift is flag
