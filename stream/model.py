"""One model in one partition: :class:`ModelPipeline` owns everything driftstream tracks for it.

Per inference event: the online model predicts (:meth:`ModelPipeline.on_inference`); per join: errors, the
online model learns, label drift, the label-delay watch (:meth:`ModelPipeline.on_joined`). Per micro-batch, in
three phases that the partition runs for every model in turn: joins handed over once per batch are settled
(:meth:`settle_joins`), data quality and the data-drift buffers take the batch's inference events column by
column (:meth:`check_quality`), then detection and the replayed decisions (:meth:`detect_and_decide`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from stream.champion import ChampionChallenger
from stream.config import ModelSpec, TopicsConfig
from stream.datadrift import DataDriftMonitor, Position
from stream.decide import (Batch, ConceptDrift, ConceptWarning, DataDriftEnded, DataDriftStarted, LabelOutcome,
                           PolicyInput, RetrainRequest, SchemaChange, loaded_inputs, stored_inputs)
from stream.detect import ModelMonitor
from stream.events import Origin, Record
from stream.join import Joined
from stream.outputs import (calibration_refused_event, challenger_event, component_failed_event, data_drift_event,
                            drift_event, joined_origin, model_quality_event, online_prediction_event,
                            online_prediction_events, quality_issue_event, retrain_event, swap_event)
from stream.policy import Position as PolicyPosition
from stream.policy import RetrainPolicy
from stream.quality import SEVERITY, DataQualityChecker
from stream.scope.summary import INFERENCE, LABELS, SummaryBuilder
from stream.volume import LabelDelayWatch, VolumeWatch

log = logging.getLogger("driftstream")

SCHEMA_CHECKS = frozenset({"missing_feature", "unexpected_feature", "wrong_type"})
#: the parts of a model pipeline that may fail alone: an exception in one disables it for the model (with a
#: critical data-quality event and a metric); the other parts, models and partitions go on
COMPONENTS = ("online_model", "concept_detectors", "data_drift", "data_quality", "policy", "challenger")


@dataclass(frozen=True, slots=True)
class PartitionContext:
    """What a model pipeline needs of its partition: where it is, where outputs go."""

    partition: int
    topics: TopicsConfig
    publisher: Any
    metrics: Any
    #: with the model-level stage on: takes each micro-batch's summary of a model (see stream.scope)
    summaries: Any = None
    #: publish this partition's own decisions (retrain events, challenger verdicts); with the model-level
    #: stage on they are taken per model there, and these are off unless scope.publish_partition_decisions
    publish_decisions: bool = True
    #: run this partition's own data-drift tests; with the model-level stage on they run there on all of the
    #: model's traffic, and here only with scope.partition_data_drift (the summaries carry the rows either way)
    data_drift: bool = True


class ModelPipeline:
    def __init__(self, name: str, spec: ModelSpec, ctx: PartitionContext) -> None:
        self.name = name
        self.spec = spec
        self.ctx = ctx
        self.monitor = ModelMonitor(name, spec)
        self.quality = DataQualityChecker(name, dict(spec.features), spec.data_quality)
        self.data_drift = DataDriftMonitor(
            name, spec.task, spec.data_drift if ctx.data_drift else replace(spec.data_drift, enabled=False))
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
        #: sequence numbers of the batch's model swaps: an output of the decision pass names the model version
        #: at its own record, not the one at the end of the batch
        self._swap_seqs: list[int] = []
        #: components disabled after they raised (part of the state: a restart keeps them off)
        self.disabled: set[str] = set()
        #: this micro-batch's summary for the model-level stage (None: the stage is off)
        self.batch_summary: SummaryBuilder | None = (
            None if ctx.summaries is None else SummaryBuilder(name, ctx.partition, [0, 0]))
        #: watermark of the last summary sent, and whether this batch added items to it
        self.summary_watermark: float | None = None
        self.summary_items = 0
        #: wall clock of the first batch of the summary being held (None: nothing held; not state: a
        #: checkpoint sends every held summary first)
        self.summary_since: float | None = None
        #: whether the online model's predictions go to topics.online_predictions (online_model.publish_predictions)
        self.publish_predictions = spec.online_model.publish_predictions == "event"
        #: end positions and wall-clock time of the last summary sent (not state: the offset-only heartbeat)
        self.summary_end: list[int] | None = None
        self.summary_wall: float | None = None

    # -- per record ---------------------------------------------------------------------------------
    def on_inference(self, r: Record, ev: Any, seq: int, pending: Any = None) -> Any:
        """Queue the event for the batch's data-quality pass; the online model's prediction (or None). A
        compiled online model predicts at batch end instead (:meth:`settle_joins`), into ``pending``."""
        self.inference_rows.append((r, ev, seq))
        mon = self.monitor
        if mon.online is None:
            return None
        if pending is not None and mon.batches_online:
            mon.queue_prediction(pending, ev.features, (r, ev), seq)
            return None
        try:
            return mon.predict_online(ev.features)
        except Exception as exc:
            self.disable("online_model", exc, Origin(r.topic, r.partition, r.offset), ev.ts)
            return None

    def publish_online_prediction(self, r: Record, ev: Any, online: Any) -> None:
        if self.monitor.batches_online or not self.publish_predictions:  # with the batch's replay, or never
            return
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
        if "data_drift" not in self.disabled:
            try:
                self.data_drift.add_label(j.label, label_at)
            except Exception as exc:
                self.disable("data_drift", exc, self._origin(j), label_at.ts)
        mon, metrics = self.monitor, self.ctx.metrics
        swap = mon.on_joined(j)
        if mon.online_failure is not None:
            exc, mon.online_failure = mon.online_failure, None
            self.disable("online_model", exc, self._origin(j), max(j.label_ts, j.prediction.ts))
        delay = j.label_ts - j.prediction.ts
        metrics.joined(self.name, delay)
        if self.spec.data_quality.enabled and "data_quality" not in self.disabled:
            grown = self.delay_watch.observe(delay)
            if grown is not None:
                self._delay_grown(j, grown)
        if swap is not None:
            self._swap_seqs.append(j.seq)
            metrics.model_swap(self.name)
            self.ctx.publisher.send(self.ctx.topics.model_updates, self.name,
                                    swap_event(self._origin(swap.joined), self.name, swap))

    def _settle_online(self) -> None:
        """The online predictions and swaps of the batch, as the per-event path publishes them."""
        mon, ctx = self.monitor, self.ctx
        try:
            predictions, swaps = mon.settle_online()
        except Exception as exc:  # contained like the per-event path's failures (at the batch's last record)
            mon.disable_online()
            row = self.inference_rows[-1] if self.inference_rows else None
            at = Origin(row[0].topic, row[0].partition, row[0].offset) if row else Origin("?", ctx.partition, -1)
            self.disable("online_model", exc, at, row[1].ts if row else None)
            return
        topic, send = ctx.topics.online_predictions, ctx.publisher.send
        if self.publish_predictions:
            for key, event in online_prediction_events(predictions):
                send(topic, key, event)
        for swap in swaps:
            self._swap_seqs.append(swap.joined.seq)
            ctx.metrics.model_swap(self.name)
            send(ctx.topics.model_updates, self.name, swap_event(self._origin(swap.joined), self.name, swap))

    def request_retrain(self, seq: int, reason: str = "on_demand") -> None:
        self.pending.append(RetrainRequest(seq, reason))

    # -- per micro-batch ----------------------------------------------------------------------------
    def settle_joins(self) -> None:
        """The batch's deferred joins in order: exactly what :meth:`on_joined` does one by one, in a few passes.
        Then the compiled online model's replay of the batch (:meth:`ModelMonitor.settle_online`)."""
        js = self.deferred_joins
        if not js:
            if self.monitor.batches_online:
                self._settle_online()
            return
        self.deferred_joins = []
        dd = self.data_drift
        if dd.cfg.enabled and "data_drift" not in self.disabled:
            inf, lab = self.ctx.topics.inference, self.ctx.topics.labels
            try:
                for j in js:
                    if j.completed_by == "labels":
                        dd.add_label(j.label, Position(lab, j.completed_offset, j.label_ts, j.id))
                    else:
                        dd.add_label(j.label, Position(inf, j.completed_offset, j.prediction.ts, j.id))
            except Exception as exc:
                self.disable("data_drift", exc, self._origin(j), j.label_ts)
        self.monitor.on_joined_many(js)
        if self.monitor.batches_online:
            self._settle_online()
        delays = [j.label_ts - j.prediction.ts for j in js]
        self.ctx.metrics.joined_many(self.name, delays)
        if self.spec.data_quality.enabled and "data_quality" not in self.disabled:
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
        issues: list[Any] = []
        valid, columns = [True] * len(rows), None
        if spec.data_quality.enabled and "data_quality" not in self.disabled:
            try:
                for i, dropped in self.volume_watch.observe_many([ev.ts for _, ev, _ in rows]):
                    r, ev, _ = rows[i]
                    self._quality_event("volume_drop", Origin(r.topic, ctx.partition, r.offset), ev.ts, dropped)
                valid, issues, columns, _ = checker.check_many(features)
            except Exception as exc:
                r, ev, _ = rows[-1]
                self.disable("data_quality", exc, Origin(r.topic, r.partition, r.offset), ev.ts)
                valid, columns = [True] * len(rows), None
            for i, issue in issues:
                r, ev, seq = rows[i]
                ctx.metrics.quality_issue(self.name, issue.check)
                dq = quality_issue_event(Origin(r.topic, r.partition, r.offset), self.name, issue,
                                         SEVERITY[issue.check], ev.ts, ev.id)
                ctx.publisher.send(ctx.topics.data_quality, ev.id, dq)
                if issue.check in SCHEMA_CHECKS:
                    self.pending.append(SchemaChange(seq, dq["id"]))
        if not spec.data_drift.enabled:
            return
        predictions = [ev.prediction for _, ev, _ in rows]
        scores = [ev.score for _, ev, _ in rows]
        sb = self.batch_summary
        if sb is not None:  # what the model stage's data-drift tests take
            self._summary_rows(sb, rows, features, columns, valid, predictions, scores)
            self.summary_items += len(rows)
        if "data_drift" not in self.disabled:
            try:
                self.data_drift.add_inferences(
                    features, columns, checker.types, valid, predictions, scores,
                    [Position(r.topic, r.offset, ev.ts, ev.id) for r, ev, _ in rows])
            except Exception as exc:
                r, ev, _ = rows[-1]
                self.disable("data_drift", exc, Origin(r.topic, r.partition, r.offset), ev.ts)

    def _summary_rows(self, sb: SummaryBuilder, rows: list[tuple[Record, Any, int]], features: list[dict[str, Any]],
                      columns: list[Any] | None, valid: list[bool], predictions: list[Any],
                      scores: list[float | None]) -> None:
        """The batch's inference events into the summary, in row order: the segments that data quality took
        column by column (``columns``, see :meth:`DataQualityChecker.check_many`) as whole columns
        (:meth:`SummaryBuilder.rows`), the other rows one by one; ``None`` (data quality off): all one by one."""
        types = self.quality.types
        done = 0  # rows before this one are in
        for seg in columns or ():
            for i in range(done, seg.start):
                r, ev, _ = rows[i]
                sb.row(ev.ts, r.offset, valid[i], ev.features, types, ev.prediction, ev.score)
            a, done = seg.start, seg.stop
            part = rows[a:done] if a or done < len(rows) else rows
            sb.rows([ev.ts for _, ev, _ in part], [r.offset for r, _, _ in part], valid[a:done], seg, types,
                    predictions[a:done], scores[a:done], features[a])
        for i in range(done, len(rows)):
            r, ev, _ = rows[i]
            sb.row(ev.ts, r.offset, valid[i], ev.features, types, ev.prediction, ev.score)

    def detect_and_decide(self, batch: Batch) -> None:
        """Concept detectors on the batch's errors, then the data-drift tests, then the replayed decisions."""
        name, ctx, mon = self.name, self.ctx, self.monitor
        metrics, publisher, drift_topic = ctx.metrics, ctx.publisher, ctx.topics.drift_events
        inputs: list[PolicyInput] = self.pending
        self.pending = []
        outcomes = mon.batch_outcomes()
        inputs += [LabelOutcome(j.seq, err, oerr, j) for err, oerr, j in outcomes]
        sb = self.batch_summary
        if sb is not None and outcomes:  # column by column (what the summary carries)
            served, online, js = zip(*outcomes)
            preds = [j.prediction for j in js]
            pts = [pr.ts for pr in preds]
            sb.outcomes(list(map(max, [j.label_ts for j in js], pts)), list(served), list(online),
                        [LABELS if j.completed_by == "labels" else INFERENCE for j in js],
                        [j.completed_offset for j in js], [j.id for j in js], [pr.offset for pr in preds],
                        [j.label_offset for j in js], pts)
            self.summary_items += len(outcomes)
        alarms: list[Any] = []
        if "concept_detectors" in self.disabled:
            outcomes.clear()
        elif outcomes:
            try:
                alarms = mon.run_detectors()
            except Exception as exc:
                j = outcomes[-1][2]
                outcomes.clear()
                self.disable("concept_detectors", exc, self._origin(j), max(j.label_ts, j.prediction.ts))
        for j, refused in mon.take_refusals():
            log.error("model %s partition %d: calibration of %s refused (%s): %s", name, ctx.partition,
                      refused.detector, refused.fallback, refused.error)
            metrics.quality_issue(name, "calibration_refused")
            publisher.send(ctx.topics.data_quality, name, calibration_refused_event(
                self._origin(j), name, refused.detector, refused.error, refused.fallback, refused.calibration,
                max(j.label_ts, j.prediction.ts)))
        for j, done in mon.take_recalibrations():  # the next drift event carries it in "calibration"
            log.info("model %s partition %d: %s re-calibrated after a change (%s): %s", name, ctx.partition,
                     done.detector, done.outcome, done.calibration.get("params"))
            metrics.recalibration(name, done.detector, done.outcome)
        for alarm in alarms:
            metrics.alarm(name, "concept", alarm.detector, alarm.warning)
            seq = alarm.joined.seq
            if alarm.warning:
                inputs.append(ConceptWarning(seq, alarm))
                continue
            ev = drift_event(self._origin(alarm.joined), name, alarm)
            publisher.send(drift_topic, name, ev)
            if sb is not None:
                j = alarm.joined
                sb.evidence(ev["id"], "concept", "served_error", alarm.detector, max(j.label_ts, j.prediction.ts),
                            LABELS if j.completed_by == "labels" else INFERENCE, j.completed_offset)
            inputs.append(ConceptDrift(seq, ev["id"], alarm))
        metrics.model_errors(name, mon.rolling_served_error(), mon.rolling_online_error())
        dd = self.data_drift
        findings: list[Any] = []
        if "data_drift" not in self.disabled:
            try:
                findings = dd.run_tests()
            except Exception as exc:
                row = batch.rows[-1]
                self.disable("data_drift", exc, Origin(row[0], ctx.partition, row[1]), row[4])
        for finding in findings:
            metrics.alarm(name, finding.kind, finding.detector, False)
            ev = data_drift_event(finding, name, ctx.partition)
            publisher.send(drift_topic, name, ev)
            if sb is not None:
                at = finding.at
                sb.evidence(ev["id"], finding.kind, finding.signal, finding.detector, at.ts,
                            INFERENCE if at.topic == ctx.topics.inference else LABELS, at.offset)
            inputs.append(DataDriftStarted(batch.seq_at(finding.at.topic, finding.at.offset), ev["id"], finding))
        if "data_drift" not in self.disabled:
            for finding in getattr(dd, "recoveries", []):
                inputs.append(DataDriftEnded(batch.seq_at(finding.at.topic, finding.at.offset), finding))
        for (_, signal, detector), value in dd.latest.items():
            metrics.drift_statistic(name, signal, detector, value)
        if not self.ctx.publish_decisions:
            # the model stage decides (retrain policy, challenger) from the summaries: replaying the policy here
            # would only produce what is not published
            self._swap_seqs.clear()
            return
        inputs.sort(key=lambda i: i.key)
        self._decide(inputs, batch)

    def _decide(self, inputs: list[PolicyInput], batch: Batch) -> None:
        """Replay the batch's policy inputs in input order, so that decisions (and their windows) do not
        depend on where micro-batch boundaries fell."""
        policy, cc, spec = self.policy, self.challenger, self.spec
        challenger = spec.challenger.enabled and "challenger" not in self.disabled
        every = spec.challenger.every
        rows, seq0, partition = batch.rows, batch.seq0, self.ctx.partition
        n = len(rows)
        # the challenger's pairs go in by runs (add_many: the state of one add per pair), each run ending where
        # the test looks at the window: at every `every`-th pair, at a decision, at the batch's end
        e0s: list[float] = []
        e1s: list[float] = []
        last: Any = None  # the row of the latest pair
        for inp in inputs:
            k = inp.seq - seq0
            if not 0 <= k < n:  # belongs to a record of a later batch (an on-demand request): keep it
                self.pending.append(inp)
                continue
            row = rows[k]
            if challenger and type(inp) is LabelOutcome and inp.online_error is not None:
                last = row
                e0s.append(inp.error)
                e1s.append(inp.online_error)
                if (cc.added + len(e0s)) % every == 0:
                    challenger = self._add_pairs(e0s, e1s, row)
                    if challenger:
                        try:
                            self._challenge(Origin(row[0], partition, row[1]), PolicyPosition(row[2], row[3], row[4]),
                                            self._version_at(inp.seq))
                        except Exception as exc:
                            challenger = False
                            self.disable("challenger", exc, Origin(row[0], partition, row[1]), row[4])
            if "policy" in self.disabled:
                continue
            try:
                inp.apply(policy, batch)
                decision = policy.decide_at(row[4])
            except Exception as exc:
                self.disable("policy", exc, Origin(row[0], partition, row[1]), row[4])
                continue
            if decision is not None:
                if challenger and e0s:
                    challenger = self._add_pairs(e0s, e1s, last)
                comparison = cc.compare() if challenger else None
                ev = retrain_event(Origin(row[0], partition, row[1]), self.name,
                                   PolicyPosition(row[2], row[3], row[4]), decision, comparison)
                if self.ctx.publish_decisions:
                    self.ctx.metrics.retrain(self.name, decision.reasons)
                    self.ctx.publisher.send(self.ctx.topics.retrain_events, self.name, ev)
        if challenger and e0s:
            self._add_pairs(e0s, e1s, last)
        self._swap_seqs.clear()

    def _add_pairs(self, e0s: list[float], e1s: list[float], row: Any) -> bool:
        """The pending (champion, challenger) error pairs into the challenger test (the lists are emptied);
        False, with the challenger disabled at ``row`` (the latest pair's input), if that raised."""
        try:
            self.challenger.add_many(e0s, e1s)
        except Exception as exc:
            self.disable("challenger", exc, Origin(row[0], self.ctx.partition, row[1]), row[4])
            return False
        finally:
            e0s.clear()
            e1s.clear()
        return True

    def _version_at(self, seq: int) -> int:
        """The online model's version right after the record with sequence number ``seq`` of this batch."""
        return self.monitor.model_version - sum(1 for s in self._swap_seqs if s > seq)

    def _challenge(self, at: Origin, here: PolicyPosition, model_version: int) -> None:
        cc = self.challenger
        result = cc.compare()
        if result is None:
            return
        if result.challenger_better and not cc.better:
            cc.better = True
            if self.ctx.publish_decisions:
                self.ctx.publisher.send(self.ctx.topics.model_updates, self.name,
                                        challenger_event(at, self.name, model_version, here, result))
        elif not result.challenger_better and result.challenger_error >= result.champion_error:
            cc.better = False  # re-armed once the challenger is no longer ahead (not on one insignificant test)

    # -- containment --------------------------------------------------------------------------------
    def disable(self, component: str, exc: BaseException, at: Origin, ts: float | None) -> None:
        """``component`` raised ``exc`` at ``at``: report it once (critical), count it, and go on without it."""
        if component in self.disabled:
            return
        self.apply_disabled({component})
        log.error("model %s partition %d: %s raised %r at %s:%d; disabled", self.name, at.partition, component,
                  exc, at.topic, at.offset)
        self.ctx.metrics.component_failed(self.name, component)
        self.ctx.publisher.send(self.ctx.topics.data_quality, self.name,
                                component_failed_event(at, self.name, component, exc, ts))

    def apply_disabled(self, components: set[str]) -> None:
        """Turn components off (after a failure, or as a checkpoint says)."""
        self.disabled |= components
        if "online_model" in components:
            self.monitor.disable_online()
        if "data_drift" in components:  # drop whatever it holds: it takes nothing from here on
            self.data_drift = DataDriftMonitor(self.name, self.spec.task, replace(self.spec.data_drift, enabled=False))

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
