"""The per-partition processor: owns everything about partition *i* of both input topics.

A message's path reads top to bottom: :class:`~stream.merge.InputMerge` releases the two inputs in a
deterministic order → :meth:`PartitionProcessor.process` decodes each record with the input format (bad
input goes to the dead-letter topic), joins labels to predictions and hands events to the record's
:class:`~stream.model.ModelPipeline` → at the end of the micro-batch every model pipeline checks data
quality, detects and decides (:meth:`PartitionProcessor.end_batch`). The saved state is
:mod:`stream.state`'s business.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from stream.config import AppConfig
from stream.datadrift import Position
from stream.decide import Batch
from stream.errors import InvalidMessage
from stream.events import Origin, Record
from stream.formats import input_format
from stream.join import LabelJoin, MismatchedLabel, PendingLabel, PendingPrediction
from stream.merge import InputMerge
from stream.model import ModelPipeline, PartitionContext
from stream.outputs import label_missing_event, no_data_event
from stream.scope.summary import Summary
from stream.state import encode_partition, load_partition

MAX_MODELS_PER_PARTITION = 100


class PartitionProcessor:
    def __init__(self, partition: int, cfg: AppConfig, epoch: int, publisher: Any, metrics: Any,
                 summaries: Callable[[Summary], None] | None = None) -> None:
        """``summaries``: where each micro-batch's per-model summaries go when the model-level stage runs
        (``stream.scope``); then this partition's own decisions are published only with
        ``scope.publish_partition_decisions``, and its own data-drift tests run only with
        ``scope.partition_data_drift``."""
        self.partition = partition
        self.cfg = cfg
        self.epoch = epoch
        self.publisher = publisher
        self.metrics = metrics
        t = cfg.topics
        self.inference_topic = t.inference
        self.labels_topic = t.labels
        self.merge = InputMerge(t.inference, t.labels, cfg.processing.max_idle_wait_seconds)
        self.format = input_format(cfg.processing.input_format, cfg.processing.max_message_bytes)
        self.ctx = PartitionContext(partition, t, publisher, metrics, summaries,
                                    summaries is None or cfg.scope.publish_partition_decisions,
                                    summaries is None or cfg.scope.partition_data_drift)
        #: newest event time processed per input [inference, labels] (the summaries' watermark)
        self.newest_ts = [-math.inf, -math.inf]
        #: next offset to process per input topic: what a checkpoint stores
        self.next_offsets: dict[str, int] = {}
        self.join = LabelJoin(cfg.join.max_pending, cfg.join.ttl_seconds, cfg.join.remember_joined)
        self.models: dict[str, ModelPipeline] = {}
        self.batch = Batch()
        #: wall-clock time of the last input (for the no-data check; not part of the state)
        self.last_input_wall: float | None = None
        self.no_data_reported = False
        self.seq = 0
        self.last_ts = 0.0
        self.expired_predictions = 0
        self.unmatched_labels = 0
        self.processed_since_checkpoint = 0
        #: the wall clock of the current micro-batch (what a held summary's age is measured against)
        self._now: float | None = None

    # -- processing --------------------------------------------------------------------------------
    def process(self, records: list[Record], now: float | None = None) -> None:
        """One micro-batch: every record in order (decode → join → model pipeline), then :meth:`end_batch`."""
        if records:
            self.last_input_wall = now
            self.no_data_reported = False
        self._now = now
        self.batch.start(self.seq + 1)
        inf_topic, lab_topic, fmt = self.inference_topic, self.labels_topic, self.format
        processed = {inf_topic: 0, lab_topic: 0}
        nxt, rows, join = self.next_offsets, self.batch.rows, self.join
        next_inf, next_lab = nxt.get(inf_topic), nxt.get(lab_topic)
        on_inference, on_label = self._on_inference, self._on_label
        for r in records:
            topic = r.topic
            offset = r.offset
            try:
                if topic == inf_topic:
                    on_inference(r, fmt.inference(r.value))
                else:
                    on_label(r, fmt.label(r.value))
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
        self.end_batch()
        self.metrics.flush()

    def _pipeline(self, model: str) -> ModelPipeline:
        mp = self.models.get(model)
        if mp is None:
            if model not in self.cfg.models and not self.cfg.accept_undeclared_models:
                raise InvalidMessage("unknown_model", f"model {model!r} is not declared in the config")
            if len(self.models) >= MAX_MODELS_PER_PARTITION:
                raise InvalidMessage("too_many_models", f"more than {MAX_MODELS_PER_PARTITION} models in one partition")
            mp = self.add_model(model)
        return mp

    def add_model(self, model: str) -> ModelPipeline:
        mp = self.models[model] = ModelPipeline(model, self.cfg.model_spec(model), self.ctx)
        return mp

    def _on_inference(self, r: Record, ev: Any) -> None:
        mp = self.models.get(ev.model) or self._pipeline(ev.model)
        # a duplicate is bad input: it must not reach data quality, the drift tests or the model
        self.join.check_prediction(ev.id)
        if ev.ts > self.last_ts:
            self.last_ts = ev.ts
        if ev.ts > self.newest_ts[0]:
            self.newest_ts[0] = ev.ts
        pending = PendingPrediction(r.offset, ev.ts, ev.model, ev.prediction, None, ev.features)
        online = pending.online_prediction = mp.on_inference(r, ev, self.seq + 1, pending)
        try:
            joined = self.join.add_prediction(ev.id, pending)
        except MismatchedLabel as exc:
            self._dead_letter(
                Record(self.labels_topic, r.partition, exc.label.offset, 0, ev.id.encode(), exc.label.raw.encode()),
                exc.reason, exc.detail,
            )
            joined = None
        if mp.monitor.online is not None:
            mp.publish_online_prediction(r, ev, online)
        if joined is not None:
            joined.seq = self.seq + 1
            mp.on_joined(joined, Position(r.topic, r.offset, ev.ts, ev.id))

    def _on_label(self, r: Record, ev: Any) -> None:
        mp = self.models.get(ev.model) or self._pipeline(ev.model)
        self.join.check_label(ev.id)
        if ev.ts > self.last_ts:
            self.last_ts = ev.ts
        if ev.ts > self.newest_ts[1]:
            self.newest_ts[1] = ev.ts
        if mp.batch_summary is not None and mp.spec.data_drift.enabled:  # label drift at model scope: every label
            mp.batch_summary.label(ev.ts, r.offset, ev.label)
            mp.summary_items += 1
        # the raw bytes are decoded only if the label has to wait (see LabelJoin.join_label)
        joined = self.join.join_label(ev.id, r.offset, ev.ts, ev.model, ev.label, r.value or b"")
        if joined is not None:
            joined.seq = self.seq + 1
            mp.on_joined(joined, Position(r.topic, r.offset, ev.ts, ev.id))

    def end_batch(self) -> None:
        """Every model pipeline, phase by phase: deferred joins, data quality, detection and decisions."""
        models = self.models.values()
        for mp in models:
            mp.settle_joins()
        for mp in models:
            mp.check_quality()
        for mp in models:
            mp.detect_and_decide(self.batch)
        if self.ctx.summaries is not None:
            self._send_summaries()
        self.batch.clear()
        self.metrics.pending(self.partition, self.join.pending_predictions, self.join.pending_labels)

    #: an empty summary goes out when the watermark moved this much event time since a model's last one, or
    #: when only the input positions moved and this much wall-clock time passed since it
    HEARTBEAT_SECONDS = 5.0

    def _send_summaries(self, force: bool = False) -> None:
        """Each model's summary: when it has items, or (empty) when the watermark moved on, so that a
        partition where a model is quiet does not hold the model stage back, or (empty) when only the input
        positions moved for ``HEARTBEAT_SECONDS`` of wall-clock time: the stage compares a summary's end
        positions with the input topics' high watermarks to tell a partition with a backlog (waited for) from
        an idle one (``scope.stalled_partition_seconds``), so a partition busy with other models' records
        or with bad input must keep its end positions current.

        A summary with items spans micro-batches (it is *held*) until it has ``scope.summary_flush_items``
        items or its first batch is ``scope.summary_flush_seconds`` old (wall clock), or ``force`` (before a
        checkpoint of the partition: the state must not reflect input whose items were not sent; the
        service also sends the held summaries that came due between batches, :meth:`flush_summaries`). The
        Kafka client hands the service a few records per partition at a time, and the stage pays per
        summary as well as per item. Without a wall clock (``process`` without ``now``, as in-process)
        nothing is held. Which batches carry a summary does not change the stage's
        decisions (the merge is invariant to how the summaries are cut)."""
        sc = self.cfg.scope
        clock = self._now
        hold = not force and clock is not None and sc.summary_flush_seconds > 0
        inf, lab = self.newest_ts
        wm = min(inf, lab) - sc.disorder_seconds
        watermark = math.nextafter(wm, -math.inf) if math.isfinite(wm) else None
        nxt = self.next_offsets
        end = [nxt.get(self.inference_topic, 0), nxt.get(self.labels_topic, 0)]
        sink = self.ctx.summaries
        now = self.last_input_wall
        for mp in self.models.values():
            sb = mp.batch_summary
            if sb is None:
                continue
            if force and not mp.summary_items:
                continue  # a forced flush sends what is held, not heartbeats (those come with batches)
            if hold and 0 < mp.summary_items < sc.summary_flush_items:
                if mp.summary_since is None:
                    mp.summary_since = clock
                if clock - mp.summary_since < sc.summary_flush_seconds:
                    continue  # held: its start stays where its first item is
            last = mp.summary_watermark
            moved = watermark is not None and (last is None or watermark - last >= self.HEARTBEAT_SECONDS)
            if not moved and now is not None and end != mp.summary_end:
                moved = mp.summary_wall is None or now - mp.summary_wall >= self.HEARTBEAT_SECONDS
            if mp.summary_items or moved:
                sink(sb.build(end, watermark))
                mp.summary_end = list(end)
                mp.summary_items = 0
                mp.summary_since = None
                mp.summary_watermark = watermark
                mp.summary_wall = now
            else:
                sb.start = list(end)

    def flush_summaries(self, now: float | None = None) -> None:
        """Send every held summary (``now`` given: only those whose oldest item waited
        ``scope.summary_flush_seconds``; None: all of them, as before a checkpoint)."""
        if self.ctx.summaries is None:
            return
        if now is None:
            self._send_summaries(force=True)
            return
        due = self.cfg.scope.summary_flush_seconds
        if any(mp.summary_items and mp.summary_since is not None and now - mp.summary_since >= due
               for mp in self.models.values()):
            self._now = now
            self._send_summaries()

    def request_retrain(self, model: str | None, reason: str = "on_demand") -> int:
        """An on-demand retrain (control topic): decided at the next record of the model's stream."""
        n = 0
        for name, mp in self.models.items():
            if model is None or name == model:
                mp.request_retrain(self.seq + 1, reason)
                n += 1
        return n

    # -- outputs that belong to the partition rather than one model -------------------------------------
    def check_no_data(self, now: float) -> None:
        """Wall clock: report a partition that received nothing for ``no_data_seconds`` (once per silence),
        also one that never received anything (then the declared models' limits apply)."""
        specs = [mp.spec for mp in self.models.values()] or [
            self.cfg.model_spec(name) for name in (self.cfg.models or ("*",))]
        limits = [spec.data_quality.no_data_seconds for spec in specs
                  if spec.data_quality.enabled and spec.data_quality.no_data_seconds > 0]
        if not limits or self.last_input_wall is None:
            return
        silent = now - self.last_input_wall
        if silent >= min(limits) and not self.no_data_reported:
            self.no_data_reported = True
            inf, lab = self.next_offsets.get(self.inference_topic, 0), self.next_offsets.get(self.labels_topic, 0)
            self.metrics.quality_issue("*", "no_data")
            self.publisher.send(self.cfg.topics.data_quality, None, no_data_event(
                self.inference_topic, self.labels_topic, self.partition, (inf, lab), silent, min(limits)))

    def check_idle(self, now: float) -> None:
        """Wall clock: labels waiting for a prediction in a partition quiet for ``join.idle_expire_seconds``
        are dead-lettered now (in event time nothing would ever expire them)."""
        idle = self.cfg.join.idle_expire_seconds
        if idle > 0 and self.join.pending_labels and self.last_input_wall is not None \
                and now - self.last_input_wall >= idle:
            self._expired([], self.join.expire_labels())
            self.metrics.flush()

    def _expired(self, preds: list[tuple[str, PendingPrediction]], labels: list[tuple[str, PendingLabel]]) -> None:
        if preds:
            self.expired_predictions += len(preds)
            self.metrics.join_expired(len(preds))
            for event_id, pred in preds:
                self.publisher.send(
                    self.cfg.topics.data_quality, event_id,
                    label_missing_event(Origin(self.inference_topic, self.partition, pred.offset), event_id, pred,
                                        "ttl_or_capacity", self.join.pending_predictions),
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

    # -- state -------------------------------------------------------------------------------------
    def to_payload(self) -> bytes:
        return encode_partition(self)

    def load_payload(self, payload: bytes) -> None:
        """Load a payload whose HMAC was already verified by the checkpoint store."""
        load_partition(self, payload)

    def summary(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "epoch": self.epoch,
            "next_offsets": self.next_offsets,
            "pending_predictions": self.join.pending_predictions,
            "pending_labels": self.join.pending_labels,
            "expired_predictions": self.expired_predictions,
            "unmatched_labels": self.unmatched_labels,
            "models": {name: mp.summary() for name, mp in self.models.items()},
        }
