"""Stage 6, publish: output events to their topics, with delivery checked before any checkpoint.

The producer is idempotent (``enable.idempotence``), so retries inside librdkafka do not duplicate. A
delivery that fails for the infrastructure (timeouts, authorisation, a broker gone) is remembered, and
:meth:`Publisher.flush` raises :class:`FatalError` so that the checkpoint that would have claimed those
outputs is never written; after a restart the same input is replayed and the same outputs (same
deterministic ids) are produced again.

No single input can fail the output path, though: an event that is too large for the producer
(``message.max.bytes``) or for its topic (``max.message.bytes``) would fail the same way on every replay
and stop its partition for good. So:

* a dead-letter event is built to fit (:class:`OutputLimits`): the original bytes are truncated, with
  their size, sha256 and source position, so the message can still be found in the input topic;
* any other output refused for its content (too large, checked before producing and in the broker's
  delivery report) is replaced by a small dead-letter event naming it (``reason = "output_rejected"``),
  counted by ``on_rejected``, and processing goes on. Only when even that small event is refused (a
  dead-letter topic that takes a few hundred bytes) is it fatal.

Batches count as well: the broker applies a topic's ``max.message.bytes`` to a whole record batch, so
:meth:`OutputLimits.producer_settings` caps the producer's ``batch.size`` by the smallest output topic's
limit (otherwise a run of small valid events to that topic is refused as one batch).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import orjson
from confluent_kafka import KafkaError, KafkaException

from stream.errors import FatalError
from stream.events import Record
from stream.outputs import dead_letter_event, rejected_output_event

log = logging.getLogger("driftstream")

#: librdkafka's default ``message.max.bytes`` and ``batch.size``; the broker's default ``max.message.bytes``
PRODUCER_MAX_DEFAULT = 1_000_000
TOPIC_MAX_DEFAULT = 1_048_588
#: what a record adds to its key and value on the wire, with room to spare: librdkafka counts 36 bytes of
#: framing against ``message.max.bytes``; the broker counts the record batch (61-byte header + the record's
#: varints, ~75 bytes for one record) against ``max.message.bytes``
FRAMING_BYTES = 128
#: a dead-letter event's Kafka key is the input's key up to this size, else its sha256 (hex)
MAX_KEY_BYTES = 1024
#: delivery errors caused by the message itself: the same message fails the same way on every retry
CONTENT_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE,
                            KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG_SIZE})


@dataclass(frozen=True)
class OutputLimits:
    """The sizes the producer and the output topics accept (looked up at start-up, see
    :func:`stream.topics.output_limits`)."""

    #: the producer's ``message.max.bytes``
    producer_max: int = PRODUCER_MAX_DEFAULT
    #: ``max.message.bytes`` of each output topic; topics not listed get ``topic_default``
    topic_max: Mapping[str, int] = field(default_factory=dict)
    topic_default: int = TOPIC_MAX_DEFAULT
    #: the producer's configured ``batch.size`` (librdkafka's default if not set)
    batch_size: int = PRODUCER_MAX_DEFAULT

    def max_record(self, topic: str) -> int:
        """The most bytes of key + value one record to ``topic`` may have."""
        return min(self.producer_max, self.topic_max.get(topic, self.topic_default)) - FRAMING_BYTES

    def producer_settings(self) -> dict[str, Any]:
        """Producer settings that keep a whole batch within every output topic's ``max.message.bytes``."""
        smallest = min([self.topic_default, *self.topic_max.values()])
        if self.batch_size <= smallest - FRAMING_BYTES:
            return {}
        return {"batch.size": max(smallest - FRAMING_BYTES, 1)}


