from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.clients import watermarks


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


def test_checkpoint_round_waits_for_a_due_partition_then_takes_those_past_half_their_interval():
    from stream.app import checkpoint_round

    # (messages since the last checkpoint, seconds since it); intervals: 1000 messages or 1 s
    assert checkpoint_round({0: (10, 0.9), 1: (900, 0.2)}, 1000, 1.0) == []  # nobody due yet
    # partition 0 is due by time: 1 (past half by time), 2 (past half by messages) join; 3 has nothing to
    # save, 4 is not half way
    pending = {0: (10, 1.0), 1: (5, 0.6), 2: (600, 0.1), 3: (0, 5.0), 4: (100, 0.2)}
    assert checkpoint_round(pending, 1000, 1.0) == [0, 1, 2]
    assert checkpoint_round({0: (1000, 0.0), 1: (499, 0.49), 2: (1, 0.5)}, 1000, 1.0) == [0, 2]


def test_partitions_whose_timers_drift_apart_stay_in_one_round():
    """Each checkpoint stamps its partition a little later than the one before (the Redis write takes
    time): without the half-interval rule the partitions would be due in different steps, each paying a
    producer flush of its own."""
    from stream.app import checkpoint_round

    last = {p: 0.004 * p for p in range(8)}  # stamped one after the other at the end of a round
    rounds = []
    now = 0.0
    while now < 10.0:
        now = round(now + 0.01, 2)
        due = checkpoint_round({p: (100, now - t) for p, t in last.items()}, 10**9, 1.0)
        if due:
            rounds.append(due)
            for k, p in enumerate(due):
                last[p] = now + 0.004 * k
    assert len(rounds) == 10 and all(r == list(range(8)) for r in rounds)
