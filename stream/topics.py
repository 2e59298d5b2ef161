"""Topic set-up and the co-partitioning check done before the service starts."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from stream.clients import admin_config, producer_config
from stream.config import AppConfig
from stream.publish import PRODUCER_MAX_DEFAULT, OutputLimits

log = logging.getLogger("driftstream")


class TopologyError(RuntimeError):
    """The input topics do not meet the contract (missing, or not co-partitioned)."""


def admin_client(cfg: AppConfig) -> AdminClient:
    return AdminClient(admin_config(cfg))


def all_topics(cfg: AppConfig) -> list[str]:
    t = cfg.topics
    return [t.inference, t.labels, t.drift_events, t.retrain_events, t.online_predictions, t.data_quality,
            t.model_updates, t.dead_letter, t.control, t.summaries]


def output_topics(cfg: AppConfig) -> list[str]:
    t = cfg.topics
    return [t.drift_events, t.retrain_events, t.online_predictions, t.data_quality, t.model_updates, t.dead_letter]


def output_limits(admin: Any, cfg: AppConfig, timeout: float = 15.0) -> OutputLimits:
    """What the producer (``message.max.bytes``, ``batch.size`` from ``[kafka]``) and each output topic
    (``max.message.bytes``, one describe_configs call at start-up) accept. A topic whose configuration
    cannot be read (missing, not authorised) keeps the broker's default, with a warning: a refusal is
    then still caught by the delivery report and replaced (see :mod:`stream.publish`)."""
    conf = producer_config(cfg)
    limits: dict[str, int] = {}
    # the summaries topic too: a summary is split to fit it, and batch.size must fit it
    described = output_topics(cfg) + ([cfg.topics.summaries] if cfg.scope.enabled else [])
    futures = admin.describe_configs([ConfigResource("topic", t) for t in described], request_timeout=timeout)
    for res, fut in futures.items():
        try:
            entry = fut.result(timeout).get("max.message.bytes")
            if entry is not None and entry.value is not None:
                limits[res.name] = int(entry.value)
        except Exception as exc:  # KafkaException: unknown topic, authorisation, timeout
            log.warning("cannot read max.message.bytes of topic %s (%s); assuming the broker default", res.name,
                        exc)
    return OutputLimits(producer_max=int(conf.get("message.max.bytes", PRODUCER_MAX_DEFAULT)), topic_max=limits,
                        batch_size=int(conf.get("batch.size", PRODUCER_MAX_DEFAULT)))


def topic_settings(cfg: AppConfig) -> dict[str, str]:
    """The settings a created topic gets: ``topics.retention_ms`` and ``topics.settings``."""
    out = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in cfg.topics.settings.items()}
    if cfg.topics.retention_ms:
        out["retention.ms"] = str(cfg.topics.retention_ms)
    return out


def _partition_counts(admin: Any, timeout: float) -> dict[str, int]:
    md = admin.list_topics(timeout=timeout)
    return {name: len(tm.partitions) for name, tm in md.topics.items() if tm.error is None}


def ensure_topics(admin: Any, cfg: AppConfig, timeout: float = 30.0) -> list[str]:
    """Create the missing topics (``driftstream topics create``, the demo, tests); returns the names created.

    Every topic gets ``topics.partitions`` partitions, ``topics.replication_factor`` replicas and
    :func:`topic_settings`, except a missing input topic whose partner exists: it gets the partner's
    partition count, so the pair is co-partitioned. Existing topics are left as they are."""
    t = cfg.topics
    counts = _partition_counts(admin, timeout)
    missing = [name for name in all_topics(cfg) if name not in counts]
    if not missing:
        return []
    partitions = {name: t.partitions for name in missing}
    for name, partner in ((t.inference, t.labels), (t.labels, t.inference)):
        if name in partitions and partner in counts:
            partitions[name] = counts[partner]
    settings = topic_settings(cfg)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions[name], replication_factor=t.replication_factor, config=settings)
         for name in missing],
        operation_timeout=timeout,
    )
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except Exception as exc:  # TOPIC_ALREADY_EXISTS from a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    # the creation is acknowledged before every broker's metadata has the topics: wait for them, so that a
    # check right after (``topics create`` then ``run``) does not find them missing
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = _partition_counts(admin, timeout)
        if all(counts.get(name) for name in missing):
            break
        time.sleep(0.2)
    return missing


def missing_topics(admin: Any, cfg: AppConfig, timeout: float = 30.0) -> list[str]:
    """The topics the service reads or writes that do not exist, in :func:`all_topics` order."""
    counts = _partition_counts(admin, timeout)
    return [name for name in all_topics(cfg) if name not in counts]


def check_topics(admin: Any, cfg: AppConfig, timeout: float = 30.0) -> int:
    """At start-up: every topic exists (``driftstream run`` creates none) and the inputs are co-partitioned;
    returns their partition count. The control topic is optional (without it on-demand commands are off)."""
    missing = [name for name in missing_topics(admin, cfg, timeout) if name != cfg.topics.control]
    if missing:
        raise TopologyError(
            f"missing topics on {cfg.kafka.get('bootstrap.servers')}: {', '.join(missing)}; `driftstream run` does "
            "not create topics: create them with `driftstream topics create -c FILE` (partitions, replication and "
            "retention from [topics]) or by your own means")
    return check_copartitioned(admin, cfg, timeout)


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
