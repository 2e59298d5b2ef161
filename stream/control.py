"""The control topic: on-demand commands (today: ``retrain``) for the partitions an instance owns.

Every instance reads every control partition from its end at start-up (no group, no commits): a command
reaches the instances that own the data. Commands sent while no instance runs are not replayed (they are
requests, not state). A command is decoded with the input format (``processing.input_format``); one that
cannot be read goes to the dead-letter topic with its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from confluent_kafka import TopicPartition

from stream.clients import watermarks
from stream.errors import InvalidMessage
from stream.events import Record

log = logging.getLogger("driftstream")

KNOWN_COMMANDS = ("retrain",)


@dataclass(frozen=True, slots=True)
class RetrainCommand:
    """Retrain ``model`` (None: every model) on ``partition`` (None: every partition this instance owns)."""

    model: str | None
    partition: int | None


def parse_command(rec: Record, fmt: Any) -> RetrainCommand:
    cmd = fmt.command(rec.value)
    if cmd.get("command") not in KNOWN_COMMANDS:
        raise InvalidMessage("unknown_command", f"unknown control command {cmd.get('command')!r}; "
                                                "known: " + ", ".join(KNOWN_COMMANDS))
    model = cmd.get("model")
    part = cmd.get("partition")
    if model is not None and not isinstance(model, str) or part is not None and not isinstance(part, int):
        raise InvalidMessage("bad_command", "'model' must be a string and 'partition' an integer")
    return RetrainCommand(model, part)


class ControlReader:
    """Reads the control topic with its own consumer (``consumer`` may be None: commands disabled)."""

    def __init__(self, consumer: Any, topic: str, fmt: Any,
                 dead_letter: Callable[[Record, str, str], None]) -> None:
        self.consumer = consumer
        self.topic = topic
        self.format = fmt
        self.dead_letter = dead_letter

    def start(self) -> None:
        if self.consumer is None:
            return
        md = self.consumer.list_topics(self.topic, timeout=10)
        if self.topic not in md.topics or md.topics[self.topic].error is not None:
            log.warning("control topic %s not found: on-demand commands are disabled", self.topic)
            self.consumer = None
            return
        tps = []
        for p in md.topics[self.topic].partitions:
            tp = TopicPartition(self.topic, p)
            tp.offset = watermarks(self.consumer, tp)[1]
            tps.append(tp)
        self.consumer.assign(tps)

    def poll(self) -> list[RetrainCommand]:
        if self.consumer is None:
            return []
        out = []
        for m in self.consumer.consume(100, 0):
            if m.error() is not None:
                continue
            rec = Record(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value())
            try:
                out.append(parse_command(rec, self.format))
            except InvalidMessage as exc:
                self.dead_letter(rec, exc.reason, exc.detail)
        return out

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
