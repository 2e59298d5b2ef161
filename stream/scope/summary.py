"""The per-partition summary: what one partition pipeline tells the model-level stage about one micro-batch.

A partition's ``ModelPipeline`` emits one :class:`Summary` per micro-batch and model to an internal topic
keyed by model. It carries *samples*, not sketches: every joined outcome and every value the data-drift
tests take, each with its event time and its input position. The model-level stage merges them by event
time and runs the very same detectors and windowed tests on the merged stream as one partition would on
all of the model's traffic, so p-values, statistics and alarm positions are those of the exact merged
data. ``benchmarks/scope_summary.py`` measures the alternative, one mergeable KLL sketch (Apache
DataSketches) per summary and numeric signal, on the demo workload over 8 and 32 partitions: with k = 200
(0.8x the samples' bytes: a micro-batch holds too few values per model for a sketch to compress) the KS
statistic is off by 0.011-0.016 (median) and up to 0.27, the amount shift is found 1,900 events later at
32 partitions and up to 53 of ~570 decisions differ, because a window can only move by whole summaries;
with k = 8 (0.25x the bytes) false alarms appear within the first 5,000 events. Samples cost ~97 bytes per
event (47% of the input messages): outcomes 46, data-drift rows 39, labels 11. The concept detectors
need every outcome in order anyway.

Contract of the fields (``Summary``):

* ``start`` / ``end`` -- the next offsets of both input topics (``[inference, labels]``) before and after the
  micro-batch. Every item carries the input position that produced it (at or after ``start``, below
  ``end``); the stage drops an item whose
  position is below the ``end`` it has already accepted from that partition, so a replayed summary (same
  source positions, however the replay cut its micro-batches) changes nothing.
* ``watermark`` -- every item of this partition's *later* summaries has an event time strictly greater
  than it (``None``: nothing promised yet).
* ``outcomes`` -- the joined events in processing order, column by column (:class:`Outcomes`): event time
  of the join (``max(label ts, prediction ts)``), served error, online error (or ``None``), the record that
  completed the join (``topic`` 0 = inference, 1 = labels; ``offset``; the event id) and where the
  prediction and label are.
* ``rows`` -- the inference events that feed feature and prediction drift, column by column: event time,
  offset, whether the row is valid (rows with schema violations feed no feature drift), feature columns
  (``None`` where the value is missing or null), their types, served predictions and scores.
* ``labels`` -- label values as they arrive (label drift), with event time and offset.
* ``evidence`` -- partition-scope drift events published in this micro-batch (their ids become the
  evidence of model-scope incidents).

Encoding: msgpack through msgspec (``encode`` / ``decode``), structs as arrays (no field names on the wire).
"""

from __future__ import annotations

from itertools import accumulate, chain
from operator import countOf, sub
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import msgspec

__all__ = ["Evidence", "Labels", "Outcome", "Outcomes", "Rows", "Summary", "SummaryBuilder", "decode", "encode",
           "INFERENCE", "LABELS"]

#: ``topic`` codes of positions (the stage turns them back into the input topic names)
INFERENCE = 0
LABELS = 1


class Outcome(NamedTuple):
    """One joined event of :class:`Outcomes` (what iterating over them gives; offsets absolute)."""

    ts: float
    served: float
    online: float | None
    topic: int
    offset: int
    event_id: str
    inference_offset: int
    labels_offset: int
    prediction_ts: float


class Outcomes(msgspec.Struct, array_like=True):
    """The joined events of a micro-batch in processing order, column by column: entry ``i`` of every column
    is outcome ``i``. Columns instead of one array per outcome: encoding, decoding and the merge take whole
    lists (a third of the stage's CPU went into per-outcome structs and tuples). Iterating gives
    :class:`Outcome` s."""

    ts: list[float] = msgspec.field(default_factory=list)
    served: list[float] = msgspec.field(default_factory=list)
    online: list[float | None] = msgspec.field(default_factory=list)
    topic: list[int] = msgspec.field(default_factory=list)
    #: offsets of the records that completed the joins, delta-encoded (first one absolute), as Rows.offsets
    offset: list[int] = msgspec.field(default_factory=list)
    event_id: list[str] = msgspec.field(default_factory=list)
    #: where the predictions and labels are, delta-encoded the same way
    inference_offset: list[int] = msgspec.field(default_factory=list)
    labels_offset: list[int] = msgspec.field(default_factory=list)
    prediction_ts: list[float] = msgspec.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    def __iter__(self) -> Iterator[Outcome]:
        return map(Outcome, self.ts, self.served, self.online, self.topic, undelta(self.offset), self.event_id,
                   undelta(self.inference_offset), undelta(self.labels_offset), self.prediction_ts)


