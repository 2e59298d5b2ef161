"""The service: a single-threaded consumer loop that hands micro-batches to one processor per partition.

Redis owns the read position. On assignment the partition's epoch is bumped, its checkpoint loaded and
the consumer positioned exactly at the stored offsets; Kafka commits happen only after a checkpoint, for
lag monitoring. Co-partitioned inputs (partition *i* of ``inference`` and of ``labels``) go to the same
instance thanks to the range assignor, and this is verified on every assignment.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import detectors
from stream.checkpoint import CheckpointStore
from stream.clients import consumer_config, make_redis, producer_config, redis_errors, watermarks, with_backoff
from stream.config import AppConfig
from stream.control import ControlReader
from stream.errors import FatalError, Fenced, StateRefused
from stream.events import Origin, Record
from stream.formats import input_format
from stream.merge import IDLE_BACKLOG_SLACK
from stream.metrics import Metrics
from stream.outputs import offset_reset_event
from stream.partition import PartitionProcessor
from stream.publish import OutputLimits, Publisher
from stream.scope.service import ScopeService, summary_messages

log = logging.getLogger("driftstream")


def checkpoint_round(pending: dict[int, tuple[int, float]], every_messages: int, every_seconds: float) -> list[int]:
    """The partitions to checkpoint now, from each one's (input messages since its last checkpoint, seconds
    since it): none unless one is due (past its interval by messages or by time); then every one with
    unsaved input past half its interval as well. A round flushes the producer once and waits for the
    acknowledgements: partitions whose timers drift apart by a few milliseconds would otherwise pay that
    wait one by one, and joined in one round they stay in step."""
    def past(share: float) -> list[int]:
        return [p for p, (n, age) in pending.items()
                if n and (n >= share * every_messages or age >= share * every_seconds)]

    return past(0.5) if past(1.0) else []


class Service:
    """Runs until :meth:`stop` (SIGTERM/SIGINT) or a fatal error; ``run`` returns the exit code."""

    def __init__(self, cfg: AppConfig, consumer: Any, producer: Any, store: CheckpointStore, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic, control_consumer: Any = None,
                 limits: OutputLimits | None = None, scope_consumer: Any = None,
                 scope_store: CheckpointStore | None = None) -> None:
        """With ``scope_consumer`` and ``scope_store`` (and ``scope.enabled``) the instance also runs the
        model-level stage (:class:`stream.scope.service.ScopeService`) in the same loop: its partitions
        publish per-batch summaries to ``topics.summaries`` and the stage decides per model."""
        self.cfg = cfg
        self.consumer = consumer
        self.control = ControlReader(control_consumer, cfg.topics.control,
                                     input_format(cfg.processing.input_format, cfg.processing.max_message_bytes),
                                     self._control_dead_letter)
        # an output refused for its content (too large) becomes a notice on the dead-letter topic, not a stop
        self.publisher = Publisher(producer, on_produced=metrics.output, limits=limits,
                                   dead_letter_topic=cfg.topics.dead_letter, on_rejected=metrics.output_rejected)
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.processors: dict[int, PartitionProcessor] = {}
        self._last_checkpoint: dict[int, float] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._paused: set[tuple[str, int]] = set()
        self._stopping = False
        self._fatal: BaseException | None = None
        self.checkpoints_written = 0
        t = cfg.topics
        self.scope: ScopeService | None = None
        if cfg.scope.enabled and scope_consumer is not None and scope_store is not None:
            self.scope = ScopeService(
                scope_consumer, self.publisher, scope_store, topic=t.summaries, partitions=t.partitions,
                spec_of=cfg.model_spec, outputs=ScopeService.output_topics(t), scope=cfg.scope,
                input_topics=(t.inference, t.labels),
                checkpoint_every_messages=max(1, cfg.processing.checkpoint_every_messages // 50),
                checkpoint_every_seconds=cfg.processing.checkpoint_every_seconds, clock=clock, metrics=metrics,
                dead_letter_topic=t.dead_letter, redis_retry=self._redis_retry)

    # -- lifecycle ----------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self._stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, max_seconds: float | None = None) -> int:
        t = self.cfg.topics
        # subscribe first: the group join goes on in librdkafka's threads while the kernels load (on_assign
        # only runs inside consume())
        self.consumer.subscribe([t.inference, t.labels], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)
        if self.scope is not None:
            self.scope.partitions = self._input_partitions()
            self.scope.start()
        self._prepare_process()
        deadline = None if max_seconds is None else self.clock() + max_seconds
        try:
            self.control.start()
            while not self._stopping and self._fatal is None:
                if deadline is not None and self.clock() >= deadline:
                    break
                self.step()
            if self._fatal is not None:
                raise self._fatal
            self.checkpoint_all()
            return 0
        except (FatalError, StateRefused, KafkaException) as exc:
            log.error("stopping without checkpoint: %s", exc)
            return 1
        finally:
            closes = [self.consumer.close, self.control.close]
            if self.scope is not None:
                closes.append(self.scope.consumer.close)
            for close in closes:
                try:
                    close()
                except Exception:  # pragma: no cover - closing a broken consumer
                    pass

    def _prepare_process(self) -> None:
        """Load the detectors' compiled kernels before the first batch (not during it), then move
        everything allocated so far out of the garbage collector's way and raise its threshold (see
        ``processing.gc_threshold``)."""
        detectors.warm_up()
        from stream.learner import warm_up as warm_learner

        warm_learner()  # the compiled online model's kernel
        gc.collect()
        gc.freeze()
        if self.cfg.processing.gc_threshold:
            _, g1, g2 = gc.get_threshold()
            gc.set_threshold(self.cfg.processing.gc_threshold, g1, g2)

    # -- the loop -------------------------------------------------------------------------------------
    def step(self) -> None:
        msgs = self.consumer.consume(self.cfg.processing.batch_size, self.cfg.processing.poll_timeout_seconds)
        started = time.perf_counter()
        processors, positions = self.processors, self._positions
        first: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is not None:
                self._on_consume_error(m.error())
                continue
            p = m.partition()
            proc = processors.get(p)
            if proc is None:  # a message for a partition revoked in this very call
                continue
            topic, offset = m.topic(), m.offset()
            if offset < proc.merge.expected(topic, proc.next_offsets):
                # at or before what this partition already buffered or processed: a fetch from before a
                # reassignment or a seek, delivered late; processing it again would change the outputs
                self.metrics.message(topic, p, "stale_skipped")
                continue
            first.setdefault((topic, p), offset)
            proc.merge.add(Record(topic, p, offset, m.timestamp()[1], m.key(), m.value()))
        if msgs:  # the next position of every input that received messages: after its newest buffered record
            self._check_skipped(first)
            for p, proc in processors.items():
                for topic, offset in proc.merge.next_fetch_offsets():
                    positions[(topic, p)] = offset
        now = self.clock()
        step = self.cfg.processing.micro_batch_records
        for p, proc in list(self.processors.items()):
            records = proc.merge.release(lambda topic, p=p: self._caught_up(topic, p), now,
                                   lambda topic, p=p: self._backlog(topic, p))
            for i in range(0, len(records), step):  # slices: same results, cheaper per record
                proc.process(records[i:i + step], now)
            if proc.last_input_wall is None:
                proc.last_input_wall = now  # the silence is counted from the assignment on
            proc.check_no_data(now)
            proc.check_idle(now)
            proc.flush_summaries(now)  # held model summaries that came due without new input
            self._flow_control(proc)
        self.metrics.flush()
        if self.scope is not None:  # the model-level stage: summaries in, model-scope decisions out
            self.scope.step(self.cfg.processing.batch_size, 0)
        self._poll_control()
        self.publisher.poll()
        if msgs:
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._checkpoint_due(now)

    # -- the control topic: on-demand commands ---------------------------------------------------------
    def _poll_control(self) -> None:
        for cmd in self.control.poll():
            n = 0
            for p, proc in self.processors.items():
                if cmd.partition is None or cmd.partition == p:
                    n += proc.request_retrain(cmd.model)
            if self.scope is not None and cmd.partition is None:
                n += self.scope.request(cmd.model)
            log.info("control: retrain requested for model %s partition %s (%d monitors here)", cmd.model,
                     cmd.partition, n)

    def _control_dead_letter(self, rec: Record, reason: str, detail: str) -> None:
        self.publisher.dead_letter(self.cfg.topics.dead_letter, rec, reason, detail)
        self.metrics.dead_letter(rec.topic, reason)

    def _check_skipped(self, first: dict[tuple[str, int], int]) -> None:
        """A fetch that starts well past the position we expected: the consumer skipped input (retention deleted
        it before it was read and the client reset to the log start). Said at once, as configured by
        ``processing.on_offset_out_of_range``, instead of going on silently."""
        for (topic, p), offset in first.items():
            proc = self.processors.get(p)
            expected = self._positions.get((topic, p))
            if expected is None and proc is not None:
                expected = proc.next_offsets.get(topic)
            if proc is None or expected is None or offset <= expected + IDLE_BACKLOG_SLACK:
                continue
            msg = (f"{topic}[{p}]: the consumer skipped from offset {expected} to {offset} (retention deleted "
                   "input before it was processed)")
            if self.cfg.processing.on_offset_out_of_range == "fail":
                self._fatal = FatalError(msg + "; set processing.on_offset_out_of_range='reset' to continue")
                return
            log.warning("%s; continuing as configured", msg, extra={"partition": p, "topic": topic})
            self.publisher.send(self.cfg.topics.data_quality, None,
                                offset_reset_event(Origin(topic, p, expected), offset))

    def _on_consume_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            self._fatal = FatalError(f"fatal Kafka error: {err}")
        elif err.code() == KafkaError.OFFSET_OUT_OF_RANGE:
            self._fatal = FatalError(f"offset out of range: {err}")
        else:
            log.warning("consumer error (librdkafka retries): %s", err)

    def _caught_up(self, topic: str, partition: int) -> bool:
        return self._backlog(topic, partition) == 0

    def _backlog(self, topic: str, partition: int) -> int | None:
        """Messages the broker is known to hold beyond what we fetched (cached high watermark; None if unknown)."""
        try:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
        except KafkaException:
            return None
        pos = self._positions.get((topic, partition))
        if pos is None:
            proc = self.processors.get(partition)
            pos = proc.next_offsets.get(topic) if proc else None
        if high < 0 or pos is None:
            return None
        return max(high - pos, 0)

    def _flow_control(self, proc: PartitionProcessor) -> None:
        limit = self.cfg.processing.max_buffered_per_partition
        for topic in (proc.inference_topic, proc.labels_topic):
            key = (topic, proc.partition)
            n = proc.merge.buffered(topic)
            if n >= limit and key not in self._paused:
                self.consumer.pause([TopicPartition(topic, proc.partition)])
                self._paused.add(key)
            elif n < limit // 2 and key in self._paused:
                self.consumer.resume([TopicPartition(topic, proc.partition)])
                self._paused.discard(key)

    # -- checkpoints --------------------------------------------------------------------------------
    def _checkpoint_due(self, now: float) -> None:
        pc = self.cfg.processing
        pending = {p: (proc.processed_since_checkpoint, now - self._last_checkpoint.get(p, now))
                   for p, proc in self.processors.items()}
        due = checkpoint_round(pending, pc.checkpoint_every_messages, pc.checkpoint_every_seconds)
        if due:
            self.checkpoint(due)

    def checkpoint_all(self) -> None:
        self.checkpoint(list(self.processors))
        if self.scope is not None:
            self.scope.checkpoint_all()

    def _input_partitions(self) -> int:
        """How many partitions the input topics have (the model stage merges that many streams)."""
        t = self.cfg.topics.inference
        try:
            md = self.consumer.list_topics(t, timeout=10)
            n = len(md.topics[t].partitions)
        except Exception as exc:  # the run's own topic check reports a missing topic
            log.warning("cannot read the partition count of %s (%s); using topics.partitions", t, exc)
            return self.cfg.topics.partitions
        return n or self.cfg.topics.partitions

    def _send_summary(self, s: Any) -> None:
        # a summary too large for one message goes as ordered parts, each within what the producer and the
        # summaries topic accept (as the dead-letter path sizes its events) and the stage's input limit
        topic = self.cfg.topics.summaries
        budget = min(self.publisher.limits.max_record(topic) - len(s.model.encode()),
                     self.cfg.processing.max_message_bytes)
        for key, value in summary_messages(s, budget):
            self.publisher.send_raw(topic, key, value)

    def checkpoint(self, partitions: list[int]) -> None:
        if not partitions:
            return
        started = time.perf_counter()
        # 1. flush the producer: every output derived from the state must be delivered first, the held model
        # summaries included
        for p in partitions:
            proc = self.processors.get(p)
            if proc is not None:
                proc.flush_summaries()
        self.publisher.flush()
        commits = []
        for p in partitions:
            proc = self.processors.get(p)
            if proc is None:
                continue
            # 2. state + next offsets in one atomic Redis write, refused if a newer epoch owns the partition
            try:
                size = self._save_with_retry(proc)
            except Fenced as exc:
                log.error("partition %d fenced: %s; dropping it", p, exc, extra={"partition": p})
                self.metrics.checkpoint_failures.labels("fenced").inc()
                self._drop(p)
                continue
            proc.processed_since_checkpoint = 0
            self._last_checkpoint[p] = self.clock()
            self.checkpoints_written += 1
            self.metrics.checkpoint(p, time.perf_counter() - started, size)
            commits.extend(TopicPartition(t, p, o) for t, o in proc.next_offsets.items())
            self._update_lag(proc)
        # 3. only then commit to Kafka, for lag monitoring (Redis owns the read position)
        if commits:
            try:
                self.consumer.commit(offsets=commits, asynchronous=True)
            except KafkaException as exc:
                log.warning("offset commit for monitoring failed: %s", exc)

    def _save_with_retry(self, proc: PartitionProcessor) -> int:
        payload = proc.to_payload()
        errors = redis_errors()

        def retry(exc: BaseException, delay: float) -> None:
            self.metrics.checkpoint_failures.labels("redis_unavailable").inc()
            log.warning("Redis unavailable (%s); retrying the checkpoint in %.1f s", exc, delay,
                        extra={"partition": proc.partition})

        return with_backoff(
            lambda: self.store.save(proc.partition, proc.epoch, payload, dict(proc.next_offsets)),
            lambda exc: isinstance(exc, errors), what="checkpoint", on_retry=retry,
            give_up=lambda exc, delay: FatalError(f"Redis unavailable while stopping: {exc}")
            if self._stopping and delay > 5 else None)

    def _update_lag(self, proc: PartitionProcessor) -> None:
        for topic, nxt in proc.next_offsets.items():
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, proc.partition), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self.metrics.lag.labels(topic, str(proc.partition)).set(max(high - nxt, 0))

    def _drop(self, p: int) -> None:
        proc = self.processors.pop(p, None)
        if proc is not None:
            for topic in (proc.inference_topic, proc.labels_topic):
                try:
                    self.metrics.lag.remove(topic, str(p))
                except KeyError:
                    pass
        self._last_checkpoint.pop(p, None)
        for key in [k for k in self._positions if k[1] == p]:
            del self._positions[key]
        self._paused = {k for k in self._paused if k[1] != p}
        self.metrics.assigned.set(len(self.processors))

    # -- rebalance callbacks ------------------------------------------------------------------------
    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        t = self.cfg.topics
        by_topic: dict[str, set[int]] = {t.inference: set(), t.labels: set()}
        for tp in partitions:
            by_topic.setdefault(tp.topic, set()).add(tp.partition)
        if by_topic[t.inference] != by_topic[t.labels]:
            self._fatal = FatalError(
                f"assignment is not co-partitioned: {t.inference} {sorted(by_topic[t.inference])} vs "
                f"{t.labels} {sorted(by_topic[t.labels])}; use partition.assignment.strategy=range and equal "
                "partition counts"
            )
            consumer.assign([])
            return
        try:
            for p in sorted(by_topic[t.inference]):
                self._take(p)
            for tp in partitions:
                tp.offset = self._start_offset(consumer, tp)
        except (FatalError, StateRefused) as exc:
            self._fatal = exc
            consumer.assign([])
            return
        log.info("assigned partitions %s", sorted(by_topic[t.inference]))
        consumer.assign(partitions)
        # librdkafka keeps a partition's pause across a rebalance: one that flow control paused before it was
        # revoked would come back paused, with the note of its pause dropped with it, and never be fetched again
        consumer.resume(partitions)
        self.metrics.assigned.set(len(self.processors))

    def _redis_retry(self, what: str, fn: Callable[[], Any]) -> Any:
        """Redis calls outside a checkpoint (assignment): wait and retry while Redis is unreachable."""
        errors = redis_errors()
        return with_backoff(
            fn, lambda exc: isinstance(exc, errors), what=what,
            on_retry=lambda exc, delay: log.warning("Redis unavailable during %s (%s); retrying in %.1f s", what,
                                                    exc, delay),
            give_up=lambda exc, delay: FatalError(f"Redis unavailable while stopping ({what}): {exc}")
            if self._stopping else None)

    def _take(self, p: int) -> None:
        epoch = self._redis_retry(f"assignment of partition {p}", lambda: self.store.bump_epoch(p))
        proc = PartitionProcessor(p, self.cfg, epoch, self.publisher, self.metrics,
                                  self._send_summary if self.scope is not None else None)
        cp = self._redis_retry(f"loading partition {p}", lambda: self.store.load(p))
        if cp is not None and cp.payload is not None:
            proc.load_payload(cp.payload)
            proc.next_offsets = dict(cp.offsets)
        self.processors[p] = proc
        self._last_checkpoint[p] = self.clock()

    def _start_offset(self, consumer: Any, tp: TopicPartition) -> int:
        proc = self.processors[tp.partition]
        low, high = watermarks(consumer, tp)
        stored = proc.next_offsets.get(tp.topic)
        if stored is None:
            start = low if self.cfg.processing.start_from == "earliest" else high
            proc.next_offsets[tp.topic] = start
            return start
        if stored < low:
            msg = (f"{tp.topic}[{tp.partition}]: checkpoint offset {stored} is below the log start {low} "
                   "(retention deleted unprocessed data)")
            if self.cfg.processing.on_offset_out_of_range == "fail":
                raise FatalError(msg + "; set processing.on_offset_out_of_range='reset' to continue from the log start")
            log.warning("%s; resetting to %d as configured", msg, low,
                        extra={"partition": tp.partition, "topic": tp.topic, "offset": stored})
            self.publisher.send(self.cfg.topics.data_quality, None,
                                offset_reset_event(Origin(tp.topic, tp.partition, stored), low))
            proc.next_offsets[tp.topic] = low
            return low
        return stored

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = sorted({tp.partition for tp in partitions} & set(self.processors))
        if revoked and self._fatal is None:
            try:
                self.checkpoint(revoked)
            except FatalError as exc:
                self._fatal = exc
        for p in revoked:
            self._drop(p)
        log.info("revoked partitions %s", revoked)
        consumer.unassign()

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = sorted({tp.partition for tp in partitions} & set(self.processors))
        log.warning("lost partitions %s: dropping in-memory state without writing", lost)
        for p in lost:
            self._drop(p)


def build_service(cfg: AppConfig, metrics: Metrics, redis_client: Any | None = None) -> Service:
    if redis_client is None:
        redis_client = make_redis(cfg)
    key = cfg.state.hmac_key.encode()
    if not key:
        if not cfg.demo:
            raise FatalError("state.hmac_key is required (set DRIFTSTREAM_STATE__HMAC_KEY); only the demo runs without")
        key = b"driftstream-demo-key"
    store = CheckpointStore(redis_client, cfg.state.key_prefix, cfg.processing.group_id, key)
    consumer = Consumer(consumer_config(cfg))
    from stream.topics import admin_client, output_limits

    limits = output_limits(admin_client(cfg), cfg)  # what the producer and each output topic accept
    producer = Producer({**producer_config(cfg), **limits.producer_settings()})
    control = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-control"})
    scope_consumer = scope_store = None
    if cfg.scope.enabled:
        group = cfg.processing.group_id
        scope_consumer = Consumer({**consumer_config(cfg), "group.id": f"{group}-scope"})
        scope_store = CheckpointStore(redis_client, f"{cfg.state.key_prefix}-scope", f"{group}-scope", key)
    return Service(cfg, consumer, producer, store, metrics, control_consumer=control, limits=limits,
                   scope_consumer=scope_consumer, scope_store=scope_store)
