"""The model-level stage as a Kafka/Redis service: consumes the internal summaries topic keyed by model.

One consumer group; a partition of the summaries topic is owned by one instance, and every model whose
key hashes there lives in it (one :class:`~stream.scope.stage.ModelStage` per model). Per owned partition
the stages' state and the next offset of the summaries topic are checkpointed together through
:class:`stream.checkpoint.CheckpointStore` (its own key prefix ``<state.key_prefix>-scope``: the same
epoch fencing and HMAC as the partition checkpoints).

Because a stage's outputs depend only on the order of the summaries in its partition of the internal
topic (which a replay reads again) and on its state, a restart from a checkpoint re-publishes exactly the
events published since (same ids, same content) and nothing is lost.

A summary larger than one message arrives in parts (:mod:`stream.scope.parts`): they are reassembled per
owned partition (the parts received so far are checkpointed with the stages) and the stage gets the whole
summary, as if it had not been split.

The lead wires it into ``stream/app.py`` / the CLI as::

    store = CheckpointStore(redis, f"{cfg.state.key_prefix}-scope", f"{cfg.processing.group_id}-scope", key)
    svc = ScopeService(consumer, publisher, store, topic=..., partitions=cfg.topics.partitions,
                       spec_of=cfg.model_spec, outputs=ScopeService.output_topics(cfg.topics))
    svc.run(stop=lambda: stopping)          # subscribe, consume, decide, checkpoint; returns on stop()
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import msgspec
import orjson

from stream.checkpoint import CheckpointStore
from stream.scope.parts import Assembler, Part, decode_message, split
from stream.scope.stage import ModelStage, ScopeConfig
from stream.scope.summary import Summary, encode

__all__ = ["ScopeService", "summary_message", "summary_messages"]

log = logging.getLogger(__name__)

PAYLOAD_FORMAT = 1
OFFSET_KEY = "summaries"


def summary_message(s: Summary) -> tuple[bytes, bytes]:
    """Key and value of a summary on the internal topic (keyed by model: one stage sees all of a model)."""
    return s.model.encode(), encode(s)


def summary_messages(s: Summary, max_bytes: int) -> list[tuple[bytes, bytes]]:
    """Key and value of each message that carries ``s`` on the internal topic, each value at most
    ``max_bytes``: one message when it fits, else its ordered parts, all with the model as key."""
    key = s.model.encode()
    return [(key, value) for value in split(s, max_bytes)]


@dataclass
class _Owned:
    """One owned partition of the summaries topic."""

    partition: int
    epoch: int
    next_offset: int | None = None
    stages: dict[str, ModelStage] = field(default_factory=dict)
    unsaved: int = 0
    saved_at: float = 0.0
    #: per model, the input partitions the lag bound overrides now (reported on change)
    forced: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: per model, the input partitions waited for because of their backlog (reported on change)
    waiting: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: parts of split summaries received so far (state: the offset moves past them)
    parts: Assembler = field(default_factory=Assembler)


class ScopeService:
    def __init__(self, consumer: Any, publisher: Any, store: CheckpointStore, *, topic: str, partitions: int,
                 spec_of: Callable[[str], Any], outputs: Mapping[str, str], scope: ScopeConfig = ScopeConfig(),
                 input_topics: tuple[str, str] = ("inference", "labels"), checkpoint_every_messages: int = 1000,
                 checkpoint_every_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 metrics: Any = None, dead_letter_topic: str | None = None,
                 redis_retry: Callable[[str, Callable[[], Any]], Any] | None = None) -> None:
        self.consumer = consumer
        self.publisher = publisher
        self.store = store
        self.topic = topic
        self.partitions = partitions
        self.spec_of = spec_of
        self.outputs = dict(outputs)
        self.scope = scope
        self.input_topics = input_topics
        self.checkpoint_every_messages = checkpoint_every_messages
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.clock = clock
        #: a stream.metrics.Metrics (None: not counted)
        self.metrics = metrics
        #: where an undecodable summary goes, with its reason (None: logged and counted only)
        self.dead_letter_topic = dead_letter_topic
        #: runs a Redis call of the store, waiting out an outage (stream.app.Service._redis_retry); None: not
        #: retried. Without it a Redis restart crashed the service with a ConnectionError (fault test)
        self.redis_retry = redis_retry
        self.owned: dict[int, _Owned] = {}
        #: input partition -> (wall-clock time asked, [(low, high) per input topic] or None: no answer): the
        #: broker's answers for the backlog test, shared by every model of this instance
        self._highs: dict[int, tuple[float, list[tuple[int, int]] | None]] = {}
        #: summaries that could not be decoded (counted and skipped: the partition pipeline wrote them)
        self.invalid = 0

    @staticmethod
    def output_topics(topics: Any) -> dict[str, str]:
        return {"drift_events": topics.drift_events, "retrain_events": topics.retrain_events,
                "model_updates": topics.model_updates, "data_quality": topics.data_quality}

    # -- rebalance ----------------------------------------------------------------------------------
    def on_assign(self, consumer: Any, tps: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        for tp in tps:
            p = tp.partition
            # 1. fence older owners  2. load state and offset  3. seek there
            epoch = self._redis(f"scope assignment of partition {p}", lambda: self.store.bump_epoch(p))
            own = _Owned(p, epoch, saved_at=self.clock())
            cp = self._redis(f"loading scope partition {p}", lambda: self.store.load(p))
            if cp is not None and cp.payload is not None:
                self._load(own, cp.payload)
                own.next_offset = cp.offsets[OFFSET_KEY]
            tp.offset = own.next_offset if own.next_offset is not None else OFFSET_BEGINNING
            self.owned[p] = own
        log.info("scope: assigned %s", sorted(tp.partition for tp in tps))
        consumer.assign(tps)

    def on_revoke(self, consumer: Any, tps: list[Any]) -> None:
        for tp in tps:
            if tp.partition in self.owned:
                self._checkpoint_or_drop(tp.partition)
                self._forget(self.owned.pop(tp.partition, None))

    def on_lost(self, consumer: Any, tps: list[Any]) -> None:
        # another owner may already have it: drop the in-memory state without writing
        for tp in tps:
            self._forget(self.owned.pop(tp.partition, None))

    def _forget(self, own: _Owned | None) -> None:
        if own is not None and self.metrics is not None:
            for model in own.stages:
                self.metrics.scope_forget(model)

    # -- processing ---------------------------------------------------------------------------------
    def process(self, messages: list[Any]) -> None:
        for m in messages:
            if m.error() is not None:
                continue
            own = self.owned.get(m.partition())
            if own is None:
                continue
            try:
                s = decode_message(m.value())
                if isinstance(s, Part):
                    s = self._part(own, m, s)  # None until its last part
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.invalid += 1
                if self.metrics is not None:
                    self.metrics.scope_invalid.inc()
                log.error("scope: undecodable summary at %s:%d:%d skipped: %s", m.topic(), m.partition(),
                          m.offset(), exc)
                self._dead_letter(m, "invalid_summary", f"undecodable model-stage summary: {exc}")
            else:
                if s is not None:
                    self._add(own, s)
            own.next_offset = m.offset() + 1
            own.unsaved += 1
        now = self.clock()
        for p, own in list(self.owned.items()):
            if own.unsaved and (own.unsaved >= self.checkpoint_every_messages
                                or now - own.saved_at >= self.checkpoint_every_seconds):
                self._checkpoint_or_drop(p)

    def _part(self, own: _Owned, m: Any, part: Part) -> Summary | None:
        """One part of a split summary into its assembly: the whole summary at its last part. Parts a new first
        part replaced (the sending partition replays that input, the summary comes again whole) are counted;
        a part that continues no assembly is bad input: dead-lettered and counted."""
        asm = own.parts
        superseded, stray = asm.superseded, asm.out_of_sequence
        s = asm.add(part)
        if asm.superseded > superseded:
            log.info("scope: summary parts of model %s, input partition %d replaced by a new first part at "
                     "%s:%d:%d (%d dropped: that input is sent again)", part.model, part.partition, m.topic(),
                     m.partition(), m.offset(), asm.superseded - superseded)
            if self.metrics is not None:
                self.metrics.scope_parts_dropped.labels("superseded").inc(asm.superseded - superseded)
        if asm.out_of_sequence > stray:
            log.error("scope: summary part %d/%d of model %s, input partition %d, summary start %s at %s:%d:%d "
                      "continues no assembly; dead-lettered", part.index + 1, part.count, part.model,
                      part.partition, part.start, m.topic(), m.partition(), m.offset())
            if self.metrics is not None:
                self.metrics.scope_parts_dropped.labels("out_of_sequence").inc()
            self._dead_letter(m, "summary_part_out_of_sequence",
                              f"part {part.index + 1} of {part.count} of the summary of model {part.model!r}, input "
                              f"partition {part.partition}, start {part.start}, continues no assembly (no first part "
                              "before it, a gap, or another summary's parts)")
        return s

    def _dead_letter(self, m: Any, reason: str, detail: str) -> None:
        if self.metrics is not None:
            self.metrics.dead_letters.labels(m.topic(), reason).inc()
        if self.dead_letter_topic is None:
            return
        from stream.events import Record

        ts = m.timestamp()[1] if m.timestamp() else 0
        self.publisher.dead_letter(self.dead_letter_topic,
                                   Record(m.topic(), m.partition(), m.offset(), ts, m.key(), m.value()), reason,
                                   detail[:500])

    def _add(self, own: _Owned, s: Summary) -> None:
        stage = own.stages.get(s.model)
        if stage is None:
            stage = own.stages[s.model] = self._stage(s.model)
        now = self.clock()
        self._update_backlog(stage, now, s)
        if stage.merge.declare_idle(now, s):
            # a wall-clock decision (a partition is idle: the model goes ahead without it) is saved before
            # anything depends on it, so a replay from the checkpoint makes it again, whatever its own clock
            self._checkpoint_or_drop(own.partition)
            if self.owned.get(own.partition) is not own:  # fenced: another owner has it
                return
        metrics = self.metrics
        late = stage.merge.late
        for out in stage.add(s, now):
            self.publisher.send(self.outputs[out.topic], out.key, out.event)
            if metrics is not None:
                metrics.scope_output(out.topic, s.model, out.event)
        if stage.merge.opened:
            for p, (_, _, ts, released, _) in stage.merge.opened:
                log.warning("scope: model %s got items of input partition %d up to %.1f s of event time behind "
                            "what it had decided without them; they are taken now, after what was decided",
                            s.model, p, released - ts)
        if metrics is not None:
            for detector, outcome in stage.recalibrated:
                metrics.scope_recalibrations.labels(s.model, detector, outcome).inc()
            if stage.merge.late > late:  # every late item of an add is of the summary's partition
                metrics.scope_late_items(s.model, s.partition, stage.merge.late - late)
            r = stage.last_release
            metrics.scope_status(s.model, stage.merge.late, len(r.forced) if r is not None else 0)
            # the data-drift statistics of the merged stream (the partitions' own tests are off by default)
            for (_, signal, detector), value in stage.data_drift.latest.items():
                metrics.drift_statistic(s.model, signal, detector, value)
        self._report_lag(own, stage)
        self._report_waiting(own, stage, now)

    #: how long the broker's answer about an input partition's high watermarks is reused (wall clock)
    HIGHS_MAX_AGE_SECONDS = 1.0

    def _update_backlog(self, stage: ModelStage, now: float, incoming: Summary) -> None:
        """Tell the merge the backlog of each partition the idle test would fire for: the input topics'
        high watermarks beyond the end positions of that partition's last summary (from the low watermark
        for one that sent none), asked from the broker only then. A partition with a backlog is catching up
        (a slow consumer, a restart, a rebalance) and is waited for, up to ``stalled_partition_seconds``;
        one without is idle. When the broker does not answer the merge keeps its last answer."""
        merge = stage.merge
        candidates = merge.idle_candidates(now, incoming)
        if not candidates:
            return
        backlog: dict[int, int | None] = {}
        for p in candidates:
            marks = self._input_marks(p, now)
            if marks is None:
                continue
            end = merge.end[p]
            backlog[p] = sum(max(0, high - max(low, end[i] if end is not None else low))
                             for i, (low, high) in enumerate(marks))
        merge.set_backlog(backlog)

    #: after the broker gave no answer about a partition, how long before it is asked again (each question can
    #: block the service's loop for up to its timeout while the broker is away)
    HIGHS_RETRY_SECONDS = 10.0

    def _input_marks(self, p: int, now: float) -> list[tuple[int, int]] | None:
        hit = self._highs.get(p)
        if hit is not None and now - hit[0] < (self.HIGHS_MAX_AGE_SECONDS if hit[1] is not None
                                               else self.HIGHS_RETRY_SECONDS):
            return hit[1]
        from confluent_kafka import KafkaException, TopicPartition

        marks: list[tuple[int, int]] | None
        try:
            marks = [tuple(self.consumer.get_watermark_offsets(TopicPartition(t, p), timeout=1.0, cached=False))
                     for t in self.input_topics]  # type: ignore[misc]
        except (KafkaException, AttributeError, TypeError) as exc:  # no answer (or a consumer without the call)
            log.debug("scope: high watermarks of input partition %d unknown: %s", p, exc)
            marks = None
        if marks is not None and any(len(m) != 2 or m[1] < 0 for m in marks):
            marks = None
        self._highs[p] = (now, marks)  # type: ignore[assignment]
        return marks

    def _report_waiting(self, own: _Owned, stage: ModelStage, now: float) -> None:
        """Log when the model starts or stops waiting for partitions with a backlog (its decisions are held
        back, not taken without them), once per change; the gauge follows every summary."""
        waiting = stage.merge.waiting(now)
        if self.metrics is not None:
            self.metrics.scope_waiting_partitions(stage.model, len(waiting))
        key = tuple(sorted(waiting))
        if own.waiting.get(stage.model, ()) != key:
            own.waiting[stage.model] = key
            if key:
                stalled = self.scope.stalled_partition_seconds
                log.warning("scope: model %s waits for input partitions %s: behind the lag bound and silent, but "
                            "with unprocessed input (records: %s); decisions are held back until they catch up%s",
                            stage.model, list(key), waiting,
                            f" or stay silent for {stalled:.0f} s" if stalled > 0 else "")
            else:
                log.info("scope: model %s waits for no partition with a backlog any more", stage.model)

    def _checkpoint_or_drop(self, p: int) -> None:
        from stream.errors import Fenced

        try:
            self.checkpoint(p)
        except Fenced as exc:  # a newer owner has this partition: forget it without writing
            log.warning("scope: partition %d fenced (%s); dropping it", p, exc)
            self.owned.pop(p, None)

    def _report_lag(self, own: _Owned, stage: ModelStage) -> None:
        """Log when the lag bound starts or stops overriding a partition's watermark (decisions went ahead
        without it: its later items are late), once per change."""
        r = stage.last_release
        forced = tuple(r.forced) if r is not None else ()
        if own.forced.get(stage.model, ()) != forced:
            own.forced[stage.model] = forced
            if forced:
                log.warning("scope: model %s decides without input partitions %s (more than %.0f s of event time "
                            "behind; holding: %s)", stage.model, list(forced), self.scope.max_watermark_lag_seconds,
                            r.holding)
            else:
                log.info("scope: model %s has every input partition within the lag bound again", stage.model)

    def _redis(self, what: str, fn: Callable[[], Any]) -> Any:
        return fn() if self.redis_retry is None else self.redis_retry(what, fn)

    def request(self, model: str | None, reason: str = "on_demand") -> int:
        """An on-demand retrain for a model (None: every model here) owned by this instance."""
        n = 0
        for own in self.owned.values():
            for name, stage in own.stages.items():
                if model is None or name == model:
                    stage.request(reason)
                    n += 1
        return n

    def checkpoint(self, p: int) -> None:
        own = self.owned[p]
        if own.next_offset is None:
            return
        # 1. outputs produced and acknowledged
        self.publisher.flush()
        # 2. stages + next offset in one atomic write, if our epoch is still the newest (else Fenced)
        payload, offsets = self._payload(own), {OFFSET_KEY: own.next_offset}
        self._redis(f"scope checkpoint of partition {p}", lambda: self.store.save(p, own.epoch, payload, offsets))
        own.unsaved = 0
        own.saved_at = self.clock()
        # 3. commit to Kafka for lag monitoring only (Redis owns the read position)
        from confluent_kafka import TopicPartition

        try:
            self.consumer.commit(offsets=[TopicPartition(self.topic, p, own.next_offset)], asynchronous=True)
        except Exception as exc:  # monitoring only
            log.debug("scope: offset commit failed: %s", exc)

    def start(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)

    def step(self, batch: int = 500, timeout: float = 0.2) -> int:
        """One consume and its processing (checkpoints when due); how many messages it took."""
        msgs = self.consumer.consume(batch, timeout)
        self.process(msgs)
        return len(msgs)

    def checkpoint_all(self) -> None:
        for p in list(self.owned):
            self._checkpoint_or_drop(p)

    def run(self, stop: Callable[[], bool], batch: int = 500, timeout: float = 0.2) -> None:
        self.start()
        while not stop():
            self.step(batch, timeout)
            self.publisher.poll()
        self.checkpoint_all()

    # -- state --------------------------------------------------------------------------------------
    def _stage(self, model: str) -> ModelStage:
        return ModelStage(model, self.spec_of(model), self.partitions, self.scope, self.input_topics)

    def _payload(self, own: _Owned) -> bytes:
        return orjson.dumps({"format": PAYLOAD_FORMAT, "partition": own.partition,
                             "stages": {name: st.to_state() for name, st in sorted(own.stages.items())},
                             "parts": own.parts.to_state()},
                            option=orjson.OPT_SERIALIZE_NUMPY)

    def _load(self, own: _Owned, payload: bytes) -> None:
        state = orjson.loads(payload)
        if state.get("format") != PAYLOAD_FORMAT or state.get("partition") != own.partition:
            raise ValueError(f"scope checkpoint of partition {state.get('partition')!r} (format "
                             f"{state.get('format')!r}) found for partition {own.partition}; refusing it")
        for name, s in state["stages"].items():
            stage = self._stage(name)
            stage.load_state(s)
            own.stages[name] = stage
        own.parts.load_state(state.get("parts", []))  # absent in checkpoints written before summaries were split