class Rows(msgspec.Struct, array_like=True):
    ts: list[float] = msgspec.field(default_factory=list)
    #: inference offsets, delta-encoded (first one absolute): consecutive offsets cost one byte each
    offsets: list[int] = msgspec.field(default_factory=list)
    valid: list[bool] = msgspec.field(default_factory=list)
    #: feature name -> column aligned with ``ts`` (``None``: missing or null)
    features: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    #: feature name -> "numeric" | "categorical" (what the data-drift tests need to choose a test)
    types: dict[str, str] = msgspec.field(default_factory=dict)
    prediction: list[Any] = msgspec.field(default_factory=list)
    #: ``None`` when no row of the batch has a score
    score: list[float | None] | None = None


class Labels(msgspec.Struct, array_like=True):
    ts: list[float] = msgspec.field(default_factory=list)
    offsets: list[int] = msgspec.field(default_factory=list)  # delta-encoded, as Rows.offsets
    values: list[Any] = msgspec.field(default_factory=list)


class Evidence(msgspec.Struct, array_like=True, frozen=True):
    id: str
    kind: str
    signal: str
    detector: str
    ts: float
    topic: int
    offset: int


class Summary(msgspec.Struct, array_like=True):
    model: str
    partition: int
    start: list[int]
    end: list[int]
    watermark: float | None
    outcomes: Outcomes = msgspec.field(default_factory=Outcomes)
    rows: Rows = msgspec.field(default_factory=Rows)
    labels: Labels = msgspec.field(default_factory=Labels)
    evidence: list[Evidence] = msgspec.field(default_factory=list)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Summary)


def encode(s: Summary) -> bytes:
    return _encoder.encode(s)


def decode(b: bytes) -> Summary:
    """Decode and type-check a summary (``msgspec.ValidationError`` / ``DecodeError`` on bad input). A summary
    written before outcomes went into columns (one array per outcome) is read too: the internal topic may
    still hold some when the stage is upgraded."""
    try:
        return _decoder.decode(b)
    except msgspec.ValidationError:
        try:
            old = _legacy_decoder.decode(b)
        except msgspec.ValidationError:
            pass
        else:
            return old.summary()
        raise


class _LegacyOutcome(msgspec.Struct, array_like=True, frozen=True):
    ts: float
    served: float
    online: float | None
    topic: int
    offset: int
    event_id: str
    inference_offset: int
    labels_offset: int
    prediction_ts: float


class _LegacySummary(msgspec.Struct, array_like=True):
    """The layout before :class:`Outcomes` (outcomes one array each, absolute offsets)."""

    model: str
    partition: int
    start: list[int]
    end: list[int]
    watermark: float | None
    outcomes: list[_LegacyOutcome] = msgspec.field(default_factory=list)
    rows: Rows = msgspec.field(default_factory=Rows)
    labels: Labels = msgspec.field(default_factory=Labels)
    evidence: list[Evidence] = msgspec.field(default_factory=list)

    def summary(self) -> Summary:
        columns = zip(*map(msgspec.structs.astuple, self.outcomes))
        cols = Outcomes(*map(list, columns)) if self.outcomes else Outcomes()
        cols.offset, cols.inference_offset, cols.labels_offset = \
            delta(cols.offset), delta(cols.inference_offset), delta(cols.labels_offset)
        return Summary(self.model, self.partition, self.start, self.end, self.watermark, cols, self.rows,
                       self.labels, self.evidence)


_legacy_decoder = msgspec.msgpack.Decoder(_LegacySummary)


def undelta(offsets: list[int]) -> list[int]:
    """Absolute offsets from delta-encoded ones (the first one absolute)."""
    return list(accumulate(offsets))


def delta(offsets: list[int]) -> list[int]:
    """Delta-encode absolute offsets (the first one stays absolute): consecutive ones cost a byte each."""
    return [b - a for a, b in zip([0, *offsets], offsets)]


