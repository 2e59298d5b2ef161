"""The partition processor without Kafka: an in-memory publisher records what would be produced."""

from __future__ import annotations

import dataclasses

import orjson
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from tests.fakes import MemoryPublisher


def _proc():
    cfg = load_config(None, {})
    dm = dataclasses.replace(cfg.default_model, data_drift=dataclasses.replace(cfg.default_model.data_drift,
                                                                                enabled=True))
    cfg = dataclasses.replace(cfg, default_model=dm)
    pub = MemoryPublisher()
    return PartitionProcessor(0, cfg, 1, pub, Metrics(CollectorRegistry())), pub, cfg


def _inf(offset, eid, amount=10.0, ts=100.0):
    v = {"id": eid, "model": "m", "ts": ts, "features": {"amount": amount, "country": "DE"}, "prediction": 1}
    return Record("inference", 0, offset, int(ts * 1000), eid.encode(), orjson.dumps(v))


def _lab(offset, eid, label=1, ts=101.0):
    v = {"id": eid, "model": "m", "ts": ts, "label": label}
    return Record("labels", 0, offset, int(ts * 1000), eid.encode(), orjson.dumps(v))


def _signal_counts(proc):
    dd = proc.models["m"].data_drift
    return {key: s.test.n_seen + len(s.values) for key, s in dd.signals.items()}


def test_duplicates_and_orphan_labels_do_not_feed_quality_or_drift():
    # regression: a duplicate id and a label without prediction were dead-lettered, yet their values had
    # already gone into the data-drift windows (and data-quality checks), changing good results
    proc, pub, _ = _proc()
    proc.process([_inf(0, "a"), _lab(0, "a")])
    before = _signal_counts(proc)
    quality_before = [e for t, e in pub.sent if t == "data-quality"]
    proc.process([_inf(1, "a", amount=999.0), _lab(1, "a", label=0), _lab(2, "never-predicted", label=0)])
    assert _signal_counts(proc) == before
    assert [e for t, e in pub.sent if t == "data-quality"] == quality_before
    reasons = sorted(e["reason"] for t, e in pub.sent if t == "dead-letter")
    assert reasons == ["duplicate_id", "duplicate_label"]
    assert proc.join.pending_labels == 1  # the orphan waits, and is dead-lettered when it expires


def test_label_drift_counts_joined_labels_in_arrival_order():
    proc, pub, _ = _proc()
    proc.process([_lab(0, "early", ts=99.0), _inf(0, "early"), _inf(1, "b"), _lab(1, "b")])
    label_signal = [s for key, s in proc.models["m"].data_drift.signals.items() if s.kind == "label"]
    assert len(label_signal) == 1 and label_signal[0].test.n_seen == 2


def test_challenger_test_runs_every_n_labels_also_after_the_window_is_full(monkeypatch):
    # regression: with a full window (len == window) the test ran on every label, not every `every`
    from stream.champion import ChampionChallenger

    calls = []
    real = ChampionChallenger.compare
    monkeypatch.setattr(ChampionChallenger, "compare", lambda self: calls.append(1) or real(self))
    proc, pub, cfg = _proc()
    recs = []
    for i in range(3000):
        recs += [_inf(i, f"e{i}", ts=100.0 + i), _lab(i, f"e{i}", ts=100.5 + i)]
    for k in range(0, len(recs), 400):
        proc.process(recs[k:k + 400])
    every = cfg.default_model.challenger.every
    assert len(calls) == 3000 // every


def _released(proc, now, caught_up=False, backlog=None):
    return [r.offset for r in proc.merge.release(lambda t: caught_up, now, None if backlog is None else (lambda t: backlog))]


def test_merge_waits_for_a_silent_input_only_while_the_broker_holds_a_backlog_of_it():
    # labels are buffered, inference is empty and not caught up
    for backlog, expect_after_idle in [(None, [0, 1]), (0, [0, 1]), (16, [0, 1]), (50_000, [])]:
        proc, _, cfg = _proc()
        proc.merge.add(_lab(0, "a"))
        proc.merge.add(_lab(1, "b"))
        assert _released(proc, 10.0, backlog=backlog) == []  # the inference input just went silent
        wait = cfg.processing.max_idle_wait_seconds
        assert _released(proc, 10.0 + wait / 2, backlog=backlog) == []
        # a stalled producer (no known backlog) is skipped after the idle wait; a backlog is waited for
        assert _released(proc, 10.0 + wait + 0.1, backlog=backlog) == expect_after_idle, backlog
        assert _released(proc, 10.0 + wait + 0.2, caught_up=True, backlog=backlog) == ([0, 1] if not expect_after_idle
                                                                                     else [])


