"""Prometheus metrics. The registry is created by the application (or a test) and passed in.

Label cardinality is bounded: topics and partitions are bounded by the deployment, ``reason`` by the
fixed set of dead-letter codes, ``model`` by ``MAX_MODELS_PER_PARTITION`` and the model-name rules,
``detector`` by the detector registry. No event ids are ever labels.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NS = "driftstream"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._children: dict[tuple[str, int, str], Any] = {}
        self._join_children: dict[str, tuple[Any, Any]] = {}
        self.messages = Counter(f"{NS}_messages", "Input messages by outcome (processed or dead_letter)",
                                ["topic", "partition", "outcome"], registry=registry)
        self.dead_letters = Counter(f"{NS}_dead_letter", "Messages sent to the dead-letter topic by reason",
                                    ["topic", "reason"], registry=registry)
        self.produced = Counter(f"{NS}_output_events", "Output events produced by topic", ["topic"], registry=registry)
        self.joins = Counter(f"{NS}_join_matched", "Predictions joined with their label", ["model"], registry=registry)
        self.join_expired_total = Counter(f"{NS}_join_expired", "Predictions whose label never came", registry=registry)
        self.pending_gauge = Gauge(f"{NS}_join_pending", "Items waiting in the label join", ["partition", "side"],
                                   registry=registry)
        self.label_delay = Histogram(f"{NS}_label_delay_seconds", "Event-time delay between prediction and label",
                                     ["model"], registry=registry,
                                     buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, float("inf")))
        self.alarms = Counter(f"{NS}_detector_alarms", "Detector alarms", ["model", "kind", "detector", "level"],
                              registry=registry)
        self.served_error = Gauge(f"{NS}_served_model_error", "Rolling error of the served model (last 1000 labels)",
                                  ["model"], registry=registry)
        self.online_error = Gauge(f"{NS}_online_model_error", "Rolling error of the online model (last 1000 labels)",
                                  ["model"], registry=registry)
        self.checkpoint_seconds = Histogram(f"{NS}_checkpoint_duration_seconds", "Flush + Redis write of a checkpoint",
                                            registry=registry)
        self.checkpoint_bytes = Gauge(f"{NS}_checkpoint_size_bytes", "Size of the last state blob", ["partition"],
                                      registry=registry)
        self.checkpoint_failures = Counter(f"{NS}_checkpoint_failures", "Checkpoints not written", ["reason"],
                                           registry=registry)
        self.lag = Gauge(f"{NS}_consumer_lag_messages", "High watermark minus next offset to process",
                         ["topic", "partition"], registry=registry)
        self.batch_seconds = Histogram(f"{NS}_batch_processing_seconds", "Processing time of one micro-batch",
                                       registry=registry, buckets=(.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.data_quality = Counter(f"{NS}_data_quality_issues", "Data-quality issues found (rate-limited or not)",
                                    ["model", "check"], registry=registry)
        self.feature_drift_statistic = Gauge(f"{NS}_feature_drift_statistic",
                                             "Latest statistic of a data-drift test (feature, prediction, score, label)",
                                             ["model", "feature", "test"], registry=registry)
        self.retrain_events = Counter(f"{NS}_retrain_events", "Retrain events by reason", ["model", "reason"],
                                      registry=registry)
        self.model_swaps = Counter(f"{NS}_model_swaps", "Online model replaced by its background model",
                                   ["model"], registry=registry)
        self.assigned = Gauge(f"{NS}_assigned_partitions", "Partitions owned by this instance", registry=registry)

    def message(self, topic: str, partition: int, outcome: str) -> None:
        # labelled children are cached: .labels() costs a lock and a dict lookup on every message
        key = (topic, partition, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.messages.labels(topic, str(partition), outcome)
        child.inc()

    def dead_letter(self, topic: str, reason: str) -> None:
        self.dead_letters.labels(topic, reason).inc()

    def output(self, topic: str) -> None:
        self.produced.labels(topic).inc()

    def joined(self, model: str, delay: float) -> None:
        pair = self._join_children.get(model)
        if pair is None:
            pair = self._join_children[model] = (self.joins.labels(model), self.label_delay.labels(model))
        pair[0].inc()
        pair[1].observe(max(delay, 0.0))

    def join_expired(self, n: int) -> None:
        self.join_expired_total.inc(n)

    def pending(self, partition: int, predictions: int, labels: int) -> None:
        self.pending_gauge.labels(str(partition), "predictions").set(predictions)
        self.pending_gauge.labels(str(partition), "labels").set(labels)

    def alarm(self, model: str, kind: str, detector: str, warning: bool) -> None:
        self.alarms.labels(model, kind, detector, "warning" if warning else "drift").inc()

    def model_errors(self, model: str, served: float | None, online: float | None) -> None:
        if served is not None:
            self.served_error.labels(model).set(served)
        if online is not None:
            self.online_error.labels(model).set(online)

    def quality_issue(self, model: str, check: str) -> None:
        self.data_quality.labels(model, check).inc()

    def drift_statistic(self, model: str, feature: str, test: str, value: float) -> None:
        self.feature_drift_statistic.labels(model, feature, test).set(value)

    def retrain(self, model: str, reasons: list[str]) -> None:
        for r in reasons:
            self.retrain_events.labels(model, r).inc()

    def model_swap(self, model: str) -> None:
        self.model_swaps.labels(model).inc()

    def checkpoint(self, partition: int, seconds: float, size: int) -> None:
        self.checkpoint_seconds.observe(seconds)
        self.checkpoint_bytes.labels(str(partition)).set(size)
