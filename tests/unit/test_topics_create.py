"""``ensure_topics`` returns once the created topics are in the metadata, not only acknowledged."""

from __future__ import annotations

from types import SimpleNamespace

from stream.config import load_config
from stream.topics import all_topics, ensure_topics


class _Future:
    def result(self, timeout=None):
        return None


class _LaggingAdmin:
    """A broker whose metadata shows created topics only a few list_topics calls after the creation."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.created: list[str] = []
        self.calls_since_create = 0

    def list_topics(self, timeout=None):
        topics = {}
        if self.created:
            self.calls_since_create += 1
            if self.calls_since_create > self.lag:
                topics = {n: SimpleNamespace(partitions={0: None, 1: None}, error=None) for n in self.created}
        return SimpleNamespace(topics=topics)

    def create_topics(self, new_topics, operation_timeout=None):
        self.created = [t.topic for t in new_topics]
        return {t.topic: _Future() for t in new_topics}


def test_ensure_topics_waits_until_the_metadata_has_the_created_topics():
    # regression: `topics create` returned on the creation's acknowledgement and a check right after found
    # the input topic missing on a loaded broker
    cfg = load_config(None, {})
    admin = _LaggingAdmin(lag=3)
    created = ensure_topics(admin, cfg, timeout=5.0)
    assert created == all_topics(cfg)
    assert admin.calls_since_create > admin.lag  # it looked again until they were there
