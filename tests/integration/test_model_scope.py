"""The model-level stage in the service, on the real broker and Redis, with the default configuration:
one incident per change across all partitions, one retrain event covering every partition, the
partitions' own signals as evidence only."""

from __future__ import annotations

import dataclasses

from stream.tools.workload import Workload, events, produce
from stream.topics import admin_client, ensure_topics
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, read_topic, run_until

PARTITIONS = 4


def _late_items(svc) -> None:
    svc.late_items = [st.merge.late for own in list(svc.scope.owned.values()) for st in list(own.stages.values())]


def _run(cfg, total: int):
    svc, registry = run_until(cfg, total, timeout=120, settle=6.0, before_stop=_late_items)
    svc.registry = registry
    return svc


def test_default_config_decides_once_per_model_over_all_partitions(stack):
    cfg = fresh_config(stack, scope=True)
    cfg = dataclasses.replace(cfg, topics=dataclasses.replace(cfg.topics, partitions=PARTITIONS))
    assert cfg.scope.enabled and not cfg.scope.publish_partition_decisions  # the defaults
    ensure_topics(admin_client(cfg), cfg)
    w = Workload(n_events=12_000, change_points=(5_000,), seed=41, spacing=0.01)
    produce(producer(cfg), w, cfg.topics.inference, cfg.topics.labels)
    svc = _run(cfg, sum(1 for _ in events(w)))
    assert svc.scope is not None and svc.scope.partitions == PARTITIONS

    drifts = read_topic(cfg, cfg.topics.drift_events)
    retrains = read_topic(cfg, cfg.topics.retrain_events)
    part = [e for e in drifts if e["scope"] == "partition" and e["kind"] == "concept" and not e.get("warning")]
    model = [e for e in drifts if e["scope"] == "model" and e["kind"] == "concept"]
    # the partitions detect the change each on a quarter of the traffic; the model stage raises one incident
    assert len({e["partition"] for e in part}) >= 2
    assert len(model) == 1, [(e["id"], e["ts"] - w.t0) for e in model]
    inc = model[0]
    assert w.t0 + 50 <= inc["ts"]
    # its evidence: partition-scope events (none yet when the whole stream detects before any quarter)
    assert set(inc["evidence"]) <= {e["id"] for e in drifts if e["scope"] == "partition"}
    # the change point is estimated on the merged errors: near the true change (event 5,000 = 50 s), and
    # every partition contributes outcomes after it (not only the one whose outcome tipped the detector)
    assert abs(inc["change_point"]["ts"] - (w.t0 + 50)) < 5, inc["change_point"]["ts"] - w.t0
    assert len(inc["contributing_partitions"]) == PARTITIONS, inc["contributing_partitions"]
    assert sorted(inc["change_point"]["partitions"], key=int) == [str(p) for p in range(PARTITIONS)]
    assert svc.registry.get_sample_value("driftstream_model_incidents_total",
                                         {"model": "fraud", "kind": "concept", "severity": "critical"}) == 1
    assert svc.registry.get_sample_value("driftstream_model_retrain_events_total",
                                         {"model": "fraud", "reason": "concept_drift"}) == 1
    assert svc.late_items and not any(svc.late_items)  # no partition was decided without (none was idle)
    # one retrain event, at model scope, whose window covers every partition; none from the partitions
    assert all(e["scope"] == "model" for e in retrains), [e["scope"] for e in retrains]
    assert len(retrains) == 1, [(e["id"], e["reasons"]) for e in retrains]
    win = retrains[0]["window"]
    assert sorted(win["partitions"], key=int) == [str(p) for p in range(PARTITIONS)]
    for p, span in win["partitions"].items():
        frm, to = span["from"]["inference_offset"], span["to"]["inference_offset"]
        assert frm is None or frm <= to, (p, span)
    assert inc["id"] in retrains[0]["evidence"]


def test_a_recurring_concept_is_one_degradation_and_one_improvement_incident_and_one_retrain(stack):
    cfg = fresh_config(stack, scope=True)
    cfg = dataclasses.replace(cfg, topics=dataclasses.replace(cfg.topics, partitions=PARTITIONS))
    ensure_topics(admin_client(cfg), cfg)
    w = Workload(n_events=15_000, change_points=(5_000, 10_000), concepts=2, seed=32, spacing=0.01)
    produce(producer(cfg), w, cfg.topics.inference, cfg.topics.labels)
    _run(cfg, sum(1 for _ in events(w)))
    model = [e for e in read_topic(cfg, cfg.topics.drift_events) if e["scope"] == "model" and e["kind"] == "concept"]
    assert [(e["direction"], e["severity"]) for e in sorted(model, key=lambda e: e["ts"])] == [
        ("degradation", "critical"), ("improvement", "info")], [(e["ts"] - w.t0, e["direction"]) for e in model]
    down, up = sorted(model, key=lambda e: e["ts"])
    assert down["error_before"] < down["error_after"] and up["error_after"] < up["error_before"]
    retrains = [e for e in read_topic(cfg, cfg.topics.retrain_events)]
    assert len(retrains) == 1 and retrains[0]["scope"] == "model" and down["id"] in retrains[0]["evidence"]
