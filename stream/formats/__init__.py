"""Input formats: bytes of an input message -> typed event, or :class:`~stream.errors.InvalidMessage` with
its reason. One file per format behind :class:`InputFormat`; ``processing.input_format`` chooses one.

To add a format (Avro, Protobuf, ...): write ``stream/formats/<name>.py`` with a class that has the three
methods below (decode into a mapping of JSON-like values, then call :func:`stream.validate.validate_inference`
/ :func:`~stream.validate.validate_label` for the format-independent checks) and register it in ``FORMATS``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from stream.events import InferenceEvent, LabelEvent
from stream.formats.json import JsonFormat


class InputFormat(Protocol):
    name: str

    def inference(self, value: bytes | None) -> InferenceEvent:
        """An inference event (any object with its attributes), or raise InvalidMessage."""

    def label(self, value: bytes | None) -> LabelEvent:
        """A label event, or raise InvalidMessage."""

    def command(self, value: bytes | None) -> dict[str, Any]:
        """A control-topic command as a mapping, or raise InvalidMessage."""


#: format name -> factory taking ``processing.max_message_bytes``
FORMATS: dict[str, Callable[[int], InputFormat]] = {"json": JsonFormat}


def input_format(name: str, max_bytes: int) -> InputFormat:
    try:
        return FORMATS[name](max_bytes)
    except KeyError:
        raise ValueError(f"unknown input format {name!r}; known: {', '.join(FORMATS)}") from None
