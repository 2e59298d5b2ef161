"""Integration fixtures: the real local Kafka broker and redis-server.

The test command (``deploy/local/dev.sh test``) starts the stack and exports its addresses; when the tests
are run directly, the session fixture starts the stack itself and stops it afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from stream.config import AppConfig, load_config

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack.sh"


def _reachable() -> bool:
    import redis
    from confluent_kafka.admin import AdminClient

    cfg = load_config(None)
    try:
        AdminClient({"bootstrap.servers": cfg.kafka["bootstrap.servers"]}).list_topics(timeout=3)
        return bool(redis.Redis.from_url(cfg.redis["url"], socket_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def stack():
    """Make sure the real broker and Redis answer; start them (and stop them after) if they do not."""
    started = False
    if not _reachable():
        subprocess.run(["bash", str(STACK), "install"], check=True)
        subprocess.run(["bash", str(STACK), "start"], check=True)
        # a taken default port moves the stack elsewhere: take its addresses from `stack.sh env`
        out = subprocess.run(["bash", str(STACK), "env"], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            os.environ[key] = value
        started = True
    assert _reachable(), "the local Kafka/Redis stack did not come up"
    yield load_config(None)
    if started:
        subprocess.run(["bash", str(STACK), "stop"], check=False)


def fresh_config(base: AppConfig, scope: bool = False, **processing) -> AppConfig:
    """A config with its own topics and consumer group, so tests never see each other's data.

    The model-level stage is off unless ``scope``: most tests here check what one partition does and
    decides (its retrain events, verdicts, checkpoints); tests/integration/test_model_scope.py runs the
    defaults, with the stage on."""
    run = uuid.uuid4().hex[:10]
    topics = dataclasses.replace(base.topics, **{
        f.name: f"t{run}.{getattr(base.topics, f.name)}"
        for f in dataclasses.fields(base.topics) if isinstance(getattr(base.topics, f.name), str)
    })
    proc = dataclasses.replace(base.processing, group_id=f"g{run}", **processing)
    state = dataclasses.replace(base.state, hmac_key="test-hmac-key", key_prefix=f"ds-test-{run}")
    sc = dataclasses.replace(base.scope, enabled=scope)
    return dataclasses.replace(base, topics=topics, processing=proc, state=state, scope=sc)


@pytest.fixture
def cfg(stack):
    from stream.topics import admin_client, ensure_topics

    c = fresh_config(stack)
    ensure_topics(admin_client(c), c)
    return c


@pytest.fixture(scope="session")
def redis_client(stack):
    import redis

    return redis.Redis.from_url(stack.redis["url"])


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath) or "faults" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
