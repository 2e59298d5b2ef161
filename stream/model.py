"""One model in one partition: :class:`ModelPipeline` owns everything driftstream tracks for it.

Per inference event: the online model predicts (:meth:`ModelPipeline.on_inference`); per join: errors, the
online model learns, label drift, the label-delay watch (:meth:`ModelPipeline.on_joined`). Per micro-batch, in
three phases that the partition runs for every model in turn: joins handed over once per batch are settled
(:meth:`settle_joins`), data quality and the data-drift buffers take the batch's inference events column by
column (:meth:`check_quality`), then detection and the replayed decisions (:meth:`detect_and_decide`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.champion import ChampionChallenger
from stream.config import ModelSpec, TopicsConfig
from stream.datadrift import DataDriftMonitor, Position
from stream.decide import (Batch, ConceptDrift, ConceptWarning, DataDriftEnded, DataDriftStarted, LabelOutcome,
                           PolicyInput, RetrainRequest, SchemaChange, loaded_inputs, stored_inputs)
from stream.detect import ModelMonitor
from stream.events import Origin, Record
from stream.join import Joined
from stream.outputs import (challenger_event, data_drift_event, drift_event, joined_origin, model_quality_event,
                            online_prediction_event, quality_issue_event, retrain_event, swap_event)
from stream.policy import Position as PolicyPosition
from stream.policy import RetrainPolicy
from stream.quality import SEVERITY, DataQualityChecker
from stream.volume import LabelDelayWatch, VolumeWatch

SCHEMA_CHECKS = frozenset({"missing_feature", "unexpected_feature", "wrong_type"})


@dataclass(frozen=True, slots=True)
class PartitionContext:
    """What a model pipeline needs of its partition: where it is, where outputs go."""

    partition: int
    topics: TopicsConfig
    publisher: Any
    metrics: Any


class ModelPipeline:
    def __init__(self, name: str, spec: ModelSpec, ctx: PartitionContext) -> None:
        self.name = name
        self.spec = spec
        self.ctx = ctx
        self.monitor = ModelMonitor(name, spec)
        self.quality = DataQualityChecker(name, dict(spec.features), spec.data_quality)
        self.data_drift = DataDriftMonitor(name, spec.task, spec.data_drift)
        self.policy = RetrainPolicy(spec.retrain)
        c = spec.challenger
        self.challenger = ChampionChallenger(spec.task, c.window, c.alpha, c.min_pairs)
        self.delay_watch = LabelDelayWatch(spec.data_quality)
        self.volume_watch = VolumeWatch(spec.data_quality)
        #: policy inputs waiting for their record (on-demand requests) or for the batch's decision pass
        self.pending: list[PolicyInput] = []
        #: the batch's inference events, for the column-wise data-quality pass: (record, event, seq)
        self.inference_rows: list[tuple[Record, Any, int]] = []
        #: the batch's joins, when the monitor takes them once per batch (see ModelMonitor.defers_joins)
        self.deferred_joins: list[Joined] = []

    # -- per record ---------------------------------------------------------------------------------
    def on_inference(self, r: Record, ev: Any, seq: int) -> Any:
        """Queue the event for the batch's data-quality pass; the online model's prediction (or None)."""
        self.inference_rows.append((r, ev, seq))
        mon = self.monitor
        if mon.online is None:
            return None
        online = mon.predict_online(ev.features)
        return online

    def publish_online_prediction(self, r: Record, ev: Any, online: Any) -> None:
        self.ctx.publisher.send(self.ctx.topics.online_predictions, ev.id,
                                online_prediction_event(Origin(r.topic, r.partition, r.offset), ev, online,
                                                        self.monitor.model_version))

    def on_joined(self, j: Joined, label_at: Position) -> None:
        """A completed join (``label_at``: the input that completed it, for label drift)."""
        if self.monitor.defers_joins:
            self.deferred_joins.append(j)
            return
        # label drift sees the labels that belong to a prediction (a label that never meets its prediction
        # is dead-lettered, not counted)
        self.data_drift.add_label(j.label, label_at)
        mon, metrics = self.monitor, self.ctx.metrics
        swap = mon.on_joined(j)
        delay = j.label_ts - j.prediction.ts
        metrics.joined(self.name, delay)
        if self.spec.data_quality.enabled:
            grown = self.delay_watch.observe(delay)
            if grown is not None:
                self._delay_grown(j, grown)
        if swap is not None:
            metrics.model_swap(self.name)
            self.ctx.publisher.send(self.ctx.topics.model_updates, self.name,
                                    swap_event(self._origin(swap.joined), self.name, swap))

    def request_retrain(self, seq: int, reason: str = "on_demand") -> None:
        self.pending.append(RetrainRequest(seq, reason))

    # -- per micro-batch ----------------------------------------------------------------------------
    def settle_joins(self) -> None:
        """The batch's deferred joins in order: exactly what :meth:`on_joined` does one by one, in a few passes."""
        js = self.deferred_joins
        if not js:
            return
        self.deferred_joins = []
        dd = self.data_drift
        if dd.cfg.enabled:
            inf, lab = self.ctx.topics.inference, self.ctx.topics.labels
            for j in js:
                if j.completed_by == "labels":
                    dd.add_label(j.label, Position(lab, j.completed_offset, j.label_ts, j.id))
                else:
                    dd.add_label(j.label, Position(inf, j.completed_offset, j.prediction.ts, j.id))
        self.monitor.on_joined_many(js)
        delays = [j.label_ts - j.prediction.ts for j in js]
        self.ctx.metrics.joined_many(self.name, delays)
        if self.spec.data_quality.enabled:
            for i, grown in self.delay_watch.observe_many(delays):
                self._delay_grown(js[i], grown)

    def check_quality(self) -> None:
        """Data-quality checks of the batch's inference events, then their values into the data-drift tests:
        column by column (see :meth:`DataQualityChecker.check_many`), events in order."""
        rows = self.inference_rows
        if not rows:
            return
        self.inference_rows = []
        spec, checker, ctx = self.spec, self.quality, self.ctx
        features = [ev.features for _, ev, _ in rows]
        if spec.data_quality.enabled:
            for i, dropped in self.volume_watch.observe_many([ev.ts for _, ev, _ in rows]):
                r, ev, _ = rows[i]
                self._quality_event("volume_drop", Origin(r.topic, ctx.partition, r.offset), ev.ts, dropped)
            valid, issues, columns, _ = checker.check_many(features)
            for i, issue in issues:
                r, ev, seq = rows[i]
                ctx.metrics.quality_issue(self.name, issue.check)
                dq = quality_issue_event(Origin(r.topic, r.partition, r.offset), self.name, issue,
                                         SEVERITY[issue.check], ev.ts, ev.id)
                ctx.publisher.send(ctx.topics.data_quality, ev.id, dq)
                if issue.check in SCHEMA_CHECKS:
                    self.pending.append(SchemaChange(seq, dq["id"]))
        else:
            valid, columns = [True] * len(rows), None
        if spec.data_drift.enabled:
            self.data_drift.add_inferences(
                features, columns, checker.types, valid, [ev.prediction for _, ev, _ in rows],
                [ev.score for _, ev, _ in rows], [Position(r.topic, r.offset, ev.ts, ev.id) for r, ev, _ in rows])

    def detect_and_decide(self, batch: Batch) -> None:
        """Concept detectors on the batch's errors, then the data-drift tests, then the replayed decisions."""
        name, ctx, mon = self.name, self.ctx, self.monitor
        metrics, publisher, drift_topic = ctx.metrics, ctx.publisher, ctx.topics.drift_events
        inputs: list[PolicyInput] = self.pending
        self.pending = []
        inputs += [LabelOutcome(j.seq, err, oerr, j) for err, oerr, j in mon.batch_outcomes()]
        for alarm in mon.run_detectors():
            metrics.alarm(name, "concept", alarm.detector, alarm.warning)
            seq = alarm.joined.seq
            if alarm.warning:
                inputs.append(ConceptWarning(seq, alarm))
                continue
            ev = drift_event(self._origin(alarm.joined), name, alarm)
            publisher.send(drift_topic, name, ev)
            inputs.append(ConceptDrift(seq, ev["id"], alarm))
        metrics.model_errors(name, mon.rolling_served_error(), mon.rolling_online_error())
        dd = self.data_drift
        for finding in dd.run_tests():
            metrics.alarm(name, finding.kind, finding.detector, False)
            ev = data_drift_event(finding, name, ctx.partition)
            publisher.send(drift_topic, name, ev)
            inputs.append(DataDriftStarted(batch.seq_at(finding.at.topic, finding.at.offset), ev["id"], finding))
        for finding in getattr(dd, "recoveries", []):
            inputs.append(DataDriftEnded(batch.seq_at(finding.at.topic, finding.at.offset), finding))
        for (_, signal, detector), value in dd.latest.items():
            metrics.drift_statistic(name, signal, detector, value)
        inputs.sort(key=lambda i: i.key)
        self._decide(inputs, batch)

    def _decide(self, inputs: list[PolicyInput], batch: Batch) -> None:
        """Replay the batch's policy inputs in input order, so that decisions (and their windows) do not
        depend on where micro-batch boundaries fell."""
        policy, cc, spec = self.policy, self.challenger, self.spec
        challenger = spec.challenger.enabled
        rows, seq0, partition = batch.rows, batch.seq0, self.ctx.partition
        n = len(rows)
        for inp in inputs:
            k = inp.seq - seq0
            if not 0 <= k < n:  # belongs to a record of a later batch (an on-demand request): keep it
                self.pending.append(inp)
                continue
            row = rows[k]
            inp.apply(policy, batch)
            if challenger and type(inp) is LabelOutcome and inp.online_error is not None:
                cc.add(inp.error, inp.online_error)
                if cc.added % spec.challenger.every == 0:
                    self._challenge(Origin(row[0], partition, row[1]), PolicyPosition(row[2], row[3], row[4]))
            decision = policy.decide_at(row[4])
            if decision is not None:
                comparison = cc.compare() if challenger else None
                ev = retrain_event(Origin(row[0], partition, row[1]), self.name,
                                   PolicyPosition(row[2], row[3], row[4]), decision, comparison)
                self.ctx.metrics.retrain(self.name, decision.reasons)
                self.ctx.publisher.send(self.ctx.topics.retrain_events, self.name, ev)

    def _challenge(self, at: Origin, here: PolicyPosition) -> None:
        cc = self.challenger
        result = cc.compare()
        if result is None:
            return
        if result.challenger_better and not cc.better:
            cc.better = True
            self.ctx.publisher.send(self.ctx.topics.model_updates, self.name,
                                    challenger_event(at, self.name, self.monitor.model_version, here, result))
        elif not result.challenger_better:
            cc.better = False

    # -- helpers ------------------------------------------------------------------------------------
    def _origin(self, j: Joined) -> Origin:
        return joined_origin(j, self.ctx.partition, self.ctx.topics.inference, self.ctx.topics.labels)

    def _delay_grown(self, j: Joined, evidence: dict[str, Any]) -> None:
        """The label-delay-growth event, at the input that completed join ``j``."""
        self._quality_event("label_delay_growth", self._origin(j), max(j.label_ts, j.prediction.ts), evidence)

    def _quality_event(self, check: str, at: Origin, ts: float, evidence: dict[str, Any]) -> None:
        self.ctx.metrics.quality_issue(self.name, check)
        self.ctx.publisher.send(self.ctx.topics.data_quality, self.name,
                                model_quality_event(at, self.name, check, ts, evidence))

    # -- state (the payload layout is known in stream.state) ------------------------------------------
    def stored_pending(self) -> list[list[Any]]:
        return stored_inputs(self.pending)

    def load_pending(self, stored: list[list[Any]]) -> None:
        self.pending = loaded_inputs(stored)

    def summary(self) -> dict[str, Any]:
        m = self.monitor
        return {
            "joined": m.joined,
            "served_error_rolling": m.rolling_served_error(),
            "online_error_rolling": m.rolling_online_error(),
            "model_version": m.model_version,
            "detectors": [repr(d) for d in m.detectors],
            "calibrations": m.calibrations,
            "background_model": m.background is not None,
            "retrain_policy": self.policy.to_state(),
            "challenger_better": self.challenger.better,
        }
