"""Redis faults with a private redis-server (AOF on): restarted mid-stream, unreachable for a while, and
unreachable while the consumer group rebalances. Each faulted run must end with outputs and final state
equal to a clean run; while Redis is away, no offset may be committed past the state Redis holds. Every test
runs with the model-level stage off and on (``model-scope``: its events, its checkpoints under
``<prefix>-scope`` and its consumer group's commits are checked too)."""

from __future__ import annotations

import dataclasses
import time

import orjson
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from stream.topics import admin_client, ensure_topics
from stream.tools.workload import Workload, produce
from tests.faults.harness import (assert_equivalent, assert_scope_equivalent, caught_up, end_offsets, final_states,
                                  often, outputs, progress, scope_caught_up, scope_read_all, scope_states, scope_store,
                                  sibling, stop, store, tail, wait_for, with_redis, with_scope, write_toml)
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, run_until

OUTAGE_SECONDS = 5.0


@pytest.fixture(scope="module", params=[False, True], ids=["partition-scope", "model-scope"])
def baseline(request, stack, redis_client):
    """One workload and its clean run, shared by the tests of this module (they only read its inputs); with
    the model-level stage off and on. Returns (config, outputs, partition states, model-stage states or None)."""
    scope = request.param
    clean = with_scope(fresh_config(stack, max_idle_wait_seconds=60.0), scope)
    ensure_topics(admin_client(clean), clean)
    w = Workload(n_events=16_000, change_points=(8_000,), seed=41, missing_labels=0.02, label_delay=4.0)
    total = produce(producer(clean), w, clean.topics.inference, clean.topics.labels)
    run_until(clean, total, timeout=120, settle=1.0 if scope else 0.0, before_stop=scope_read_all(clean))
    expected = outputs(clean)
    assert any(e["type"] == "drift" for e in expected.values())
    return (clean, expected, final_states(clean, redis_client),
            scope_states(clean, redis_client) if scope else None)


def _faulted(stack, clean, private_stack):
    c = sibling(stack, clean, **often(clean), batch_size=20, max_idle_wait_seconds=60.0)
    return with_redis(c, private_stack.redis_url)


def _redis_offsets(cfg, client) -> dict[tuple[str, int], int]:
    st = store(cfg, client)
    out = {}
    for p in range(cfg.topics.partitions):
        raw = st.read_raw(p).get(b"offsets")
        for t, o in (orjson.loads(raw) if raw else {}).items():
            out[(t, p)] = o
    return out


def _scope_redis_offsets(cfg, client) -> dict[tuple[str, int], int]:
    st = scope_store(cfg, client)
    out = {}
    for p in range(cfg.topics.partitions):
        raw = st.read_raw(p).get(b"offsets")
        if raw:
            out[(cfg.topics.summaries, p)] = orjson.loads(raw)["summaries"]
    return out


def _committed(cfg, scope: bool = False) -> dict[tuple[str, int], int]:
    """The consumer group's committed offsets (``scope``: the model stage's group, on the summaries topic)."""
    group = f"{cfg.processing.group_id}-scope" if scope else cfg.processing.group_id
    c = Consumer({"bootstrap.servers": cfg.kafka["bootstrap.servers"], "group.id": group,
                  "enable.auto.commit": False})
    try:
        topics = (cfg.topics.summaries,) if scope else (cfg.topics.inference, cfg.topics.labels)
        tps = [TopicPartition(t, p) for t in topics for p in range(cfg.topics.partitions)]
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10) if tp.offset >= 0}
    finally:
        c.close()


def _private_client(private_stack):
    return redis.Redis.from_url(private_stack.redis_url, socket_timeout=5)


def _finish(name, faulted, baseline, client, procs, logs, started, trials, **extra):
    clean, expected, expected_states, expected_scope = baseline
    ends = end_offsets(faulted)
    wait_for(f"{name}: the service catches up after the fault", lambda: caught_up(faulted, client, ends), 120,
             alive=procs, log=logs[0])
    if faulted.scope.enabled:
        wait_for(f"{name}: the model stage reads every summary", lambda: scope_caught_up(faulted, client), 60,
                 alive=procs, log=logs[0])
    for p, log in zip(procs, logs):
        assert stop(p, log) == 0, f"{name}: service exited non-zero\n{tail(log)}"
    got = outputs(faulted)
    name = f"{name}[{'model' if faulted.scope.enabled else 'partition'}-scope]"
    assert_equivalent(name, expected, got, started, trials, expected_states=expected_states,
                      got_states=final_states(faulted, client), **extra)
    if faulted.scope.enabled:
        assert_scope_equivalent(name, expected, got, expected_scope, scope_states(faulted, client))


def test_redis_restarted_mid_stream(stack, baseline, private_stack, services, tmp_path):
    started = time.monotonic()
    clean = baseline[0]
    faulted = _faulted(stack, clean, private_stack)
    client = _private_client(private_stack)
    ends = end_offsets(faulted)
    log = tmp_path / "service.log"
    proc = services.spawn(write_toml(tmp_path / "svc.toml", faulted), log)
    restarts = 0
    for at in (0.2, 0.55):
        wait_for(f"progress {at:.0%}", lambda: progress(faulted, client, ends) >= at, 60, alive=[proc], log=log)
        private_stack.stop_redis()   # SIGTERM: redis-server writes its AOF and exits
        private_stack.start()        # same dir: the AOF is replayed
        restarts += 1
    assert progress(faulted, client, ends) < 1.0, "the stream was fully processed before the last restart"
    assert proc.poll() is None, f"the service died when Redis restarted\n{tail(log)}"
    _finish("redis-restart", faulted, baseline, client, [proc], [log], started, restarts)


