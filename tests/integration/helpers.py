"""Shared helpers for integration tests: run the service in-process, read output topics."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from stream.app import build_service
from stream.clients import producer_config
from stream.config import AppConfig
from stream.metrics import Metrics


def producer(cfg: AppConfig) -> Producer:
    return Producer(producer_config(cfg))


def messages_done(registry: CollectorRegistry) -> float:
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == "driftstream_messages_total")


def run_until(cfg: AppConfig, expected_messages: int, timeout: float = 90.0, settle: float = 0.0,
              before_stop: Any = None):
    """Run the service in a thread until it has processed ``expected_messages`` inputs (and ``settle``
    seconds more: the model stage reads the last summaries); return (service, registry) after a clean
    stop (which checkpoints)."""
    registry = CollectorRegistry()
    svc = build_service(cfg, Metrics(registry))
    th = threading.Thread(target=svc.run, daemon=True)
    th.start()
    deadline = time.monotonic() + timeout
    while messages_done(registry) < expected_messages and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(settle)
    if before_stop is not None:  # e.g. look at the running service's in-memory state
        before_stop(svc)
    svc.stop()
    th.join(60)
    assert not th.is_alive(), "service did not stop"
    return svc, registry


def read_topic(cfg: AppConfig, topic: str, idle: float = 3.0, max_wait: float = 30.0) -> list[dict[str, Any]]:
    """Every message of ``topic`` from the beginning, decoded; stops after ``idle`` s without news."""
    c = Consumer({"bootstrap.servers": cfg.kafka["bootstrap.servers"], "group.id": f"reader-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out: list[dict[str, Any]] = []
    last = time.monotonic()
    start = last
    while time.monotonic() - last < idle and time.monotonic() - start < max_wait:
        for m in c.consume(500, 0.3):
            if m.error():
                continue
            out.append(orjson.loads(m.value()))
            last = time.monotonic()
    c.close()
    return out


def service_env(**extra: str) -> dict[str, str]:
    """The environment for a ``driftstream`` subprocess whose config comes from its TOML file: the
    ``DRIFTSTREAM_<SECTION>__<KEY>`` overrides of the test command (pointing at the shared stack) are
    removed, or they would beat the file's addresses (regression: fault tests on a private broker/Redis
    talked to the shared one under ``dev.sh test``)."""
    import os

    env = {k: v for k, v in os.environ.items() if not (k.startswith("DRIFTSTREAM_") and "__" in k)}
    env.update(extra)
    return env
