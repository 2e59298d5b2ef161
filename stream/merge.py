"""The two-topic merge: inference and label records of one partition, released in a deterministic order.

Inference and label messages of a partition come from two topics whose interleaving in a fetch is an
accident of timing. To make a replay after a crash produce exactly the same joins, alarms and outputs,
records are released in a deterministic merge order: by (Kafka timestamp, topic, offset), and a record is
only released when the other topic has a later record buffered or is caught up to its high watermark. If one
input stays empty for ``max_idle_wait_seconds`` while not caught up and the broker is not known to hold a
backlog of it (a stalled producer, stale watermarks), the other is processed without waiting: live traffic
then follows arrival order. While catching up on a backlog the merge waits for the slower input.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from stream.events import Record

#: a silent input with at most this many messages known to wait on the broker may be skipped after
#: ``max_idle_wait_seconds`` (transaction markers occupy offsets but are never delivered)
IDLE_BACKLOG_SLACK = 16


class InputMerge:
    def __init__(self, inference_topic: str, labels_topic: str, max_idle_wait_seconds: float) -> None:
        self.inference_topic = inference_topic
        self.labels_topic = labels_topic
        self.max_idle_wait_seconds = max_idle_wait_seconds
        self.buffers: dict[str, deque[Record]] = {inference_topic: deque(), labels_topic: deque()}
        self._empty_since: dict[str, float | None] = {inference_topic: None, labels_topic: None}

    def add(self, record: Record) -> None:
        self.buffers[record.topic].append(record)

    def buffered(self, topic: str) -> int:
        return len(self.buffers[topic])

    def expected(self, topic: str, next_offsets: dict[str, int]) -> int:
        """The lowest offset of ``topic`` not yet seen: after the newest buffered record, else the partition's
        next offset to process (-1 when unknown)."""
        buf = self.buffers[topic]
        if buf:
            return buf[-1].offset + 1
        return next_offsets.get(topic, -1)

    def next_fetch_offsets(self) -> list[tuple[str, int]]:
        """(topic, offset after its newest buffered record) for every input with buffered records: a buffer only
        grows at its end, so that is the consumer's position."""
        return [(topic, buf[-1].offset + 1) for topic, buf in self.buffers.items() if buf]

    def release(self, caught_up: Callable[[str], bool], now: float,
                backlog: Callable[[str], int | None] | None = None) -> list[Record]:
        a, b = self.buffers[self.inference_topic], self.buffers[self.labels_topic]
        empty_since = self._empty_since
        for topic, buf in self.buffers.items():
            if buf:  # records arrived since the last release: the input is not silent (even if all go now)
                empty_since[topic] = None
        out: list[Record] = []
        may_drain: dict[str, bool] = {}  # caught-up answers do not change within one release
        while a or b:
            if a and b:
                # by (timestamp, topic rank, offset): an equal timestamp releases the inference record first
                append = out.append
                while a and b:
                    append(a.popleft() if a[0].timestamp_ms <= b[0].timestamp_ms else b.popleft())
                continue
            empty_topic = self.labels_topic if a else self.inference_topic
            ok = may_drain.get(empty_topic)
            if ok is None:
                ok = may_drain[empty_topic] = caught_up(empty_topic) or (
                    self._idle_too_long(empty_topic, now) and not self._backlogged(empty_topic, backlog))
            if not ok:
                break
            out.extend(a if a else b)
            (a if a else b).clear()
        for topic, buf in self.buffers.items():
            if not buf and empty_since[topic] is None:
                empty_since[topic] = now
        return out

    @staticmethod
    def _backlogged(topic: str, backlog: Callable[[str], int | None] | None) -> bool:
        """The broker is known to hold more of ``topic`` than we fetched (not just a transaction marker or
        two): its records will come, so waiting for them keeps the merge order exact (catching up on a
        backlog fetches the two inputs at different speeds; that is not a stalled producer)."""
        if backlog is None:
            return False
        n = backlog(topic)
        return n is not None and n > IDLE_BACKLOG_SLACK

    def _idle_too_long(self, topic: str, now: float) -> bool:
        since = self._empty_since[topic]
        return since is not None and now - since >= self.max_idle_wait_seconds