def test_redis_unreachable_for_a_while(stack, baseline, private_stack, services, tmp_path):
    """The checkpoint waits and retries (Service._save_with_retry); nothing is committed to Kafka past
    what Redis holds; afterwards the stream resumes without loss."""
    started = time.monotonic()
    clean = baseline[0]
    faulted = _faulted(stack, clean, private_stack)
    client = _private_client(private_stack)
    ends = end_offsets(faulted)
    log = tmp_path / "service.log"
    proc = services.spawn(write_toml(tmp_path / "svc.toml", faulted), log)
    wait_for("progress 25%", lambda: progress(faulted, client, ends) >= 0.25, 60, alive=[proc], log=log)
    private_stack.stop_redis()
    committed_during: list[dict] = []
    deadline = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        committed_during.append(_committed(faulted))
        if faulted.scope.enabled:  # the model stage commits its summaries offsets after its own checkpoints
            committed_during.append(_committed(faulted, scope=True))
        assert proc.poll() is None, f"the service died while Redis was unreachable\n{tail(log)}"
        time.sleep(0.5)
    private_stack.start()
    held = _redis_offsets(faulted, client)   # what survived in Redis (AOF), read before the service writes again
    held.update(_scope_redis_offsets(faulted, client))
    beyond = [(tp, c[tp], held.get(tp)) for c in committed_during for tp in c if c[tp] > held.get(tp, 0)]
    assert not beyond, f"offsets committed to Kafka past the state held in Redis: {beyond[:5]}"
    assert progress(faulted, client, ends) < 1.0
    # "Redis unavailable (...); retrying the checkpoint" or, with the model stage on, maybe its checkpoint first
    assert "Redis unavailable" in log.read_text(), "the service never noticed Redis was unreachable"
    _finish("redis-unreachable", faulted, baseline, client, [proc], [log], started, 1,
            outage_seconds=OUTAGE_SECONDS, kafka_commit_samples=len(committed_during))


def test_redis_unreachable_during_a_rebalance(stack, baseline, private_stack, services, tmp_path):
    """A second instance joins while Redis is down: the revoking owner waits (retrying) for Redis to write
    its checkpoint in on_revoke, and the group rebalances after Redis is back; neither may crash."""
    started = time.monotonic()
    clean = baseline[0]
    faulted = _faulted(stack, clean, private_stack)
    client = _private_client(private_stack)
    ends = end_offsets(faulted)
    toml = write_toml(tmp_path / "svc.toml", faulted)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = services.spawn(toml, logs[0])
    wait_for("progress 25%", lambda: progress(faulted, client, ends) >= 0.25, 60, alive=[a], log=logs[0])
    private_stack.stop_redis()
    b = services.spawn(toml, logs[1])   # joins the group: a rebalance while Redis is unreachable
    deadline = time.monotonic() + OUTAGE_SECONDS + 3
    while time.monotonic() < deadline:
        for p, log in ((a, logs[0]), (b, logs[1])):
            assert p.poll() is None, (f"instance pid {p.pid} exited with {p.returncode} during a rebalance while "
                                      f"Redis was unreachable (it should wait and retry)\n{tail(log, 6000)}")
        time.sleep(0.25)
    private_stack.start()
    _finish("redis-unreachable-rebalance", faulted, baseline, client, [a, b], logs,
            started, 1, outage_seconds=OUTAGE_SECONDS + 3)


def test_service_started_while_redis_unreachable(stack, baseline, private_stack, services, tmp_path):
    """A restart during a Redis outage (a rolling deploy, a rescheduled pod): on_assign needs Redis to bump
    the partition epoch and load the checkpoint. The service must wait and retry, not crash, and resume
    from the checkpoint once Redis is back."""
    started = time.monotonic()
    clean = baseline[0]
    faulted = _faulted(stack, clean, private_stack)
    client = _private_client(private_stack)
    ends = end_offsets(faulted)
    toml = write_toml(tmp_path / "svc.toml", faulted)
    log = tmp_path / "service.log"
    first = services.spawn(toml, log)
    wait_for("progress 25%", lambda: progress(faulted, client, ends) >= 0.25, 60, alive=[first], log=log)
    assert stop(first, log) == 0, tail(log)   # clean stop: leaves the group, the next start is assigned at once
    private_stack.stop_redis()
    assigned_before = log.read_text().count("assigned partitions")
    second = services.spawn(toml, log)
    deadline = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        assert second.poll() is None, (f"the service exited with {second.returncode} when started while Redis "
                                       f"was unreachable (it should wait and retry)\n{tail(log, 6000)}")
        time.sleep(0.25)
    private_stack.start()
    wait_for("assignment after Redis is back", lambda: log.read_text().count("assigned partitions") > assigned_before,
             60, alive=[second], log=log)
    _finish("redis-unreachable-at-start", faulted, baseline, client, [second], [log],
            started, 1, outage_seconds=OUTAGE_SECONDS)
