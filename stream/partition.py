"""The per-partition processor: owns everything about partition *i* of both input topics.

A message's path reads top to bottom in :meth:`PartitionProcessor.process_record`:
decode → validate → data quality → (online model predicts) → join → detect (micro-batch: concept drift, then
feature / prediction / label drift) → decide → publish.

Ordering. Inference and label messages of a partition come from two topics whose interleaving in a
fetch is an accident of timing. To make a replay after a crash produce exactly the same joins, alarms and
outputs, records are released in a deterministic merge order: by (Kafka timestamp, topic, offset), and
a record is only released when the other topic has a later record buffered or is caught up to its high
watermark. If one input stays empty for ``max_idle_wait_seconds`` while not caught up (a stalled
producer), the other is processed without waiting: live traffic then follows arrival order.
"""

from __future__ import annotations

import base64
import pickle
from collections import deque
from typing import Any, Callable

import orjson

from stream.config import AppConfig
from stream.datadrift import DataDriftMonitor, Position
from stream.decide import drift_event, label_missing_event, online_prediction_event
from stream.decode import decode
from stream.detect import ModelMonitor
from stream.errors import InvalidMessage, StateRefused
from stream.events import Record
from stream.join import Joined, LabelJoin, MismatchedLabel, PendingLabel, PendingPrediction
from stream.quality import DataQualityChecker
from stream.validate import validate_inference, validate_label

STATE_FORMAT = 1
MAX_MODELS_PER_PARTITION = 100


