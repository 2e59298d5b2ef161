"""The per-partition processor: owns everything about partition *i* of both input topics.

A message's path reads top to bottom in :meth:`PartitionProcessor.process`:
decode → validate → (online model predicts) → join, then per micro-batch in :meth:`detect_and_decide`:
data quality and data-drift buffering of the batch's inference events, column by column (in event order,
with the same results as event by event) → detect (concept drift, then feature / prediction / label drift)
→ decide → publish.

Ordering. Inference and label messages of a partition come from two topics whose interleaving in a
fetch is an accident of timing. To make a replay after a crash produce exactly the same joins, alarms and
outputs, records are released in a deterministic merge order: by (Kafka timestamp, topic, offset), and
a record is only released when the other topic has a later record buffered or is caught up to its high
watermark. If one input stays empty for ``max_idle_wait_seconds`` while not caught up and the broker is not known to
hold a backlog of it (a stalled producer, stale watermarks), the other is processed without waiting: live
traffic then follows arrival order. While catching up on a backlog the merge waits for the slower input.
"""

from __future__ import annotations

import base64
import pickle
from collections import deque
from typing import Any, Callable

import orjson
from orjson import loads as _loads

from stream.champion import ChampionChallenger
from stream.config import AppConfig
from stream.datadrift import DataDriftMonitor, Position
from stream.outputs import (challenger_event, drift_event, label_missing_event, online_prediction_event,
                           retrain_event, swap_event)
from stream.decode import decode
from stream.detect import ModelMonitor
from stream.errors import InvalidMessage, StateRefused
from stream.events import InferenceEvent, LabelEvent, Record
from stream.join import Joined, LabelJoin, MismatchedLabel, PendingLabel, PendingPrediction
from stream.policy import Position as PolicyPosition
from stream.policy import RetrainPolicy
from stream.quality import DataQualityChecker
from stream.volume import LabelDelayWatch, VolumeWatch
from stream.validate import TypedInference, TypedLabel, typed_inference, typed_label, validate_inference, validate_label

