"""The model-level stage inside the service waits out a Redis outage, as the partition checkpoints do.

Regression: ScopeService called its CheckpointStore directly, so a Redis restart while the stage took its
partitions or wrote a checkpoint raised redis.ConnectionError out of the consume loop and the service died
with a traceback (tests/faults/test_redis_faults.py, model-scope variants)."""

from __future__ import annotations

import dataclasses

import pytest
import redis
from prometheus_client import CollectorRegistry

from stream.app import Service
from stream.config import AppConfig
from stream.metrics import Metrics


class FlakyStore:
    """CheckpointStore's calls used by the stage; Redis is away for the next ``down[name]`` calls of each."""

    def __init__(self) -> None:
        self.down: dict[str, int] = {}
        self.calls: list[str] = []
        self.saved: dict[int, dict] = {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down.get(name, 0) > 0:
            self.down[name] -= 1
            raise redis.ConnectionError("Connection refused (Redis is restarting)")

    def bump_epoch(self, p: int) -> int:
        self._call("bump_epoch")
        return 7

    def load(self, p: int):
        self._call("load")
        return None

    def save(self, p: int, epoch: int, payload: bytes, offsets: dict) -> int:
        self._call("save")
        self.saved[p] = {"epoch": epoch, "offsets": offsets}
        return len(payload)


class Consumer:
    def __init__(self) -> None:
        self.assigned: list = []

    def assign(self, tps) -> None:
        self.assigned = list(tps)

    def commit(self, **_) -> None:
        pass


class Producer:
    def flush(self, timeout: float = 0) -> int:
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


class TP:
    def __init__(self, partition: int) -> None:
        self.topic, self.partition, self.offset = "summaries", partition, None


@pytest.fixture
def service():
    cfg = AppConfig()
    cfg = dataclasses.replace(cfg, scope=dataclasses.replace(cfg.scope, enabled=True))
    store = FlakyStore()
    svc = Service(cfg, Consumer(), Producer(), None, Metrics(CollectorRegistry()), scope_consumer=Consumer(),
                  scope_store=store)
    assert svc.scope is not None
    return svc, store


def test_the_stage_takes_its_partitions_once_redis_is_back(service):
    svc, store = service
    store.down = {"bump_epoch": 2, "load": 1}
    svc.scope.on_assign(svc.scope.consumer, [TP(0)])
    assert store.calls == ["bump_epoch", "bump_epoch", "bump_epoch", "load", "load"]
    assert svc.scope.owned[0].epoch == 7
    assert [tp.partition for tp in svc.scope.consumer.assigned] == [0]


def test_a_stage_checkpoint_waits_for_redis(service):
    svc, store = service
    svc.scope.on_assign(svc.scope.consumer, [TP(0)])
    own = svc.scope.owned[0]
    own.next_offset, own.unsaved = 12, 3
    store.down = {"save": 2}
    svc.scope.checkpoint_all()
    assert store.calls[-3:] == ["save", "save", "save"]
    assert store.saved[0] == {"epoch": 7, "offsets": {"summaries": 12}}
    assert own.unsaved == 0


def test_while_stopping_a_redis_outage_ends_the_stage_checkpoint_with_a_clear_error(service):
    from stream.errors import FatalError

    svc, store = service
    svc.scope.on_assign(svc.scope.consumer, [TP(0)])
    svc.scope.owned[0].next_offset = 3
    svc.stop()
    store.down = {"save": 10}
    with pytest.raises(FatalError, match="Redis unavailable while stopping"):
        svc.scope.checkpoint_all()
    assert 0 not in store.saved
