"""Stage 3, join: labels meet the predictions they belong to, by event id, within one partition.

Both sides wait for their partner: predictions for their label (the usual case, labels arrive late) and
labels for their prediction (out of order). Waiting is bounded by count (``max_pending`` per side) and by
event time (``ttl_seconds`` behind the newest event seen in the partition). Nothing leaves silently:

* a prediction whose label never came is *expired* (counted, reported in a data-quality summary);
* a label whose prediction never came is *unmatched* and goes to the dead-letter topic;
* a second prediction or a second label for the same id is a duplicate and goes to the dead-letter topic.

Expiry follows arrival order (the oldest waiting item first), which keeps it deterministic on replay.
The whole buffer is plain data and part of the partition's checkpoint.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from stream.errors import InvalidMessage


@dataclass(slots=True)
class PendingPrediction:
    offset: int
    ts: float
    model: str
    prediction: Any
    online_prediction: Any
    features: dict[str, Any]


@dataclass(slots=True)
class PendingLabel:
    offset: int
    ts: float
    model: str
    label: Any
    #: the message as received, for the dead-letter topic; bytes until the label has to wait, then str
    raw: str | bytes


@dataclass(slots=True)
class Joined:
    id: str
    prediction: PendingPrediction
    label: Any
    label_ts: float
    #: the input position that completed the join (topic kind "inference" or "labels", offset)
    completed_by: str
    completed_offset: int
    #: sequence number of the completing record in its partition (set by the partition processor)
    seq: int = 0
    #: offset of the label in the labels topic
    label_offset: int = -1


class LabelJoin:
    def __init__(self, max_pending: int, ttl_seconds: float, remember_joined: int) -> None:
        self.max_pending = max_pending
        self.ttl_seconds = ttl_seconds
        self.remember_joined = remember_joined
        self._predictions: OrderedDict[str, PendingPrediction] = OrderedDict()
        self._labels: OrderedDict[str, PendingLabel] = OrderedDict()
        #: recently joined id -> event time of the join (bounded by count and by the TTL)
        self._joined: set[str] = set()
        #: the same ids in the order they joined, with their join times (two deques: cheap to expire from
        #: the front and to copy into a checkpoint)
        self._joined_ids: deque[str] = deque()
        self._joined_ts: deque[float] = deque()
        self._watermark = 0.0

    # -- adding ---------------------------------------------------------------------------------
    def check_prediction(self, event_id: str) -> None:
        """Raise before anything else looks at a prediction that would be a duplicate."""
        if event_id in self._predictions or event_id in self._joined:
            raise InvalidMessage("duplicate_id", f"a prediction with id {event_id!r} was already seen")

    def check_label(self, event_id: str) -> None:
        if event_id in self._joined or event_id in self._labels:
            raise InvalidMessage("duplicate_label", f"a label for id {event_id!r} was already seen")

    def add_prediction(self, event_id: str, pending: PendingPrediction) -> Joined | None:
        if event_id in self._predictions or event_id in self._joined:
            raise InvalidMessage("duplicate_id", f"a prediction with id {event_id!r} was already seen")
        ts = pending.ts
        if ts > self._watermark:
            self._watermark = ts
        label = self._labels.pop(event_id, None)
        if label is not None:
            if label.model != pending.model:
                # the held label belonged to another model: it is the bad one; keep the prediction waiting
                self._predictions[event_id] = pending
                raise MismatchedLabel(event_id, label)
            self._remember(event_id, max(ts, label.ts))
            return Joined(event_id, pending, label.label, label.ts, "inference", pending.offset, 0, label.offset)
        self._predictions[event_id] = pending
        return None

    def add_label(self, event_id: str, label: PendingLabel) -> Joined | None:
        return self.join_label(event_id, label.offset, label.ts, label.model, label.label, label.raw)

    def join_label(self, event_id: str, offset: int, ts: float, model: str, label: Any,
                   raw: str | bytes) -> Joined | None:
        """:meth:`add_label` from the label's fields: the usual label finds its prediction waiting and never
        needs a :class:`PendingLabel`."""
        if event_id in self._joined or event_id in self._labels:
            raise InvalidMessage("duplicate_label", f"a label for id {event_id!r} was already seen")
        if ts > self._watermark:
            self._watermark = ts
        preds = self._predictions
        pred = preds.get(event_id)
        if pred is not None:
            if pred.model != model:
                raise InvalidMessage(
                    "model_mismatch", f"label for {event_id!r} names model {model!r}, prediction {pred.model!r}"
                )
            del preds[event_id]
            self._remember(event_id, max(pred.ts, ts))
            return Joined(event_id, pred, label, ts, "labels", offset, 0, offset)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        self._labels[event_id] = PendingLabel(offset, ts, model, label, raw)
        return None

    # -- expiry ---------------------------------------------------------------------------------
    def expire(self) -> tuple[list[tuple[str, PendingPrediction]], list[tuple[str, PendingLabel]]]:
        """Remove what waited too long (or overflows the count bound); return it for reporting."""
        horizon = self._watermark - self.ttl_seconds
        # the hot path: look at the head of each queue only (expiry is in arrival order)
        p, lab, times = self._predictions, self._labels, self._joined_ts
        if (not p or (len(p) <= self.max_pending and next(iter(p.values())).ts >= horizon)) and not lab \
                and (not times or times[0] >= horizon):
            return _NOTHING
        preds = (self._expire_side(p, horizon)
                 if p and (len(p) > self.max_pending or next(iter(p.values())).ts < horizon) else _NONE)
        labels = (self._expire_side(lab, horizon)
                  if lab and (len(lab) > self.max_pending or next(iter(lab.values())).ts < horizon) else _NONE)
        # joined ids are remembered (to catch a duplicate label) only as long as a prediction may wait:
        # a later duplicate waits as an early label, expires and is dead-lettered as unmatched
        ids = self._joined_ids
        while times and times[0] < horizon:
            times.popleft()
            self._joined.discard(ids.popleft())
        return preds, labels

    def expire_labels(self) -> list[tuple[str, PendingLabel]]:
        """Every label still waiting for its prediction (the partition went quiet: none will come)."""
        out = list(self._labels.items())
        self._labels.clear()
        return out

    def _expire_side(self, side: OrderedDict, horizon: float) -> list:
        out = []
        while side:
            key, item = next(iter(side.items()))
            if len(side) > self.max_pending or item.ts < horizon:
                side.popitem(last=False)
                out.append((key, item))
            else:
                break
        return out

    def _remember(self, event_id: str, ts: float) -> None:
        ids, times = self._joined_ids, self._joined_ts
        self._joined.add(event_id)
        ids.append(event_id)
        times.append(ts)
        while len(ids) > self.remember_joined:
            times.popleft()
            self._joined.discard(ids.popleft())

    # -- introspection and state ----------------------------------------------------------------
    @property
    def pending_predictions(self) -> int:
        return len(self._predictions)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def to_state(self) -> dict[str, Any]:
        return {
            "watermark": self._watermark,
            "predictions": [
                [k, p.offset, p.ts, p.model, p.prediction, p.online_prediction, p.features]
                for k, p in self._predictions.items()
            ],
            "labels": [[k, v.offset, v.ts, v.model, v.label, v.raw] for k, v in self._labels.items()],
            # two flat lists (not pairs): this is most of the state and it is written every checkpoint
            "joined_ids": list(self._joined_ids),
            "joined_ts": list(self._joined_ts),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._watermark = float(state["watermark"])
        self._predictions = OrderedDict((k, PendingPrediction(o, t, m, p, op, f)) for k, o, t, m, p, op, f in state["predictions"])
        self._labels = OrderedDict((k, PendingLabel(o, t, m, lab, raw)) for k, o, t, m, lab, raw in state["labels"])
        if "joined_ids" in state:
            ids, times = state["joined_ids"], [float(t) for t in state["joined_ts"]]
        else:  # checkpoints written before the flat lists
            ids, times = [k for k, _ in state["joined"]], [float(t) for _, t in state["joined"]]
        self._joined_ids, self._joined_ts, self._joined = deque(ids), deque(times), set(ids)


_NONE: list = []  # returned for "nothing expired"; callers only read it
_NOTHING = (_NONE, _NONE)


class MismatchedLabel(InvalidMessage):
    """A held label turned out to name another model than its prediction: the label is dead-lettered."""

    def __init__(self, event_id: str, label: PendingLabel) -> None:
        super().__init__("model_mismatch", f"label for {event_id!r} names model {label.model!r}")
        self.label = label