STATE_FORMAT = 1
MAX_MODELS_PER_PARTITION = 100
#: a silent input with at most this many messages known to wait on the broker may be skipped after
#: ``max_idle_wait_seconds`` (transaction markers occupy offsets but are never delivered)
IDLE_BACKLOG_SLACK = 16
SCHEMA_CHECKS = frozenset({"missing_feature", "unexpected_feature", "wrong_type"})


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
        self._empty_since: dict[str, float | None] = {t.inference: None, t.labels: None}
        #: next offset to process per input topic: what a checkpoint stores
        self.next_offsets: dict[str, int] = {}
        self.join = LabelJoin(cfg.join.max_pending, cfg.join.ttl_seconds, cfg.join.remember_joined)
        self.monitors: dict[str, ModelMonitor] = {}
        self.quality: dict[str, DataQualityChecker] = {}
        self.data_drift: dict[str, DataDriftMonitor] = {}
        self.policies: dict[str, RetrainPolicy] = {}
        self.delay_watch: dict[str, LabelDelayWatch] = {}
        self.volume_watch: dict[str, VolumeWatch] = {}
        #: wall-clock time of the last input (for the no-data check; not part of the state)
        self.last_input_wall: float | None = None
        self.no_data_reported = False
        self.challengers: dict[str, ChampionChallenger] = {}
        #: per record of the current micro-batch, in order (record k has sequence number
        #: ``_batch_seq0 + k``): (topic, offset, next inference offset, next labels offset, event time);
        #: the decision pass replays the batch in this order
        self._batch_rows: list[tuple[str, int, int | None, int | None, float]] = []
        self._batch_seq0 = 1
        #: (topic, offset) -> sequence number, built on demand (data-drift findings, change points)
        self._batch_index: dict[tuple[str, int], int] | None = None
        #: policy inputs that arrive outside the joined stream (schema changes), by sequence number
        self._policy_inputs: dict[str, list[tuple[int, int, str, Any]]] = {}
        #: the batch's inference events per model, for the column-wise data-quality pass: (record, event, seq)
        self._inference_rows: dict[str, list[tuple[Record, Any, int]]] = {}
        #: the batch's joins per model whose monitor takes them once per batch (see
        #: :attr:`ModelMonitor.defers_joins`), in order: settled before data quality in :meth:`detect_and_decide`
        self._deferred_joins: dict[str, list[Joined]] = {}
        self.seq = 0
        self.last_ts = 0.0
        self.expired_predictions = 0
        self.unmatched_labels = 0
        self.processed_since_checkpoint = 0
        self._max_bytes = cfg.processing.max_message_bytes

    # -- buffering and deterministic release ------------------------------------------------------
    def add(self, record: Record) -> None:
        self.buffers[record.topic].append(record)

    def buffered(self, topic: str) -> int:
        return len(self.buffers[topic])

    def release(self, caught_up: Callable[[str], bool], now: float,
                backlog: Callable[[str], int | None] | None = None) -> list[Record]:
        a, b = self.buffers[self.inference_topic], self.buffers[self.labels_topic]
        out: list[Record] = []
        may_drain: dict[str, bool] = {}  # caught-up answers do not change within one release
        while a or b:
            if a and b:
                # by (timestamp, topic rank, offset): an equal timestamp releases the inference record first
                append = out.append
                while a and b:
                    append(a.popleft() if a[0].timestamp_ms <= b[0].timestamp_ms else b.popleft())
                continue
            empty_topic = self.labels_topic if a else self.inference_topic
            ok = may_drain.get(empty_topic)
            if ok is None:
                ok = may_drain[empty_topic] = caught_up(empty_topic) or (
                    self._idle_too_long(empty_topic, now) and not self._backlogged(empty_topic, backlog))
            if not ok:
                break
            out.extend(a if a else b)
            (a if a else b).clear()
        for topic, buf in self.buffers.items():
            if buf:
                self._empty_since[topic] = None
            elif self._empty_since[topic] is None:
                self._empty_since[topic] = now
        return out

    @staticmethod
    def _backlogged(topic: str, backlog: Callable[[str], int | None] | None) -> bool:
        """The broker is known to hold more of ``topic`` than we fetched (not just a transaction marker or
        two): its records will come, so waiting for them keeps the merge order exact (catching up on a
        backlog fetches the two inputs at different speeds; that is not a stalled producer)."""
        if backlog is None:
            return False
        n = backlog(topic)
        return n is not None and n > IDLE_BACKLOG_SLACK

    def _idle_too_long(self, topic: str, now: float) -> bool:
        since = self._empty_since[topic]
        return since is not None and now - since >= self.cfg.processing.max_idle_wait_seconds

    # -- processing --------------------------------------------------------------------------------
    def process(self, records: list[Record], now: float | None = None) -> None:
        """One micro-batch: every record in order (decode → validate → (online model predicts) → join),
        then :meth:`detect_and_decide` once."""
        if records:
            self.last_input_wall = now
            self.no_data_reported = False
        self._batch_seq0 = self.seq + 1
        inf_topic, lab_topic, max_bytes = self.inference_topic, self.labels_topic, self._max_bytes
        processed = {inf_topic: 0, lab_topic: 0}
        nxt, rows, join = self.next_offsets, self._batch_rows, self.join
        next_inf, next_lab = nxt.get(inf_topic), nxt.get(lab_topic)
        on_inference, on_label = self._on_inference, self._on_label
        for r in records:
            topic = r.topic
            offset = r.offset
            try:
                v = r.value
                small = v is not None and len(v) <= max_bytes
                # a well-formed message in one step; anything else in two, with the precise reason
                if topic == inf_topic:
                    ev = typed_inference(v) if small else None
                    on_inference(r, ev or validate_inference(self._decode(v, small), json_bytes=len(v)))
                else:
                    ev = typed_label(v) if small else None
                    on_label(r, ev or validate_label(self._decode(v, small)))
                processed[topic] += 1
            except InvalidMessage as exc:
                self._dead_letter(r, exc.reason, exc.detail)
            if topic == inf_topic:
                next_inf = nxt[topic] = offset + 1
            else:
                next_lab = nxt[topic] = offset + 1
            self.seq += 1
            rows.append((topic, offset, next_inf, next_lab, self.last_ts))
            preds, labels = join.expire()
            if preds or labels:
                self._expired(preds, labels)
        self.processed_since_checkpoint += len(records)
        for topic, n in processed.items():
            if n:
                self.metrics.message(topic, self.partition, "processed", n)
        self.detect_and_decide()
        self.metrics.flush()

    def _decode(self, v: bytes | None, small: bool) -> dict[str, Any]:
        try:  # the usual case in one step; anything unusual gets its precise reason from decode()
            obj = _loads(v) if small else None
        except orjson.JSONDecodeError:
            obj = None
        return obj if type(obj) is dict else decode(v, self._max_bytes)

    def _monitor(self, model: str) -> ModelMonitor:
        mon = self.monitors.get(model)
        if mon is None:
            if model not in self.cfg.models and not self.cfg.accept_undeclared_models:
                raise InvalidMessage("unknown_model", f"model {model!r} is not declared in the config")
            if len(self.monitors) >= MAX_MODELS_PER_PARTITION:
                raise InvalidMessage("too_many_models", f"more than {MAX_MODELS_PER_PARTITION} models in one partition")
            spec = self.cfg.model_spec(model)
            mon = self.monitors[model] = ModelMonitor(model, spec)
            self._attach(model)
        return mon

    def _attach(self, model: str) -> None:
        spec = self.cfg.model_spec(model)
        self.quality[model] = DataQualityChecker(model, dict(spec.features), spec.data_quality)
        self.data_drift[model] = DataDriftMonitor(model, spec.task, spec.data_drift)
        self.policies[model] = RetrainPolicy(spec.retrain)
        c = spec.challenger
        self.challengers[model] = ChampionChallenger(spec.task, c.window, c.alpha, c.min_pairs)
        self._policy_inputs[model] = []
        self._inference_rows[model] = []
        self._deferred_joins[model] = []
        self.delay_watch[model] = LabelDelayWatch(spec.data_quality)
        self.volume_watch[model] = VolumeWatch(spec.data_quality)

    def _check_quality(self) -> None:
        """Data-quality checks of the batch's inference events, then their values into the data-drift
        tests of their model: column by column (see :meth:`DataQualityChecker.check_many`), events in order."""
        for model, rows in self._inference_rows.items():
            if not rows:
                continue
            self._inference_rows[model] = []
            spec = self.cfg.model_spec(model)
            checker = self.quality[model]
            features = [ev.features for _, ev, _ in rows]
            if spec.data_quality.enabled:
                for i, dropped in self.volume_watch[model].observe_many([ev.ts for _, ev, _ in rows]):
                    r, ev, _ = rows[i]
                    self._quality_event(model, "volume_drop", r.topic, r.offset, ev.ts, dropped)
                valid, issues, columns, _ = checker.check_many(features)
                for i, issue in issues:
                    r, ev, seq = rows[i]
                    self.metrics.quality_issue(model, issue.check)
                    dq = checker.event(issue, r.topic, r.partition, r.offset, ev.ts, ev.id)
                    self.publisher.send(self.cfg.topics.data_quality, ev.id, dq)
                    if issue.check in SCHEMA_CHECKS:
                        self._policy_inputs[model].append((seq, 1, "schema", dq["id"]))
            else:
                valid, columns = [True] * len(rows), None
            if spec.data_drift.enabled:
                self.data_drift[model].add_inferences(
                    features, columns, checker.types, valid, [ev.prediction for _, ev, _ in rows],
                    [ev.score for _, ev, _ in rows], [Position(r.topic, r.offset, ev.ts, ev.id) for r, ev, _ in rows])

    def _on_inference(self, r: Record, ev: InferenceEvent | TypedInference) -> None:
        mon = self.monitors.get(ev.model) or self._monitor(ev.model)
        # a duplicate is bad input: it must not reach data quality, the drift tests or the model
        self.join.check_prediction(ev.id)
        if ev.ts > self.last_ts:
            self.last_ts = ev.ts
        self._inference_rows[ev.model].append((r, ev, self.seq + 1))  # checked column-wise per batch
        online = mon.predict_online(ev.features) if mon.online is not None else None
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
            joined.seq = self.seq + 1
            if mon.defers_joins:
                self._deferred_joins[ev.model].append(joined)
                return
            self.data_drift[ev.model].add_label(joined.label, Position(r.topic, r.offset, ev.ts, ev.id))
            self._joined(mon, joined)

    def _on_label(self, r: Record, ev: LabelEvent | TypedLabel) -> None:
        mon = self.monitors.get(ev.model) or self._monitor(ev.model)
        self.join.check_label(ev.id)
        if ev.ts > self.last_ts:
            self.last_ts = ev.ts
        # the raw bytes are decoded only if the label has to wait (see LabelJoin.add_label)
        joined = self.join.join_label(ev.id, r.offset, ev.ts, ev.model, ev.label, r.value or b"")
        if joined is not None:
            joined.seq = self.seq + 1
            if mon.defers_joins:
                self._deferred_joins[ev.model].append(joined)
                return
            # label drift sees the labels that belong to a prediction (a label that never meets its
            # prediction is dead-lettered, not counted)
            self.data_drift[ev.model].add_label(ev.label, Position(r.topic, r.offset, ev.ts, ev.id))
            self._joined(mon, joined)

    def _settle_joins(self) -> None:
        """The batch's deferred joins, per model in order: exactly what :meth:`_joined` (and the label
        drift buffering before it) does one by one, in a few passes."""
        for model, js in self._deferred_joins.items():
            if not js:
                continue
            self._deferred_joins[model] = []
            mon = self.monitors[model]
            dd = self.data_drift[model]
            if dd.cfg.enabled:
                inf, lab = self.inference_topic, self.labels_topic
                for j in js:
                    if j.completed_by == "labels":
                        dd.add_label(j.label, Position(lab, j.completed_offset, j.label_ts, j.id))
                    else:
                        dd.add_label(j.label, Position(inf, j.completed_offset, j.prediction.ts, j.id))
            mon.on_joined_many(js)
            delays = [j.label_ts - j.prediction.ts for j in js]
            self.metrics.joined_many(model, delays)
            if mon.spec.data_quality.enabled:
                for i, grown in self.delay_watch[model].observe_many(delays):
                    self._delay_grown(model, js[i], grown)

    def _joined(self, mon: ModelMonitor, j: Joined) -> None:
        swap = mon.on_joined(j)
        delay = j.label_ts - j.prediction.ts
        self.metrics.joined(mon.model, delay)
        if mon.spec.data_quality.enabled:
            grown = self.delay_watch[mon.model].observe(delay)
            if grown is not None:
                self._delay_grown(mon.model, j, grown)
        if swap is not None:
            self.metrics.model_swap(mon.model)
            self.publisher.send(self.cfg.topics.model_updates, mon.model, swap_event(self, mon, swap))

    def _delay_grown(self, model: str, j: Joined, evidence: dict[str, Any]) -> None:
        """The label-delay-growth event, at the input that completed join ``j``."""
        topic = self.inference_topic if j.completed_by == "inference" else self.labels_topic
        self._quality_event(model, "label_delay_growth", topic, j.completed_offset,
                            max(j.label_ts, j.prediction.ts), evidence)

    def _quality_event(self, model: str, check: str, topic: str, offset: int, ts: float,
                       evidence: dict[str, Any]) -> None:
        self.metrics.quality_issue(model, check)
        self.publisher.send(self.cfg.topics.data_quality, model, {
            "id": f"{topic}:{self.partition}:{offset}:dq:{check}:*", "type": "data-quality", "check": check,
            "feature": "*", "model": model, "partition": self.partition, "offset": offset, "topic": topic,
            "ts": ts, "severity": "warning", "evidence": evidence,
        })

    def check_no_data(self, now: float) -> None:
        """Wall clock: report a partition that received nothing for ``no_data_seconds`` (once per silence)."""
        limits = [m.spec.data_quality.no_data_seconds for m in self.monitors.values()
                  if m.spec.data_quality.enabled and m.spec.data_quality.no_data_seconds > 0]
        if not limits or self.last_input_wall is None:
            return
        silent = now - self.last_input_wall
        if silent >= min(limits) and not self.no_data_reported:
            self.no_data_reported = True
            inf, lab = self.next_offsets.get(self.inference_topic, 0), self.next_offsets.get(self.labels_topic, 0)
            self.metrics.quality_issue("*", "no_data")
            self.publisher.send(self.cfg.topics.data_quality, None, {
                "id": f"{self.inference_topic}:{self.partition}:{inf}-{lab}:dq:no_data:*", "type": "data-quality",
                "check": "no_data", "feature": "*", "model": "*", "partition": self.partition,
                "severity": "warning", "evidence": {"silent_seconds": round(silent, 1), "limit_seconds": min(limits),
                                                    "next_offsets": {self.inference_topic: inf, self.labels_topic: lab}},
            })

    def _expired(self, preds: list[tuple[str, PendingPrediction]], labels: list[tuple[str, PendingLabel]]) -> None:
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
        self._settle_joins()
        self._check_quality()
        for model, mon in self.monitors.items():
            inputs: list[tuple[int, int, str, Any]] = self._policy_inputs[model]
            self._policy_inputs[model] = []
            inputs += [(o[2].seq, 0, "label", o) for o in mon.batch_outcomes()]
            for alarm in mon.run_detectors():
                self.metrics.alarm(model, "concept", alarm.detector, alarm.warning)
                seq = alarm.joined.seq
                if alarm.warning:
                    inputs.append((seq, 2, "warning", alarm))
                    continue
                ev = drift_event(self, mon, alarm)
                self.publisher.send(self.cfg.topics.drift_events, model, ev)
                inputs.append((seq, 3, "drift", (ev["id"], alarm)))
            self.metrics.model_errors(model, mon.rolling_served_error(), mon.rolling_online_error())
            dd = self.data_drift[model]
            for finding in dd.run_tests():
                self.metrics.alarm(model, finding.kind, finding.detector, False)
                ev = dd.event(finding, self.partition)
                self.publisher.send(self.cfg.topics.drift_events, model, ev)
                inputs.append((self._seq_at(finding.at.topic, finding.at.offset), 1, "data_drift", (ev["id"], finding)))
            for finding in getattr(dd, "recoveries", []):
                inputs.append((self._seq_at(finding.at.topic, finding.at.offset), 1, "data_drift_end", finding))
            for (_, signal, detector), value in dd.latest.items():
                self.metrics.drift_statistic(model, signal, detector, value)
            inputs.sort(key=lambda t: (t[0], t[1]))
            self._decide(model, mon, inputs)
        self._batch_rows.clear()
        self._batch_index = None
        self.metrics.pending(self.partition, self.join.pending_predictions, self.join.pending_labels)

    def _seq_at(self, topic: str, offset: int) -> int:
        if self._batch_index is None:
            self._batch_index = {(row[0], row[1]): self._batch_seq0 + k for k, row in enumerate(self._batch_rows)}
        return self._batch_index[(topic, offset)]

    def _row(self, seq: int) -> tuple[str, int, int | None, int | None, float] | None:
        """The batch row of a sequence number (None: not in this batch)."""
        k = seq - self._batch_seq0
        return self._batch_rows[k] if 0 <= k < len(self._batch_rows) else None

    def _decide(self, model: str, mon: ModelMonitor, inputs: list[tuple[int, int, str, Any]]) -> None:
        """Replay the batch's policy inputs in input order, so that decisions (and their windows) do not
        depend on where micro-batch boundaries fell."""
        policy, cc = self.policies[model], self.challengers[model]
        spec = mon.spec
        challenger = spec.challenger.enabled
        rows, seq0 = self._batch_rows, self._batch_seq0
        n = len(rows)
        for seq, order, kind, payload in inputs:
            k = seq - seq0
            if not 0 <= k < n:  # belongs to a record of a later batch (an on-demand request): keep it
                self._policy_inputs[model].append((seq, order, kind, payload))
                continue
            row = rows[k]
            if kind == "label":
                err, online_err, j = payload
                policy.observe_label(max(j.label_ts, j.prediction.ts), err)
                if challenger and online_err is not None:
                    cc.add(err, online_err)
                    if cc.added % spec.challenger.every == 0:
                        self._challenge(model, mon, cc, (row[0], row[1]), PolicyPosition(row[2], row[3], row[4]))
            elif kind == "warning":
                policy.observe_warning(self._change_point(payload.joined))
            elif kind == "drift":
                event_id, alarm = payload
                policy.observe_concept_drift(event_id, self._change_point(alarm.joined))
            elif kind == "data_drift":
                event_id, f = payload
                policy.observe_data_drift(f"{f.kind}:{f.signal}:{f.detector}", event_id, f.at.ts, True)
            elif kind == "data_drift_end":
                f = payload
                policy.observe_data_drift(f"{f.kind}:{f.signal}:{f.detector}", None, f.at.ts, False)
            elif kind == "schema":
                policy.observe_schema_change(payload)
            elif kind == "request":
                policy.request(payload)
            decision = policy.decide_at(row[4])
            if decision is not None:
                comparison = cc.compare() if challenger else None
                ev = retrain_event(self, model, (row[0], row[1]), PolicyPosition(row[2], row[3], row[4]), decision,
                                   comparison)
                self.metrics.retrain(model, decision.reasons)
                self.publisher.send(self.cfg.topics.retrain_events, model, ev)

    def _change_point(self, j: Joined) -> PolicyPosition:
        lab = self._row(j.seq)[3]
        labels_offset = j.completed_offset if j.completed_by == "labels" else lab
        return PolicyPosition(j.prediction.offset, labels_offset, j.prediction.ts)

    def _challenge(self, model: str, mon: ModelMonitor, cc: ChampionChallenger, key: tuple[str, int],
                   here: PolicyPosition) -> None:
        result = cc.compare()
        if result is None:
            return
        if result.challenger_better and not cc.better:
            cc.better = True
            self.publisher.send(self.cfg.topics.model_updates, model,
                                challenger_event(self, mon, key, here, result))
        elif not result.challenger_better:
            cc.better = False

    def request_retrain(self, model: str | None, reason: str = "on_demand") -> int:
        """An on-demand retrain (control topic): decided at the next record of the model's stream."""
        n = 0
        for name in self.monitors:
            if model is None or name == model:
                self._policy_inputs[name].append((self.seq + 1, 1, "request", reason))
                n += 1
        return n

    # -- state -------------------------------------------------------------------------------------
    def to_payload(self) -> bytes:
        monitors, models, backgrounds = {}, {}, {}
        for name, mon in self.monitors.items():
            monitors[name] = mon.to_state()
            if mon.online is not None:
                models[name] = base64.b64encode(pickle.dumps(mon.online, protocol=5)).decode()
            if mon.background is not None:
                backgrounds[name] = base64.b64encode(pickle.dumps(mon.background, protocol=5)).decode()
        state = {
            "format": STATE_FORMAT,
            "quality": {name: q.to_state() for name, q in self.quality.items()},
            "data_drift": {name: d.to_state() for name, d in self.data_drift.items()},
            "partition": self.partition,
            "next_offsets": self.next_offsets,
            "join": self.join.to_state(),
            "monitors": monitors,
            "models": models,
            "backgrounds": backgrounds,
            "policies": {name: p.to_state() for name, p in self.policies.items()},
            "delay_watch": {name: d.to_state() for name, d in self.delay_watch.items()},
            "volume_watch": {name: v.to_state() for name, v in self.volume_watch.items()},
            "challengers": {name: c.to_state() for name, c in self.challengers.items()},
            "policy_inputs": {name: [list(i) for i in v] for name, v in self._policy_inputs.items() if v},
            "seq": self.seq,
            "last_ts": self.last_ts,
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
            bblob = state.get("backgrounds", {}).get(name)
            background = pickle.loads(base64.b64decode(bblob)) if bblob is not None and mon.online is not None else None
            mon.load_state(mstate, model, background)
            self.monitors[name] = mon
            self._attach(name)
            if name in state.get("policies", {}):
                self.policies[name].load_state(state["policies"][name])
            if name in state.get("delay_watch", {}):
                self.delay_watch[name].load_state(state["delay_watch"][name])
            if name in state.get("volume_watch", {}):
                self.volume_watch[name].load_state(state["volume_watch"][name])
            if name in state.get("challengers", {}):
                self.challengers[name].load_state(state["challengers"][name])
            self._policy_inputs[name] = [tuple(i) for i in state.get("policy_inputs", {}).get(name, [])]
            # checkpoints written before data quality / data drift existed have no such state: start fresh
            if name in state.get("quality", {}):
                self.quality[name].load_state(state["quality"][name])
            if name in state.get("data_drift", {}):
                self.data_drift[name].load_state(state["data_drift"][name])
        self.seq = state.get("seq", 0)
        self.last_ts = state.get("last_ts", 0.0)
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
                    "calibrations": m.calibrations,
                    "background_model": m.background is not None,
                    "retrain_policy": self.policies[name].to_state() if name in self.policies else None,
                    "challenger_better": self.challengers[name].better if name in self.challengers else None,
                }
                for name, m in self.monitors.items()
            },
        }
