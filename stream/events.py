"""The event contract: typed input events and the shapes of output events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

Scalar = float | int | str | bool


@dataclass(slots=True)
class InferenceEvent:
    id: str
    model: str
    ts: float
    features: dict[str, Any]
    prediction: Scalar
    score: float | None = None


@dataclass(slots=True)
class LabelEvent:
    id: str
    model: str
    ts: float
    label: Scalar


@dataclass(slots=True)
class Record:
    """One input message as the engine sees it: where it came from and its raw bytes."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class Origin(NamedTuple):
    """The input position an output event derives from."""

    topic: str
    partition: int
    offset: int


def output_id(topic: str, partition: int, offset: int | str, kind: str) -> str:
    """Deterministic id of an output event derived from the input position that caused it, so that a
    replay after a crash produces duplicates with the same id, never different events."""
    return f"{topic}:{partition}:{offset}:{kind}"
