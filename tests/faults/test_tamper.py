"""A tampered checkpoint (one byte of a real state blob flipped) and a foreign one (valid format, another
HMAC key, a pickle that would create a marker file): ``driftstream run`` exits non-zero naming the HMAC
check, writes nothing over the blob, and nothing is unpickled."""

from __future__ import annotations

import base64
import pickle
import subprocess
import time
from pathlib import Path

import orjson

from stream.checkpoint import MAGIC, CheckpointStore
from stream.tools.workload import Workload, produce
from tests.faults.harness import caught_up, end_offsets, stop, store, tail, wait_for, write_toml
from tests.integration.helpers import producer


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _run_refused(services, toml, log, what: str) -> str:
    before = log.read_text() if log.exists() else ""
    proc = services.spawn(toml, log)
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what}: the service kept running on a bad checkpoint\n{tail(log)}")
    out = log.read_text()[len(before):]
    assert rc != 0, f"{what}: exit code 0\n{out[-3000:]}"
    assert "HMAC" in out and "refusing" in out, f"{what}: no clear error naming the HMAC check\n{out[-3000:]}"
    return out


def test_tampered_and_foreign_state_blobs_are_refused(cfg, redis_client, services, tmp_path):
    started = time.monotonic()
    produce(producer(cfg), Workload(n_events=500, change_points=(), seed=81), cfg.topics.inference, cfg.topics.labels)
    toml = write_toml(tmp_path / "svc.toml", cfg)
    log = tmp_path / "service.log"
    ends = end_offsets(cfg)
    proc = services.spawn(toml, log)
    wait_for("a real checkpoint", lambda: caught_up(cfg, redis_client, ends), 60, alive=[proc], log=log)
    assert stop(proc, log) == 0, tail(log)
    st = store(cfg, redis_client)

    # 1. tampered: one byte of partition 0's real blob flipped (inside the payload)
    blob = bytearray(st.read_raw(0)[b"state"])
    i = len(MAGIC) + 32 + len(blob[len(MAGIC) + 32:]) // 2
    blob[i] ^= 0x01
    redis_client.hset(st.key(0), "state", bytes(blob))
    out = _run_refused(services, toml, log, "tampered blob")
    assert st.read_raw(0)[b"state"] == bytes(blob), "the refused blob was overwritten"

    # 2. foreign: a well-formed blob sealed with another key, carrying a pickle that would touch a file
    marker = tmp_path / "unpickled-marker"
    payload = orjson.dumps({"format": 1, "partition": 1, "next_offsets": {}, "join": {}, "monitors": {"fraud": {}},
                            "models": {"fraud": base64.b64encode(pickle.dumps(_Evil(marker))).decode()},
                            "expired_predictions": 0, "unmatched_labels": 0})
    foreign = CheckpointStore(redis_client, cfg.state.key_prefix, cfg.processing.group_id, b"someone-elses-key")
    foreign.save(1, foreign.bump_epoch(1), payload, {cfg.topics.inference: 0, cfg.topics.labels: 0})
    foreign_blob = st.read_raw(1)[b"state"]
    out2 = _run_refused(services, toml, log, "foreign blob")
    redis_client.hdel(st.key(0), "state")  # 3. only the foreign blob left: it alone must stop the service
    out3 = _run_refused(services, toml, log, "foreign blob alone")
    assert not marker.exists(), "the foreign pickle was unpickled (marker file created)"
    assert st.read_raw(1)[b"state"] == foreign_blob, "the refused foreign blob was overwritten"
    print(f"[faults] tamper: trials=3 refused=3 marker_absent=True seconds={time.monotonic() - started:.1f}\n"
          f"  tampered: {[l for l in out.splitlines() if 'HMAC' in l][-1][-160:]}\n"
          f"  foreign:  {[l for l in out3.splitlines() if 'HMAC' in l][-1][-160:]}", flush=True)
    assert "HMAC" in out2
