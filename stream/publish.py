"""Stage 6, publish: output events to their topics, with delivery checked before any checkpoint.

The producer is idempotent (``enable.idempotence``), so retries inside librdkafka do not duplicate. A
delivery that fails is remembered, and :meth:`Publisher.flush` raises :class:`FatalError` so that the
checkpoint that would have claimed those outputs is never written; after a restart the same input is
replayed and the same outputs (same deterministic ids) are produced again.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson

from stream.errors import FatalError
from stream.events import Record
from stream.outputs import dead_letter_event

class Publisher:
    def __init__(self, producer: Any, on_produced: Callable[[str], None] | None = None) -> None:
        self.producer = producer
        self.on_produced = on_produced
        self._failures: list[str] = []
        self.produced = 0

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err}")

    def send(self, topic: str, key: str | bytes | None, event: dict[str, Any]) -> None:
        value = orjson.dumps(event)
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                # local queue full: serve delivery reports to make room, then try again
                self.producer.poll(0.1)
        self.produced += 1
        if self.on_produced is not None:
            self.on_produced(topic)

    def dead_letter(self, topic: str, record: Record, reason: str, detail: str) -> None:
        self.send(topic, record.key, dead_letter_event(record, reason, detail))

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every output produced so far; raise if any failed or did not arrive in time."""
        remaining = self.producer.flush(timeout)
        if remaining:
            raise FatalError(f"{remaining} output events were not delivered within {timeout} s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise FatalError(f"{len(failures)} output deliveries failed, first: {failures[0]}")