class SummaryBuilder:
    """Collects one micro-batch of one model in one partition, in processing order, into a :class:`Summary`.

    The partition pipeline calls :meth:`outcome` (or :meth:`outcomes`, whole columns), :meth:`row` (or
    :meth:`rows`, whole columns), :meth:`label` and :meth:`evidence` as the batch is processed and
    :meth:`build` at its end (then starts again with ``start`` = the ``end`` built).
    """

    def __init__(self, model: str, partition: int, start: list[int]) -> None:
        self.model = model
        self.partition = partition
        self.start = list(start)
        self._reset()

    def _reset(self) -> None:
        self._outcomes = Outcomes()  # offsets absolute until build()
        self._rows = Rows()
        self._labels = Labels()
        self._evidence: list[Evidence] = []
        self._row_last = 0
        self._label_last = 0
        self._scores = False

    def outcome(self, ts: float, served: float, online: float | None, topic: int, offset: int, event_id: str,
                inference_offset: int, labels_offset: int, prediction_ts: float) -> None:
        o = self._outcomes
        o.ts.append(ts)
        o.served.append(served)
        o.online.append(online)
        o.topic.append(topic)
        o.offset.append(offset)
        o.event_id.append(event_id)
        o.inference_offset.append(inference_offset)
        o.labels_offset.append(labels_offset)
        o.prediction_ts.append(prediction_ts)

    def outcomes(self, ts: list[float], served: list[float], online: list[float | None], topic: list[int],
                 offset: list[int], event_id: list[str], inference_offset: list[int], labels_offset: list[int],
                 prediction_ts: list[float]) -> None:
        """:meth:`outcome` for several, column by column (same lengths)."""
        o = self._outcomes
        o.ts += ts
        o.served += served
        o.online += online
        o.topic += topic
        o.offset += offset
        o.event_id += event_id
        o.inference_offset += inference_offset
        o.labels_offset += labels_offset
        o.prediction_ts += prediction_ts

    def row(self, ts: float, offset: int, valid: bool, features: dict[str, Any], types: dict[str, str],
            prediction: Any, score: float | None) -> None:
        r = self._rows
        n = len(r.ts)
        r.ts.append(ts)
        r.offsets.append(offset if n == 0 else offset - self._row_last)
        self._row_last = offset
        r.valid.append(valid)
        for name, v in features.items():
            col = r.features.get(name)
            if col is None:
                col = r.features[name] = [None] * n
                tp = types.get(name)
                if tp is not None:
                    r.types[name] = tp
            col.append(v)
        for col in r.features.values():
            if len(col) == n:
                col.append(None)
        r.prediction.append(prediction)
        if score is not None and not self._scores:
            self._scores = True
            r.score = [None] * n
        if r.score is not None:
            r.score.append(score)

    def rows(self, ts: Sequence[float], offsets: Sequence[int], valid: Sequence[bool],
             features: Mapping[str, Sequence[Any]], types: Mapping[str, str | None], predictions: Sequence[Any],
             scores: Sequence[float | None], key_order: Iterable[str] | None = None) -> None:
        """:meth:`row` for consecutive rows that all have the same features, column by column, with the same
        summary (same bytes): ``features`` maps each of them to its values in row order (``None`` for a null),
        as a segment of :meth:`stream.quality.DataQualityChecker.check_many` has them. Features new to the
        batch get their (``None``-padded) columns in ``key_order`` -- the first row's own key order, which is
        where :meth:`row` would create them (default: the order of ``features``); the batch's other features
        get ``None`` for these rows."""
        m = len(ts)
        if not m:
            return
        r = self._rows
        n = len(r.ts)
        r.ts += ts
        # delta-encoded as row() does (its first offset is absolute: _row_last is 0 then)
        r.offsets += map(sub, offsets, chain((self._row_last,), offsets))
        self._row_last = offsets[-1]
        r.valid += valid
        cols = r.features
        if not cols.keys() >= features.keys():  # new features: created where the first row would create them
            for name in features if key_order is None else key_order:
                if name not in cols:
                    cols[name] = [None] * n
                    tp = types.get(name)
                    if tp is not None:
                        r.types[name] = tp
        if len(cols) == len(features):  # the usual case: the batch's rows all have the same features
            for name, col in cols.items():
                col += features[name]
        else:
            gap = [None] * m
            for name, col in cols.items():
                values = features.get(name)
                col += gap if values is None else values
        r.prediction += predictions
        if r.score is not None:
            r.score += scores
        elif countOf(scores, None) < m:  # the first score: the column starts there, as in row()
            k = next(i for i, sc in enumerate(scores) if sc is not None)
            self._scores = True
            r.score = [None] * (n + k)
            r.score += scores[k:]

    def label(self, ts: float, offset: int, value: Any) -> None:
        lab = self._labels
        lab.offsets.append(offset if not lab.ts else offset - self._label_last)
        self._label_last = offset
        lab.ts.append(ts)
        lab.values.append(value)

    def evidence(self, event_id: str, kind: str, signal: str, detector: str, ts: float, topic: int,
                 offset: int) -> None:
        self._evidence.append(Evidence(event_id, kind, signal, detector, ts, topic, offset))

    def build(self, end: list[int], watermark: float | None) -> Summary:
        o = self._outcomes
        o.offset, o.inference_offset, o.labels_offset = \
            delta(o.offset), delta(o.inference_offset), delta(o.labels_offset)
        s = Summary(self.model, self.partition, self.start, list(end), watermark, self._outcomes, self._rows,
                    self._labels, self._evidence)
        self.start = list(end)
        self._reset()
        return s