def test_merge_releases_in_timestamp_order_across_inputs():
    proc, _, _ = _proc()
    proc.merge.add(_inf(0, "a", ts=100.0))
    proc.merge.add(_inf(1, "b", ts=102.0))
    proc.merge.add(_lab(0, "a", ts=101.0))
    out = proc.merge.release(lambda t: False, 0.0)
    assert [(r.topic, r.offset) for r in out] == [("inference", 0), ("labels", 0)]  # b waits for a later label


def test_state_does_not_depend_on_where_batch_boundaries_fell():
    # labels are joined record by record, inference values are buffered per batch: the data-drift
    # signals can appear in another order, the checkpoint must be the same
    records = []
    for i in range(40):
        records.append(_inf(i, f"e{i}", amount=float(i % 5), ts=100.0 + i))
        if i >= 2:
            records.append(_lab(i - 2, f"e{i - 2}", label=i % 2, ts=100.5 + i))
    records.sort(key=lambda r: (r.timestamp_ms, r.topic != "inference", r.offset))
    states = []
    for cut in ([len(records)], [1, len(records) - 1], [3, 7, len(records) - 10], [2] * (len(records) // 2)):
        proc, _, _ = _proc()
        start = 0
        for k in cut:
            proc.process(records[start:start + k], 0.0)
            start += k
        states.append(orjson.loads(proc.to_payload()))
    assert all(s == states[0] for s in states[1:])


def test_joins_taken_once_per_batch_give_what_one_by_one_gives(monkeypatch):
    """A classification monitor without an online model takes the batch's joins in one pass at batch end
    (ModelMonitor.defers_joins); forcing the one-by-one path must give the same outputs and state."""
    import random

    from stream.detect import ModelMonitor

    rng = random.Random(3)
    records, n_lab = [], 0
    for i in range(3000):
        drifted = i > 1500
        records.append(_inf(i, f"e{i}", amount=rng.gauss(5.0 if drifted else 0.0, 1.0), ts=100.0 + i))
        if i >= 3 and rng.random() < 0.9:  # some labels never come; delays grow after the change
            k = i - 3
            label = 1 if not drifted or rng.random() < 0.3 else 0
            records.append(_lab(n_lab, f"e{k}", label=label, ts=100.0 + i + (40.0 if drifted else 0.5)))
            n_lab += 1
    records.append(_lab(n_lab, "e5", ts=2000.0))  # a duplicate label
    records.sort(key=lambda r: (r.timestamp_ms, r.topic != "inference", r.offset))

    def run(defer: bool):
        monkeypatch.setattr(ModelMonitor, "defers_joins", property(lambda self: defer and self.online is None))
        _, pub, cfg = _proc()
        dm = dataclasses.replace(cfg.default_model, online_model=dataclasses.replace(
            cfg.default_model.online_model, enabled=False))
        proc = PartitionProcessor(0, dataclasses.replace(cfg, default_model=dm), 1, pub, Metrics(CollectorRegistry()))
        cuts = random.Random(7)
        start = 0
        while start < len(records):
            k = cuts.choice([1, 5, 50, 333])
            proc.process(records[start:start + k], 0.0)
            start += k
        assert all(m.defers_joins == defer for m in (mp.monitor for mp in proc.models.values()))
        return sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for _, e in pub.sent), orjson.loads(proc.to_payload())

    deferred, one_by_one = run(True), run(False)
    kinds = {orjson.loads(e).get("check") or orjson.loads(e).get("type") for e in deferred[0]}
    assert {"label_delay_growth", "drift", "dead-letter"} <= kinds, kinds  # the paths are exercised
    assert any(b'"signal":"label"' in e for e in deferred[0])  # label drift too
    assert deferred == one_by_one


def test_a_stray_label_in_a_quiet_partition_is_dead_lettered_after_the_idle_time():
    # regression (issue 20): label_without_prediction only came after the join TTL in event time, so a stray
    # label at the end of a quiet stream waited forever
    proc, pub, cfg = _proc()
    proc.process([_inf(0, "a"), _lab(0, "a"), _lab(1, "stray")], now=1000.0)
    assert proc.join.pending_labels == 1
    proc.check_idle(1000.0 + cfg.join.idle_expire_seconds - 1)
    assert proc.join.pending_labels == 1
    proc.check_idle(1000.0 + cfg.join.idle_expire_seconds)
    assert proc.join.pending_labels == 0
    assert [e["reason"] for t, e in pub.sent if t == cfg.topics.dead_letter] == ["label_without_prediction"]


def test_no_data_is_reported_for_a_partition_that_never_received_anything():
    # regression (issue 20): with no event ever, no model was known, so no limit applied and nothing was said
    proc, pub, cfg = _proc()
    limit = cfg.default_model.data_quality.no_data_seconds
    assert limit > 0
    proc.last_input_wall = 50.0  # the assignment
    proc.check_no_data(50.0 + limit - 1)
    assert not pub.sent
    proc.check_no_data(50.0 + limit)
    assert [e["check"] for t, e in pub.sent] == ["no_data"]