class Publisher:
    def __init__(self, producer: Any, on_produced: Callable[[str], None] | None = None, *,
                 limits: OutputLimits | None = None, dead_letter_topic: str | None = None,
                 on_rejected: Callable[[str, str], None] | None = None) -> None:
        self.producer = producer
        self.on_produced = on_produced
        self.limits = limits if limits is not None else OutputLimits()
        #: where refused outputs are reported; None: a refused output is fatal (tools without a DLQ)
        self.dead_letter_topic = dead_letter_topic
        #: called with (intended topic, reason) for every output replaced by a rejection notice
        self.on_rejected = on_rejected
        self._failures: list[str] = []
        #: outputs the broker refused for their content, replaced at the next poll/flush
        self._refused: list[tuple[str, bytes | None, bytes, str]] = []
        self.produced = 0
        self.rejected = 0

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            return
        if err.code() in CONTENT_ERRORS and self.dead_letter_topic is not None:
            self._refused.append((msg.topic(), msg.key(), msg.value() or b"", err.name()))
        else:
            self._failures.append(f"{msg.topic()}: {err}")

    def send(self, topic: str, key: str | bytes | None, event: dict[str, Any]) -> None:
        value = orjson.dumps(event)
        kb = key.encode() if isinstance(key, str) else key
        if len(value) + len(kb or b"") > self.limits.max_record(topic):
            self._reject(topic, kb, value, "MSG_SIZE_TOO_LARGE")
            return
        self._produce(topic, kb, value)

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """An already encoded message (the internal summaries topic)."""
        if len(value) + len(key or b"") > self.limits.max_record(topic):
            self._reject(topic, key, value, "MSG_SIZE_TOO_LARGE")
            return
        self._produce(topic, key, value)

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                # local queue full: serve delivery reports to make room, then try again
                self.producer.poll(0.1)
                self._replace_refused()
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not isinstance(err, KafkaError) or err.code() not in CONTENT_ERRORS:
                    raise
                self._reject(topic, key, value, err.name())
                return
        self.produced += 1
        if self.on_produced is not None:
            self.on_produced(topic)

    def dead_letter(self, topic: str, record: Record, reason: str, detail: str) -> None:
        key = record.key
        if key is not None and len(key) > MAX_KEY_BYTES:
            key = hashlib.sha256(key).hexdigest().encode()
        budget = self.limits.max_record(topic) - len(key or b"")
        self._produce(topic, key, orjson.dumps(dead_letter_event(record, reason, detail, max_bytes=budget)))

    def _reject(self, topic: str, key: bytes | None, value: bytes, error: str) -> None:
        """Replace an output refused for its content by a small dead-letter event that names it."""
        if self.dead_letter_topic is None:
            raise FatalError(f"{topic}: output of {len(value)} bytes refused ({error}) and no dead-letter topic")
        if topic == self.dead_letter_topic and _is_rejection(value):
            raise FatalError(f"{topic}: even a {len(value)}-byte rejection notice was refused ({error}); "
                             "raise the dead-letter topic's max.message.bytes")
        self.rejected += 1
        if self.on_rejected is not None:
            self.on_rejected(topic, error)
        notice = orjson.dumps(rejected_output_event(topic, key, value, error))
        self._produce(self.dead_letter_topic, None, notice)

    def _replace_refused(self, timeout: float = 30.0) -> None:
        """Deal with the outputs the broker refused for their content. The broker judges a whole record
        batch, so a valid event batched next to an oversized one is refused with it: each is sent again in a
        batch of its own first (rare: ``batch.size`` keeps batches within every known topic limit), and only
        what is refused alone is replaced by a notice."""
        while self._refused:
            refused, self._refused = self._refused, []
            for topic, key, value, error in refused:
                verdict = self._send_alone(topic, key, value, timeout)
                if verdict is not None:
                    self._reject(topic, key, value, verdict)

    def _send_alone(self, topic: str, key: bytes | None, value: bytes, timeout: float) -> str | None:
        """Produce one message as a batch of its own and wait for it; returns the content error that refused
        it, or None (delivered, or an infrastructure failure, remembered for :meth:`flush`)."""
        late = FatalError(f"{topic}: output events were not delivered within {timeout} s")
        if self.producer.flush(timeout):  # the queue empties: what is produced next is a batch of its own
            raise late
        outcome: list[Any] = []
        self.producer.produce(topic, value=value, key=key, on_delivery=lambda err, msg: outcome.append(err))
        if self.producer.flush(timeout):
            raise late
        err = outcome[0] if outcome else None
        if err is None:
            return None
        if err.code() in CONTENT_ERRORS:
            return err.name()
        self._failures.append(f"{topic}: {err}")
        return None

    def poll(self) -> None:
        self.producer.poll(0)
        self._replace_refused()

    def flush(self, timeout: float = 30.0, max_wait: float | None = None) -> None:
        """Wait for every output produced so far (and the notices replacing refused ones); raise if any
        failed for another reason.

        While the broker is unreachable librdkafka keeps retrying each message until its
        ``message.timeout.ms`` and then reports it failed (raised here): the wait goes on as long as that,
        with a warning every ``timeout`` seconds, instead of giving up after one ``timeout`` (a broker
        restart of more than 30 s stopped the service). ``max_wait`` bounds it (None: librdkafka's own)."""
        waited = 0.0
        while True:
            remaining = self.producer.flush(timeout)
            if remaining:
                if self._failures:
                    break
                waited += timeout
                if max_wait is not None and waited >= max_wait:
                    raise FatalError(f"{remaining} output events were not delivered within {waited:.0f} s")
                log.warning("%d output events not delivered after %.0f s (broker unreachable?); still waiting "
                            "(librdkafka retries until message.timeout.ms)", remaining, waited)
                continue
            if not self._refused:
                break
            self._replace_refused()
        if self._failures:
            failures, self._failures = self._failures, []
            raise FatalError(f"{len(failures)} output deliveries failed, first: {failures[0]}")


def _is_rejection(value: bytes) -> bool:
    """Whether ``value`` is one of our rejection notices (small by construction, never input bytes)."""
    if len(value) > 8192:
        return False
    try:
        return orjson.loads(value).get("reason") == "output_rejected"
    except (orjson.JSONDecodeError, AttributeError):
        return False
