"""Stage 5, decide: the retrain policy and the champion/challenger test see a model's inputs of one
micro-batch replayed in input order, so that decisions (and their windows) never depend on where micro-batch
boundaries fell.

The inputs are named types (:class:`PolicyInput` subclasses); each knows its rank among inputs of the same
record (labels first, then data-quality / data-drift findings and requests, then warnings, then alarms) and
how it changes the policy. :class:`Batch` knows the micro-batch's records in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from stream.policy import Position, RetrainPolicy

if TYPE_CHECKING:  # pragma: no cover
    from stream.datadrift import DriftFinding
    from stream.detect import Alarm
    from stream.join import Joined


class Batch:
    """The records of the current micro-batch in order: record k has sequence number ``seq0 + k``; its row is
    (topic, offset, next inference offset, next labels offset, event time so far)."""

    __slots__ = ("rows", "seq0", "_index")

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int | None, int | None, float]] = []
        self.seq0 = 1
        self._index: dict[tuple[str, int], int] | None = None

    def start(self, seq0: int) -> None:
        self.seq0 = seq0

    def clear(self) -> None:
        self.rows.clear()
        self._index = None

    def seq_at(self, topic: str, offset: int) -> int:
        """The sequence number of the record at (topic, offset) of this batch."""
        if self._index is None:
            self._index = {(row[0], row[1]): self.seq0 + k for k, row in enumerate(self.rows)}
        return self._index[(topic, offset)]

    def row(self, seq: int) -> tuple[str, int, int | None, int | None, float] | None:
        """The batch row of a sequence number (None: not in this batch)."""
        k = seq - self.seq0
        return self.rows[k] if 0 <= k < len(self.rows) else None

    def change_point(self, j: "Joined") -> Position:
        """Where a join sits in both inputs: the prediction's offset, and the labels offset reached when the
        join completed."""
        lab = self.row(j.seq)[3]
        labels_offset = j.completed_offset if j.completed_by == "labels" else lab
        return Position(j.prediction.offset, labels_offset, j.prediction.ts)


@dataclass(slots=True)
class PolicyInput:
    """An input of the retrain policy at the record with sequence number ``seq``."""

    seq: int
    #: rank among the inputs of one record
    ORDER: ClassVar[int] = 1

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def key(self) -> tuple[int, int]:
        return (self.seq, self.ORDER)


@dataclass(slots=True)
class LabelOutcome(PolicyInput):
    """A joined label: the served model's error, and the online model's error if there is one."""

    error: float
    online_error: float | None
    joined: "Joined"
    ORDER: ClassVar[int] = 0

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        j = self.joined
        policy.observe_label(max(j.label_ts, j.prediction.ts), self.error)


@dataclass(slots=True)
class SchemaChange(PolicyInput):
    event_id: str

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        policy.observe_schema_change(self.event_id)


@dataclass(slots=True)
class DataDriftStarted(PolicyInput):
    event_id: str
    finding: "DriftFinding"

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        f = self.finding
        policy.observe_data_drift(f"{f.kind}:{f.signal}:{f.detector}", self.event_id, f.at.ts, True)


@dataclass(slots=True)
class DataDriftEnded(PolicyInput):
    finding: "DriftFinding"

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        f = self.finding
        policy.observe_data_drift(f"{f.kind}:{f.signal}:{f.detector}", None, f.at.ts, False)


@dataclass(slots=True)
class RetrainRequest(PolicyInput):
    """On demand (control topic): decided at the next record of the model's stream."""

    reason: str

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        policy.request(self.reason)


@dataclass(slots=True)
class ConceptWarning(PolicyInput):
    alarm: "Alarm"
    ORDER: ClassVar[int] = 2

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        policy.observe_warning(batch.change_point(self.alarm.joined))


@dataclass(slots=True)
class ConceptDrift(PolicyInput):
    event_id: str
    alarm: "Alarm"
    ORDER: ClassVar[int] = 3

    def apply(self, policy: RetrainPolicy, batch: Batch) -> None:
        a = self.alarm
        policy.observe_concept_drift(self.event_id, batch.change_point(a.joined), direction=a.direction,
                                     error_before=a.error_before, error_after=a.error_after)


#: inputs that may wait for a later batch, as they are stored in a checkpoint: [seq, order, kind, payload]
_STORED: dict[str, type[PolicyInput]] = {"request": RetrainRequest, "schema": SchemaChange}


def stored_inputs(inputs: list[PolicyInput]) -> list[list[Any]]:
    out = []
    for i in inputs:
        if isinstance(i, RetrainRequest):
            out.append([i.seq, i.ORDER, "request", i.reason])
        elif isinstance(i, SchemaChange):
            out.append([i.seq, i.ORDER, "schema", i.event_id])
        else:  # pragma: no cover - only requests wait across batches
            raise TypeError(f"{type(i).__name__} does not wait across micro-batches")
    return out


def loaded_inputs(stored: list[list[Any]]) -> list[PolicyInput]:
    return [_STORED[kind](int(seq), payload) for seq, _order, kind, payload in stored]