class PartitionProcessor:
    def __init__(self, partition: int, cfg: AppConfig, epoch: int, publisher: Any, metrics: Any) -> None:
        self.partition = partition
        self.cfg = cfg
        self.epoch = epoch
        self.publisher = publisher
        self.metrics = metrics
        t = cfg.topics
        self.inference_topic = t.inference
        self.labels_topic = t.labels
        self.buffers: dict[str, deque[Record]] = {t.inference: deque(), t.labels: deque()}
        self._rank = {t.inference: 0, t.labels: 1}
        self._empty_since: dict[str, float | None] = {t.inference: None, t.labels: None}
        #: next offset to process per input topic: what a checkpoint stores
        self.next_offsets: dict[str, int] = {}
        self.join = LabelJoin(cfg.join.max_pending, cfg.join.ttl_seconds, cfg.join.remember_joined)
        self.monitors: dict[str, ModelMonitor] = {}
        self.quality: dict[str, DataQualityChecker] = {}
        self.data_drift: dict[str, DataDriftMonitor] = {}
        self.expired_predictions = 0
        self.unmatched_labels = 0
        self.processed_since_checkpoint = 0

    # -- buffering and deterministic release ------------------------------------------------------
    def add(self, record: Record) -> None:
        self.buffers[record.topic].append(record)

    def buffered(self, topic: str) -> int:
        return len(self.buffers[topic])

    def release(self, caught_up: Callable[[str], bool], now: float) -> list[Record]:
        a, b = self.buffers[self.inference_topic], self.buffers[self.labels_topic]
        out: list[Record] = []
        while a or b:
            if a and b:
                ha, hb = a[0], b[0]
                take = a if (ha.timestamp_ms, 0, ha.offset) <= (hb.timestamp_ms, 1, hb.offset) else b
            else:
                empty_topic = self.labels_topic if a else self.inference_topic
                if not (caught_up(empty_topic) or self._idle_too_long(empty_topic, now)):
                    break
                take = a if a else b
            out.append(take.popleft())
        for topic, buf in self.buffers.items():
            if buf:
                self._empty_since[topic] = None
            elif self._empty_since[topic] is None:
                self._empty_since[topic] = now
        return out

    def _idle_too_long(self, topic: str, now: float) -> bool:
        since = self._empty_since[topic]
        return since is not None and now - since >= self.cfg.processing.max_idle_wait_seconds

    # -- processing --------------------------------------------------------------------------------
    def process(self, records: list[Record]) -> None:
        for r in records:
            self.process_record(r)
        self.detect_and_decide()

    def process_record(self, r: Record) -> None:
        try:
            obj = decode(r.value, self.cfg.processing.max_message_bytes)
            if r.topic == self.inference_topic:
                self._on_inference(r, obj)
            else:
                self._on_label(r, obj)
            self.metrics.message(r.topic, r.partition, "processed")
        except InvalidMessage as exc:
            self._dead_letter(r, exc.reason, exc.detail)
        self.next_offsets[r.topic] = r.offset + 1
        self.processed_since_checkpoint += 1
        self._expire()

    def _monitor(self, model: str) -> ModelMonitor:
        mon = self.monitors.get(model)
        if mon is None:
            if model not in self.cfg.models and not self.cfg.accept_undeclared_models:
                raise InvalidMessage("unknown_model", f"model {model!r} is not declared in the config")
            if len(self.monitors) >= MAX_MODELS_PER_PARTITION:
                raise InvalidMessage("too_many_models", f"more than {MAX_MODELS_PER_PARTITION} models in one partition")
            spec = self.cfg.model_spec(model)
            mon = self.monitors[model] = ModelMonitor(model, spec)
            self.quality[model] = DataQualityChecker(model, dict(spec.features), spec.data_quality)
            self.data_drift[model] = DataDriftMonitor(model, spec.task, spec.data_drift)
        return mon

    def _check_quality(self, r: Record, ev: Any) -> None:
        """Data-quality checks, then the event's values into the data-drift tests of its model."""
        spec = self.cfg.model_spec(ev.model)
        checker = self.quality[ev.model]
        valid = True
        if spec.data_quality.enabled:
            valid, issues = checker.check(ev)
            for issue in issues:
                self.metrics.quality_issue(ev.model, issue.check)
                self.publisher.send(self.cfg.topics.data_quality, ev.id,
                                    checker.event(issue, r.topic, r.partition, r.offset, ev.ts, ev.id))
        self.data_drift[ev.model].add_inference(ev.features, checker.types, valid, ev.prediction, ev.score,
                                                Position(r.topic, r.offset, ev.ts, ev.id))

    def _on_inference(self, r: Record, obj: dict[str, Any]) -> None:
        ev = validate_inference(obj)
        mon = self._monitor(ev.model)
        self._check_quality(r, ev)
        online = mon.predict_online(ev.features)
        pending = PendingPrediction(r.offset, ev.ts, ev.model, ev.prediction, online, ev.features)
        try:
            joined = self.join.add_prediction(ev.id, pending)
        except MismatchedLabel as exc:
            self._dead_letter(
                Record(self.labels_topic, r.partition, exc.label.offset, 0, ev.id.encode(), exc.label.raw.encode()),
                exc.reason, exc.detail,
            )
            joined = None
        if mon.online is not None:
            self.publisher.send(
                self.cfg.topics.online_predictions, ev.id,
                online_prediction_event(r, ev, online, mon.model_version),
            )
        if joined is not None:
            self._joined(mon, joined)

    def _on_label(self, r: Record, obj: dict[str, Any]) -> None:
        ev = validate_label(obj)
        mon = self._monitor(ev.model)
        self.data_drift[ev.model].add_label(ev.label, Position(r.topic, r.offset, ev.ts, ev.id))
        raw = (r.value or b"").decode("utf-8", "replace")
        joined = self.join.add_label(ev.id, PendingLabel(r.offset, ev.ts, ev.model, ev.label, raw))
        if joined is not None:
            self._joined(mon, joined)

    def _joined(self, mon: ModelMonitor, j: Joined) -> None:
        mon.on_joined(j)
        self.metrics.joined(mon.model, j.label_ts - j.prediction.ts)

    def _expire(self) -> None:
        preds, labels = self.join.expire()
        if preds:
            self.expired_predictions += len(preds)
            self.metrics.join_expired(len(preds))
            for event_id, pred in preds:
                self.publisher.send(
                    self.cfg.topics.data_quality, event_id,
                    label_missing_event(self, event_id, pred, "ttl_or_capacity"),
                )
        for event_id, lab in labels:
            self.unmatched_labels += 1
            self._dead_letter(
                Record(self.labels_topic, self.partition, lab.offset, 0, event_id.encode(), lab.raw.encode()),
                "label_without_prediction",
                f"no prediction with id {event_id!r} arrived within the join window",
                count_as_message=False,
            )

    def _dead_letter(self, r: Record, reason: str, detail: str, count_as_message: bool = True) -> None:
        self.publisher.dead_letter(self.cfg.topics.dead_letter, r, reason, detail)
        self.metrics.dead_letter(r.topic, reason)
        if count_as_message:
            self.metrics.message(r.topic, r.partition, "dead_letter")

    def detect_and_decide(self) -> None:
        for model, mon in self.monitors.items():
            for alarm in mon.run_detectors():
                self.metrics.alarm(model, "concept", alarm.detector, alarm.warning)
                if alarm.warning:
                    continue
                ev = drift_event(self, mon, alarm)
                self.publisher.send(self.cfg.topics.drift_events, model, ev)
            self.metrics.model_errors(model, mon.rolling_served_error(), mon.rolling_online_error())
            dd = self.data_drift[model]
            for finding in dd.run_tests():
                self.metrics.alarm(model, finding.kind, finding.detector, False)
                self.publisher.send(self.cfg.topics.drift_events, model, dd.event(finding, self.partition))
            for (_, signal, detector), value in dd.latest.items():
                self.metrics.drift_statistic(model, signal, detector, value)
        self.metrics.pending(self.partition, self.join.pending_predictions, self.join.pending_labels)

    # -- state -------------------------------------------------------------------------------------
    def to_payload(self) -> bytes:
        monitors, models = {}, {}
        for name, mon in self.monitors.items():
            monitors[name] = mon.to_state()
            if mon.online is not None:
                models[name] = base64.b64encode(pickle.dumps(mon.online, protocol=5)).decode()
        state = {
            "format": STATE_FORMAT,
            "quality": {name: q.to_state() for name, q in self.quality.items()},
            "data_drift": {name: d.to_state() for name, d in self.data_drift.items()},
            "partition": self.partition,
            "next_offsets": self.next_offsets,
            "join": self.join.to_state(),
            "monitors": monitors,
            "models": models,
            "expired_predictions": self.expired_predictions,
            "unmatched_labels": self.unmatched_labels,
        }
        return orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY)

    def load_payload(self, payload: bytes) -> None:
        """Load a payload whose HMAC was already verified by the checkpoint store."""
        state = orjson.loads(payload)
        if state.get("format") != STATE_FORMAT or state.get("partition") != self.partition:
            raise StateRefused(
                f"checkpoint for partition {self.partition} has format {state.get('format')!r} "
                f"and partition {state.get('partition')!r}; refusing it"
            )
        self.next_offsets = {k: int(v) for k, v in state["next_offsets"].items()}
        self.join.load_state(state["join"])
        for name, mstate in state["monitors"].items():
            mon = ModelMonitor(name, self.cfg.model_spec(name))
            blob = state["models"].get(name)
            model = pickle.loads(base64.b64decode(blob)) if blob is not None and mon.online is not None else None
            mon.load_state(mstate, model)
            self.monitors[name] = mon
            spec = self.cfg.model_spec(name)
            self.quality[name] = DataQualityChecker(name, dict(spec.features), spec.data_quality)
            self.data_drift[name] = DataDriftMonitor(name, spec.task, spec.data_drift)
            # checkpoints written before data quality / data drift existed have no such state: start fresh
            if name in state.get("quality", {}):
                self.quality[name].load_state(state["quality"][name])
            if name in state.get("data_drift", {}):
                self.data_drift[name].load_state(state["data_drift"][name])
        self.expired_predictions = state["expired_predictions"]
        self.unmatched_labels = state["unmatched_labels"]

    def summary(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "epoch": self.epoch,
            "next_offsets": self.next_offsets,
            "pending_predictions": self.join.pending_predictions,
            "pending_labels": self.join.pending_labels,
            "expired_predictions": self.expired_predictions,
            "unmatched_labels": self.unmatched_labels,
            "models": {
                name: {
                    "joined": m.joined,
                    "served_error_rolling": m.rolling_served_error(),
                    "online_error_rolling": m.rolling_online_error(),
                    "model_version": m.model_version,
                    "detectors": [repr(d) for d in m.detectors],
                }
                for name, m in self.monitors.items()
            },
        }
