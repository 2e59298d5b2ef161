from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.app import watermarks


class _FlakyConsumer:
    """Answers like a broker whose freshly created topic has no leader yet."""

    def __init__(self, failures: int, code: int = KafkaError.NOT_LEADER_FOR_PARTITION) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0

    def get_watermark_offsets(self, tp, timeout=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(self.code))
        return (0, 42)


def test_watermarks_retry_while_the_new_topic_has_no_leader():
    # regression: the demo died with NOT_LEADER_FOR_PARTITION when it started right after creating topics
    c = _FlakyConsumer(failures=3)
    slept = []
    assert watermarks(c, TopicPartition("t", 0), sleep=slept.append) == (0, 42)
    assert c.calls == 4 and len(slept) == 3


def test_watermarks_give_up_on_non_retriable_errors_and_after_the_attempts():
    with pytest.raises(KafkaException):
        watermarks(_FlakyConsumer(failures=1, code=KafkaError.TOPIC_AUTHORIZATION_FAILED), TopicPartition("t", 0),
                   sleep=lambda s: None)
    with pytest.raises(KafkaException):
        watermarks(_FlakyConsumer(failures=10), TopicPartition("t", 0), attempts=3, sleep=lambda s: None)
