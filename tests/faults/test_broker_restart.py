"""The Kafka broker restarted mid-stream (a private single-node broker with its own run dir and ports;
the clean run uses the same private broker): outputs and final state equal the clean run."""

from __future__ import annotations

import time

import redis

from stream.topics import admin_client, ensure_topics
from stream.tools.workload import Workload, produce
from tests.faults.harness import (assert_equivalent, caught_up, end_offsets, final_states, outputs, progress,
                                  sibling, stop, tail, wait_for, with_kafka, with_redis, write_toml)
from tests.integration.conftest import fresh_config
from tests.integration.helpers import producer, run_until


def test_broker_restarted_mid_stream(stack, private_stack, services, tmp_path):
    started = time.monotonic()
    base = with_redis(with_kafka(stack, private_stack.bootstrap), private_stack.redis_url)
    client = redis.Redis.from_url(private_stack.redis_url, socket_timeout=5)
    clean = fresh_config(base, max_idle_wait_seconds=60.0)
    ensure_topics(admin_client(clean), clean)
    w = Workload(n_events=16_000, change_points=(8_000,), seed=51, missing_labels=0.02, label_delay=4.0)
    total = produce(producer(clean), w, clean.topics.inference, clean.topics.labels)
    run_until(clean, total, timeout=120)
    expected = outputs(clean)
    expected_states = final_states(clean, client)
    assert any(e["type"] == "drift" for e in expected.values())

    faulted = sibling(base, clean, checkpoint_every_messages=40, checkpoint_every_seconds=0.1, batch_size=20,
                      max_idle_wait_seconds=60.0)
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
    assert stop(proc, log) == 0, tail(log)
    got = outputs(faulted)
    assert_equivalent("broker-restart", expected, got, started, trials=1, expected_states=expected_states,
                      got_states=final_states(faulted, client), broker_down_seconds=f"{downtime:.1f}",
                      progress_at_stop=f"{at_stop:.2f}")
