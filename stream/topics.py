"""Topic set-up and the co-partitioning check done before the service starts."""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from stream.clients import admin_config
from stream.config import AppConfig


class TopologyError(RuntimeError):
    """The input topics do not meet the contract (missing, or not co-partitioned)."""


def admin_client(cfg: AppConfig) -> AdminClient:
    return AdminClient(admin_config(cfg))


def all_topics(cfg: AppConfig) -> list[str]:
    t = cfg.topics
    return [t.inference, t.labels, t.drift_events, t.retrain_events, t.online_predictions, t.data_quality,
            t.model_updates, t.dead_letter, t.control]


def ensure_topics(admin: Any, cfg: AppConfig, timeout: float = 30.0) -> list[str]:
    """Create missing topics (demo and tests); returns the names created."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [t for t in all_topics(cfg) if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=cfg.topics.partitions, replication_factor=cfg.topics.replication_factor)
         for t in missing],
        operation_timeout=timeout,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return missing


def check_copartitioned(admin: Any, cfg: AppConfig, timeout: float = 30.0) -> int:
    """Both input topics exist with the same partition count; returns that count."""
    md = admin.list_topics(timeout=timeout)
    t = cfg.topics
    counts = {}
    for name in (t.inference, t.labels):
        topic = md.topics.get(name)
        if topic is None or topic.error is not None:
            raise TopologyError(f"input topic {name!r} does not exist on {cfg.kafka.get('bootstrap.servers')}")
        counts[name] = len(topic.partitions)
    if counts[t.inference] != counts[t.labels]:
        raise TopologyError(
            f"input topics are not co-partitioned: {t.inference} has {counts[t.inference]} partitions, "
            f"{t.labels} has {counts[t.labels]}; labels must be keyed and partitioned like the inference events"
        )
    return counts[t.inference]
