"""The Service contract suite (tests/unit/test_service_contract.py) on the real Kafka broker and Redis.

Same tests, other backend: topics and a consumer group of their own per test (``fresh_config``), a Redis
key prefix of their own. A lost assignment is made the way it happens in production: the member does not
poll for longer than ``max.poll.interval.ms``, librdkafka leaves the group, and the next poll reports the
partitions as lost.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.checkpoint import CheckpointStore
from stream.clients import consumer_config, producer_config
from stream.topics import admin_client, ensure_topics
from tests.integration.conftest import fresh_config
from tests.integration.helpers import read_topic
from tests.unit.test_service_contract import PARTITIONS, ServiceContract

#: the broker's group.min.session.timeout.ms; librdkafka wants max.poll.interval.ms >= session.timeout.ms
SESSION_MS = 6000
GROUP = {"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 1000, "max.poll.interval.ms": SESSION_MS}


class KafkaBackend:
    """The real clients; see tests.unit.test_service_contract.FakeBackend for what a backend offers."""

    timeout = 90.0

    def __init__(self, base: Any, redis_client: Any) -> None:
        cfg = fresh_config(base, checkpoint_every_messages=10**9, checkpoint_every_seconds=1e9, gc_threshold=0)
        self.cfg = dataclasses.replace(cfg, topics=dataclasses.replace(cfg.topics, partitions=PARTITIONS))
        ensure_topics(admin_client(self.cfg), self.cfg)
        self.redis = redis_client
        self._producer = Producer(producer_config(self.cfg))
        self._members: list[Consumer] = []

    def consumer(self) -> Consumer:
        c = Consumer({**consumer_config(self.cfg), **GROUP})
        self._members.append(c)
        return c

    def producer(self) -> Producer:
        return Producer(producer_config(self.cfg))

    def store(self) -> CheckpointStore:
        return CheckpointStore(self.redis, self.cfg.state.key_prefix, self.cfg.processing.group_id,
                               self.cfg.state.hmac_key.encode())

    def produce(self, topic: str, partition: int, key: str, value: bytes, ts: float) -> None:
        self._producer.produce(topic, value=value, key=key, partition=partition, timestamp=int(ts * 1000))

    def flush(self) -> None:
        assert self._producer.flush(30) == 0

    def member(self) -> Consumer:
        c = Consumer({**consumer_config(self.cfg), **GROUP, "client.id": "contract-second-member"})
        c.subscribe([self.cfg.topics.inference, self.cfg.topics.labels])
        return c

    def pump(self, member: Consumer) -> None:
        member.poll(0.1)

    def has_assignment(self, member: Consumer) -> bool:
        return bool(member.assignment())

    def close(self, member: Consumer) -> None:
        member.close()

    def lose(self, consumer: Consumer) -> None:
        time.sleep(SESSION_MS / 1000 + 2.0)  # no poll past max.poll.interval.ms: librdkafka leaves the group

    def outputs(self, topic: str) -> list[dict[str, Any]]:
        return read_topic(self.cfg, topic, idle=2.0)

    def committed(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed offsets (the Service commits asynchronously: wait a little for them)."""
        c = Consumer({"bootstrap.servers": self.cfg.kafka["bootstrap.servers"],
                      "group.id": self.cfg.processing.group_id, "enable.auto.commit": False})
        try:
            deadline = time.monotonic() + 15
            while True:
                got = {(tp.topic, tp.partition): tp.offset
                       for tp in c.committed([TopicPartition(t, p) for t, p in keys], timeout=10) if tp.offset >= 0}
                if len(got) == len(keys) or time.monotonic() > deadline:
                    return got
                time.sleep(0.3)
        finally:
            c.close()

    def cleanup(self) -> None:
        for c in self._members:
            try:
                c.close()
            except RuntimeError:  # already closed
                pass


class TestServiceContractOnKafka(ServiceContract):
    @pytest.fixture
    def backend(self, stack, redis_client):
        b = KafkaBackend(stack, redis_client)
        yield b
        b.cleanup()
