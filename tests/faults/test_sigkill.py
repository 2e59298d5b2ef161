"""SIGKILL of ``driftstream run`` at 20+ seeded random points (start-up, mid-batch, right after / during a
checkpoint); after the last restart, outputs (id and content) and final state equal a clean run's."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import time

import orjson

from stream.tools.workload import Workload, produce
from tests.faults.harness import (assert_equivalent, caught_up, end_offsets, final_states, outputs, sibling, stop,
                                  store, wait_for, write_toml)
from tests.integration.helpers import producer, run_until

KILLS = int(os.environ.get("DRIFTSTREAM_FAULT_KILLS", "24"))
SEED = int(os.environ.get("DRIFTSTREAM_FAULT_SEED", "20240611"))


#: inference events of the workload: enough that most of the kills land before the stream is processed (the
#: guard below). With 6,000 (12k input messages) a faster service had processed everything after 13 of the 24
#: kill cycles in one CI run (11 mid-stream kills, the guard asks for 12)
N_EVENTS = int(os.environ.get("DRIFTSTREAM_FAULT_EVENTS", "10000"))


def produce_workload(cfg, seed: int) -> int:
    """N_EVENTS events with a concept change, missing labels, and a few bad messages (dead-letter outputs)."""
    w = Workload(n_events=N_EVENTS, change_points=(3_000,), seed=seed, missing_labels=0.02, label_delay=4.0)
    p = producer(cfg)
    n = produce(p, w, cfg.topics.inference, cfg.topics.labels)
    bad = [b"not json", orjson.dumps({"id": "e-7", "model": "fraud", "ts": w.t0 + 1, "label": 1}), b"[1, 2]"]
    for i, raw in enumerate(bad):
        p.produce(cfg.topics.labels, key=b"e-7", value=raw, timestamp=int((w.t0 + 20 + i) * 1000))
    p.flush(10)
    return n + len(bad)


def _written(st, partitions: int) -> dict[int, bytes | None]:
    return {p: st.redis.hget(st.key(p), "written_ms") for p in range(partitions)}


def test_sigkill_at_random_points_equals_clean_run(cfg, redis_client, services, tmp_path):
    started = time.monotonic()
    clean = dataclasses.replace(cfg, processing=dataclasses.replace(cfg.processing, max_idle_wait_seconds=60.0))
    total = produce_workload(clean, seed=31)
    run_until(clean, total, timeout=120)
    expected = outputs(clean)
    expected_states = final_states(clean, redis_client)
    assert any(e["type"] == "drift" for e in expected.values()), "the workload must produce drift events"
    assert any(e["type"] == "dead-letter" for e in expected.values())

    crash = sibling(cfg, clean, checkpoint_every_messages=40, checkpoint_every_seconds=0.1, batch_size=20,
                    max_idle_wait_seconds=60.0)
    # static membership: a restarted instance takes its predecessor's place at once instead of waiting for
    # the dead member's session to time out (what a StatefulSet deployment does)
    toml = write_toml(tmp_path / "crash.toml", crash, kafka={"group.instance.id": "sigkill-0",
                                                             "session.timeout.ms": 6000})
    log = tmp_path / "service.log"
    ends = end_offsets(crash)
    st = store(crash, redis_client)
    n_parts = crash.topics.partitions
    rng = random.Random(SEED)
    landed: dict[str, int] = {"startup": 0, "mid-batch": 0, "after-checkpoint": 0}
    mid_stream = 0
    for _ in range(KILLS):
        mode = rng.choice(list(landed))
        assigned_before = log.read_text().count("assigned partitions") if log.exists() else 0
        before = _written(st, n_parts)
        proc = services.spawn(toml, log)
        if mode == "startup":
            # anywhere from interpreter start-up to the first assignment and first fetch
            time.sleep(rng.uniform(0.05, 1.0))
        else:
            wait_for("assignment", lambda: log.read_text().count("assigned partitions") > assigned_before, 30,
                     interval=0.01, alive=[proc], log=log)
            if mode == "mid-batch":
                time.sleep(rng.uniform(0.0, 0.25))
            else:
                # right after a checkpoint of one partition: others of the same checkpoint call are in flight
                p = rng.randrange(n_parts)
                deadline = time.monotonic() + rng.uniform(0.05, 0.4)
                while time.monotonic() < deadline and st.redis.hget(st.key(p), "written_ms") == before[p]:
                    time.sleep(0.002)
        done_before_kill = caught_up(crash, redis_client, ends)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        landed[mode] += 1
        mid_stream += not done_before_kill
    assert mid_stream >= KILLS // 2, f"only {mid_stream} of {KILLS} kills landed before the stream was processed"

    assigned_before = log.read_text().count("assigned partitions")
    proc = services.spawn(toml, log)
    wait_for("final run catches up", lambda: log.read_text().count("assigned partitions") > assigned_before
             and caught_up(crash, redis_client, ends), 120, alive=[proc], log=log)
    assert stop(proc, log) == 0, log.read_text()[-3000:]
    got = outputs(crash)
    assert_equivalent("sigkill", expected, got, started, trials=KILLS, expected_states=expected_states,
                      got_states=final_states(crash, redis_client), kills_mid_stream=mid_stream,
                      **{f"kills_{k}": v for k, v in landed.items()})
