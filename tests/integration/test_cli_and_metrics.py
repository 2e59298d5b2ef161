"""`driftstream run` as users start it: metrics endpoint, state show/reset, missing HMAC key."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import orjson
from prometheus_client.parser import text_string_to_metric_families

from stream.tools.workload import Workload, events, produce
from tests.integration.helpers import producer, service_env
from tests.integration.test_engine import _write_toml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
    return out


def _sum(samples: dict[str, float], prefix: str, **labels: str) -> float:
    total = 0.0
    for k, v in samples.items():
        name = k.split("{", 1)[0]
        if name != prefix:
            continue
        if all(f"{lk}={lv}" in k for lk, lv in labels.items()):
            total += v
    return total


def test_metrics_endpoint_reports_what_happened(cfg, tmp_path):
    w = Workload(n_events=3_000, change_points=(1_500,), seed=9)
    p = producer(cfg)
    for raw in (b"{oops", b"[]", orjson.dumps({"id": "z", "model": "fraud", "ts": 5.0, "label": 1})):
        p.produce(cfg.topics.labels, key=b"k", value=raw, timestamp=int(w.t0 * 1000))
    n = produce(p, w, cfg.topics.inference, cfg.topics.labels) + 3
    port = _free_port()
    toml = _write_toml(tmp_path / "c.toml", cfg)
    toml.write_text(toml.read_text().replace("[metrics]\nenabled = false", f"[metrics]\nenabled = true\nport = {port}"))
    env = service_env(DRIFTSTREAM_STATE__HMAC_KEY="test-hmac-key", DRIFTSTREAM_JOIN__TTL_SECONDS="30")
    log = (tmp_path / "svc.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "stream.tools.cli", "run", "-c", str(toml)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        samples: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                samples = _scrape(port)
            except OSError:
                time.sleep(0.5)
                continue
            if _sum(samples, "driftstream_messages_total") >= n and _sum(samples, "driftstream_checkpoint_size_bytes") > 0:
                break
            time.sleep(0.5)
        assert _sum(samples, "driftstream_messages_total") == n
        assert _sum(samples, "driftstream_messages_total", outcome="dead_letter") == 2
        # the label without prediction is dead-lettered when it expires from the join window
        assert _sum(samples, "driftstream_dead_letter_total", reason="invalid_json") == 1
        assert _sum(samples, "driftstream_dead_letter_total", reason="not_an_object") == 1
        assert _sum(samples, "driftstream_join_matched_total") == w.n_events
        assert _sum(samples, "driftstream_assigned_partitions") == cfg.topics.partitions
        assert _sum(samples, "driftstream_detector_alarms_total", level="drift") >= 1
        assert 0.0 <= _sum(samples, "driftstream_served_model_error", model="fraud") <= cfg.topics.partitions
        assert _sum(samples, "driftstream_label_delay_seconds_count") == w.n_events
        assert _sum(samples, "driftstream_output_events_total", topic=cfg.topics.online_predictions) == w.n_events
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0, (tmp_path / "svc.log").read_text()[-2000:]


def test_state_show_and_reset(cfg, tmp_path):
    w = Workload(n_events=800, change_points=(), seed=4)
    produce(producer(cfg), w, cfg.topics.inference, cfg.topics.labels)
    toml = _write_toml(tmp_path / "c.toml", cfg)
    env = service_env(DRIFTSTREAM_STATE__HMAC_KEY="test-hmac-key")
    r = subprocess.run([sys.executable, "-m", "stream.tools.cli", "run", "-c", str(toml), "--max-seconds", "8"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    show = subprocess.run([sys.executable, "-m", "stream.tools.cli", "state", "show", "-c", str(toml)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    parts = json.loads(show.stdout)
    assert [p["partition"] for p in parts] == list(range(cfg.topics.partitions))
    total = sum(p["offsets"][cfg.topics.inference] for p in parts)
    assert total == w.n_events
    assert all(p["epoch"] >= 1 and p["blob_bytes"] > 0 for p in parts)
    assert "test-hmac-key" not in show.stdout
    models = [p["models"]["fraud"] for p in parts if "fraud" in p["models"]]
    assert sum(m["joined"] for m in models) == w.n_events
    reset = subprocess.run([sys.executable, "-m", "stream.tools.cli", "state", "reset", "-c", str(toml), "-p", "0"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert reset.returncode == 0 and "reset partition 0" in reset.stdout
    show = subprocess.run([sys.executable, "-m", "stream.tools.cli", "state", "show", "-c", str(toml)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert [p["partition"] for p in json.loads(show.stdout)] == list(range(1, cfg.topics.partitions))


def test_run_without_hmac_key_refuses_to_start(cfg, tmp_path):
    toml = _write_toml(tmp_path / "c.toml", cfg)
    env = service_env()
    r = subprocess.run([sys.executable, "-m", "stream.tools.cli", "run", "-c", str(toml)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "state.hmac_key is required" in r.stderr
