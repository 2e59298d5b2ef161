"""Prometheus metrics. The registry is created by the application (or a test) and passed in.

Label cardinality is bounded: topics and partitions are bounded by the deployment, ``reason`` by the
fixed set of dead-letter codes, ``model`` by ``MAX_MODELS_PER_PARTITION`` and the model-name rules,
``detector`` by the detector registry. No event ids are ever labels.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily

NS = "driftstream"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        #: (metric, label values) -> child, for the series updated every micro-batch
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self.messages = Counter(f"{NS}_messages", "Input messages by outcome (processed or dead_letter)",
                                ["topic", "partition", "outcome"], registry=registry)
        self.dead_letters = Counter(f"{NS}_dead_letter", "Messages sent to the dead-letter topic by reason",
                                    ["topic", "reason"], registry=registry)
        self.produced = Counter(f"{NS}_output_events", "Output events produced by topic", ["topic"], registry=registry)
        self.outputs_rejected = Counter(f"{NS}_output_rejected",
                                        "Output events refused for their content (e.g. too large) and replaced by "
                                        "a notice on the dead-letter topic, by intended topic and error",
                                        ["topic", "error"], registry=registry)
        self.joins = Counter(f"{NS}_join_matched", "Predictions joined with their label", ["model"], registry=registry)
        self.join_expired_total = Counter(f"{NS}_join_expired", "Predictions whose label never came", registry=registry)
        self.pending_gauge = Gauge(f"{NS}_join_pending", "Items waiting in the label join", ["partition", "side"],
                                   registry=registry)
        self.label_delay = BatchHistogram(f"{NS}_label_delay_seconds", "Event-time delay between prediction and label",
                                          "model", (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600), registry)
        # the model-level stage (stream.scope): decisions per model over all its partitions
        self.incidents = Counter(f"{NS}_model_incidents", "Model-scope drift incidents (one per change across "
                                 "all of a model's partitions)", ["model", "kind", "severity"], registry=registry)
        self.model_retrains = Counter(f"{NS}_model_retrain_events", "Model-scope retrain events, by reason",
                                      ["model", "reason"], registry=registry)
        self.model_verdicts = Counter(f"{NS}_model_challenger_better", "Model-scope verdicts: the online model "
                                      "beats the served one", ["model"], registry=registry)
        self.scope_late = Gauge(f"{NS}_scope_late_items", "Items the model stage took after it had decided "
                                "without their partition (lag bound), per model", ["model"], registry=registry)
        self.scope_late_total = Counter(f"{NS}_scope_late_partition_items", "Items the model stage took after it "
                                        "had decided without their partition (lag bound), per model and input "
                                        "partition", ["model", "partition"], registry=registry)
        self.scope_forced = Gauge(f"{NS}_scope_partitions_skipped", "Input partitions the model stage decides "
                                  "without now (idle past the lag bound)", ["model"], registry=registry)
        self.scope_waiting = Gauge(f"{NS}_scope_partitions_waited", "Input partitions behind the lag bound the "
                                   "model stage waits for because the broker holds input they have not "
                                   "processed (decisions held back)", ["model"], registry=registry)
        self.scope_invalid = Counter(f"{NS}_scope_invalid_summaries", "Undecodable summaries skipped by the "
                                     "model stage", registry=registry)
        self.scope_parts_dropped = Counter(
            f"{NS}_scope_summary_parts_dropped", "Parts of split summaries the model stage dropped: superseded (a "
            "replay sent that summary again from its first part), out_of_sequence (continued no assembly: "
            "dead-lettered)", ["reason"], registry=registry)
        self.scope_recalibrations = Counter(
            f"{NS}_scope_detector_recalibrations", "Model-scope concept detectors calibrated again after a "
            "confirmed change, by outcome (recalibrated, kept, refused)", ["model", "detector", "outcome"],
            registry=registry)
        #: per-message counts and label delays are collected per micro-batch and published by :meth:`flush`
        self._message_counts: dict[tuple[str, int, str], int] = {}
        self._delays: dict[str, list[float]] = {}
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
        self.recalibrations = Counter(f"{NS}_detector_recalibrations", "Calibrated concept detectors calibrated "
                                      "again after a drift alarm, by outcome (recalibrated, kept: the error rate "
                                      "had not changed, refused: fallback)", ["model", "detector", "outcome"],
                                      registry=registry)
        self.assigned = Gauge(f"{NS}_assigned_partitions", "Partitions owned by this instance", registry=registry)
        self.component_failures = Counter(
            f"{NS}_component_failures", "A model's component (online model, detectors, data drift, data quality, "
            "policy) that raised and was disabled", ["model", "component"], registry=registry)

    def message(self, topic: str, partition: int, outcome: str, n: int = 1) -> None:
        key = (topic, partition, outcome)
        counts = self._message_counts
        counts[key] = counts.get(key, 0) + n

    def dead_letter(self, topic: str, reason: str) -> None:
        self.dead_letters.labels(topic, reason).inc()

    def output(self, topic: str) -> None:
        self.produced.labels(topic).inc()

    def output_rejected(self, topic: str, error: str) -> None:
        self.outputs_rejected.labels(topic, error).inc()

    def joined(self, model: str, delay: float) -> None:
        delays = self._delays.get(model)
        if delays is None:
            delays = self._delays[model] = []
        delays.append(delay)

    def joined_many(self, model: str, delays: list[float]) -> None:
        """:meth:`joined` for each delay."""
        got = self._delays.get(model)
        if got is None:
            self._delays[model] = list(delays)
        else:
            got.extend(delays)

    def flush(self) -> None:
        """Publish the per-message counts and label delays collected since the last flush (called at the
        end of every micro-batch: a Prometheus counter increment per message would cost more than the
        message's own processing)."""
        for (topic, partition, outcome), n in self._message_counts.items():
            self._child(self.messages, topic, str(partition), outcome).inc(n)
        self._message_counts.clear()
        for model, delays in self._delays.items():
            if delays:
                self.joins.labels(model).inc(len(delays))
                self.label_delay.observe_many(model, delays)
                delays.clear()

    def join_expired(self, n: int) -> None:
        self.join_expired_total.inc(n)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: series updated every micro-batch would otherwise pay a
        label lookup under a lock each time."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def pending(self, partition: int, predictions: int, labels: int) -> None:
        p = str(partition)
        self._child(self.pending_gauge, p, "predictions").set(predictions)
        self._child(self.pending_gauge, p, "labels").set(labels)

    def alarm(self, model: str, kind: str, detector: str, warning: bool) -> None:
        self.alarms.labels(model, kind, detector, "warning" if warning else "drift").inc()

    def model_errors(self, model: str, served: float | None, online: float | None) -> None:
        if served is not None:
            self._child(self.served_error, model).set(served)
        if online is not None:
            self._child(self.online_error, model).set(online)

    def recalibration(self, model: str, detector: str, outcome: str) -> None:
        self.recalibrations.labels(model, detector, outcome).inc()

    def quality_issue(self, model: str, check: str) -> None:
        self.data_quality.labels(model, check).inc()

    def drift_statistic(self, model: str, feature: str, test: str, value: float) -> None:
        self._child(self.feature_drift_statistic, model, feature, test).set(value)

    def scope_output(self, topic: str, model: str, event: dict[str, Any]) -> None:
        """Count one model-scope output (``topic``: the TopicsConfig field it goes to)."""
        if topic == "drift_events":
            self.incidents.labels(model, event.get("kind", "?"), event.get("severity", "?")).inc()
        elif topic == "retrain_events":
            for r in event.get("reasons", ()):
                self.model_retrains.labels(model, r).inc()
        elif event.get("type") == "challenger-better":
            self.model_verdicts.labels(model).inc()

    def scope_status(self, model: str, late: int, forced: int) -> None:
        self.scope_late.labels(model).set(late)
        self.scope_forced.labels(model).set(forced)

    def scope_waiting_partitions(self, model: str, n: int) -> None:
        self.scope_waiting.labels(model).set(n)

    def scope_late_items(self, model: str, partition: int, n: int) -> None:
        self.scope_late_total.labels(model, str(partition)).inc(n)

    def scope_forget(self, model: str) -> None:
        """This instance no longer decides for ``model`` (its stage moved): drop its gauges, else a stale
        non-zero value would keep an alert firing here."""
        for g in (self.scope_late, self.scope_forced, self.scope_waiting):
            try:
                g.remove(model)
            except KeyError:
                pass

    def retrain(self, model: str, reasons: list[str]) -> None:
        for r in reasons:
            self.retrain_events.labels(model, r).inc()

    def component_failed(self, model: str, component: str) -> None:
        self.component_failures.labels(model, component).inc()

    def model_swap(self, model: str) -> None:
        self.model_swaps.labels(model).inc()

    def checkpoint(self, partition: int, seconds: float, size: int) -> None:
        self.checkpoint_seconds.observe(seconds)
        self.checkpoint_bytes.labels(str(partition)).set(size)


class BatchHistogram:
    """A Prometheus histogram with one label, observed a batch at a time (numpy), exposed through the
    registry's collector interface as a regular ``histogram`` (``_bucket``/``_sum``/``_count``)."""

    def __init__(self, name: str, documentation: str, label: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, label_value: str, values: list[float]) -> None:
        xs = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
        # bucket i counts x <= bounds[i]; the last slot is +Inf
        per_bucket = np.bincount(np.searchsorted(self.bounds, xs, side="left"), minlength=len(self.bounds) + 1)
        with self._lock:
            if label_value not in self._counts:
                self._counts[label_value] = np.zeros(len(self.bounds) + 1, dtype=np.int64)
                self._sums[label_value] = 0.0
            self._counts[label_value] += per_bucket
            self._sums[label_value] += float(xs.sum())

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        with self._lock:
            for value, counts in self._counts.items():
                cumulative = np.cumsum(counts)
                buckets = [(_le(b), float(c)) for b, c in zip(self.bounds, cumulative[:-1])]
                buckets.append(("+Inf", float(cumulative[-1])))
                family.add_metric([value], buckets, self._sums[value])
        return [family]


def _le(bound: float) -> str:
    return str(float(bound))


class MetricsPortInUse(RuntimeError):
    """No port to serve ``/metrics`` on: the configured one (and any searched after it) is taken."""


def serve_metrics(registry: CollectorRegistry, host: str, port: int, port_search: int = 0) -> tuple[int, Any]:
    """Serve ``/metrics`` on ``host:port``, or on the first free one of the ``port_search`` ports after it;
    returns (port, server). Several instances on one host share the default port 9108: the second one
    fails here with a message that says so, instead of an opaque bind error."""
    from prometheus_client import start_http_server

    errors = []
    for candidate in range(port, port + port_search + 1):
        try:
            server, _ = start_http_server(candidate, addr=host, registry=registry)
            return candidate, server
        except OSError as exc:
            errors.append(f"{candidate}: {exc.strerror or exc}")
    tried = f"port {port}" if not port_search else f"ports {port}-{port + port_search}"
    raise MetricsPortInUse(
        f"cannot serve metrics on {host}, {tried} ({'; '.join(errors)}): another driftstream instance on this "
        "host? Give each instance its own metrics.port (DRIFTSTREAM_METRICS__PORT), set metrics.port_search = N "
        "to take the next free one of N ports, or metrics.enabled = false")
