"""The Kafka broker restarted mid-stream (a private single-node broker with its own run dir and ports;
the clean run uses the same private broker): outputs and final state equal the clean run; with the
model-level stage on, its events and its final state (checkpoints under ``<prefix>-scope``) too."""

from __future__ import annotations

import time

import pytest
import redis

from stream.topics import admin_client, ensure_topics
from stream.tools.workload import Workload, produce
from tests.faults.harness import (assert_equivalent, assert_scope_equivalent, caught_up, end_offsets, final_states,
                                  often, outputs, progress, scope_caught_up, scope_read_all, scope_states, sibling,
                                  stop, tail, wait_for, with_kafka, with_redis, with_scope, write_toml)
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, run_until


@pytest.mark.parametrize("scope", [False, True], ids=["partition-scope", "model-scope"])
def test_broker_restarted_mid_stream(stack, private_stack, services, tmp_path, scope):
    started = time.monotonic()
    base = with_redis(with_kafka(stack, private_stack.bootstrap), private_stack.redis_url)
    client = redis.Redis.from_url(private_stack.redis_url, socket_timeout=5)
    clean = with_scope(fresh_config(base, max_idle_wait_seconds=60.0), scope)
    ensure_topics(admin_client(clean), clean)
    w = Workload(n_events=16_000, change_points=(8_000,), seed=51, missing_labels=0.02, label_delay=4.0)
    total = produce(producer(clean), w, clean.topics.inference, clean.topics.labels)
    run_until(clean, total, timeout=120, settle=1.0 if scope else 0.0, before_stop=scope_read_all(clean))
    expected = outputs(clean)
    expected_states = final_states(clean, client)
    expected_scope = scope_states(clean, client) if scope else None
    assert any(e["type"] == "drift" for e in expected.values())

    faulted = sibling(base, clean, **often(clean), batch_size=20, max_idle_wait_seconds=60.0)
    ends = end_offsets(faulted)
    log = tmp_path / "service.log"
    proc = services.spawn(write_toml(tmp_path / "svc.toml", faulted), log)
    wait_for("progress 20%", lambda: progress(faulted, client, ends) >= 0.2, 60, alive=[proc], log=log)
    down = time.monotonic()
    private_stack.stop_kafka()   # SIGTERM: controlled shutdown of the only broker
    at_stop = progress(faulted, client, ends)
    private_stack.start()        # same run dir: the logs and committed offsets are still there
    downtime = time.monotonic() - down
    assert at_stop < 1.0, "the stream was fully processed before the broker stopped"
    assert proc.poll() is None, f"the service died while the broker restarted\n{tail(log)}"
    wait_for("the service catches up after the broker restart", lambda: caught_up(faulted, client, ends), 120,
             alive=[proc], log=log)
    if scope:
        wait_for("the model stage reads every summary", lambda: scope_caught_up(faulted, client), 60, alive=[proc],
                 log=log)
    assert stop(proc, log) == 0, tail(log)
    got = outputs(faulted)
    name = f"broker-restart[{'model' if scope else 'partition'}-scope]"
    assert_equivalent(name, expected, got, started, trials=1, expected_states=expected_states,
                      got_states=final_states(faulted, client), broker_down_seconds=f"{downtime:.1f}",
                      progress_at_stop=f"{at_stop:.2f}")
    if scope:
        assert_scope_equivalent(name, expected, got, expected_scope, scope_states(faulted, client))
