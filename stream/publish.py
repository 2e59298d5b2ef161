"""Stage 6, publish: output events to their topics, with delivery checked before any checkpoint.

The producer is idempotent (``enable.idempotence``), so retries inside librdkafka do not duplicate. A
delivery that fails is remembered, and :meth:`Publisher.flush` raises :class:`FatalError` so that the
checkpoint that would have claimed those outputs is never written; after a restart the same input is
replayed and the same outputs (same deterministic ids) are produced again.
"""

from __future__ import annotations

import base64
from typing import Any, Callable

import orjson

from stream.errors import FatalError
from stream.events import Record

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
        value = record.value or b""
        try:
            text: str | None = value.decode("utf-8")
            encoded = None
        except UnicodeDecodeError:
            text, encoded = None, base64.b64encode(value).decode()
        self.send(
            topic,
            record.key,
            {
                "id": f"{record.topic}:{record.partition}:{record.offset}:dead-letter",
                "type": "dead-letter",
                "reason": reason,
                "error": detail[:1000],
                "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                           "timestamp_ms": record.timestamp_ms},
                "key": record.key.decode("utf-8", "replace") if record.key else None,
                "value": text,
                "value_base64": encoded,
            },
        )

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
