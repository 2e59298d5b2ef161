"""The configuration sections: a tree of frozen dataclasses, each checking its own values in ``check(where)``.

See :mod:`stream.config` for how they are loaded."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping

from detectors.registry import (BINARY, CATEGORICAL_TESTS, DETECTOR_NAMES, DETERMINISTIC_REAL_VALUED,
                                NUMERIC_TESTS, REAL_VALUED, detector_class)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


# -- choices: the loader refuses a value outside the Literal; Annotated names what is chosen ----------------
#: a concept detector by class name (or an earlier alias)
DetectorName = Annotated[Literal[DETECTOR_NAMES], "detector"]
#: "auto" (the task's default) or a concept detector
OnlineDetectorName = Annotated[Literal[("auto", *DETECTOR_NAMES)], "detector"]
#: "" (off) or a real-valued detector that needs no seed to replay identically
MeanDetectorName = Literal[("", *DETERMINISTIC_REAL_VALUED)]
NumericTestName = Literal[NUMERIC_TESTS]
CategoricalTestName = Literal[CATEGORICAL_TESTS]
Task = Literal["classification", "regression"]
OnlineModelKind = Literal["logistic", "linear", "river", "hoeffding_tree"]
#: the compiled classifier's head: "auto" (one logistic regression while the label is binary) or "ovr"
OnlineModelHead = Literal["auto", "ovr"]
OnlinePredictions = Literal["event", "off"]
FeatureType = Literal["numeric", "categorical", "boolean"]
StartFrom = Literal["earliest", "latest"]
OnOffsetOutOfRange = Literal["fail", "reset"]


@dataclass(frozen=True)
class TopicsConfig:
    inference: str = "inference"
    labels: str = "labels"
    drift_events: str = "drift-events"
    retrain_events: str = "retrain-events"
    online_predictions: str = "online-predictions"
    data_quality: str = "data-quality"
    model_updates: str = "model-updates"
    dead_letter: str = "dead-letter"
    control: str = "control"
    #: internal: the partitions' per-batch summaries for the model-level stage (keyed by model)
    summaries: str = "driftstream-summaries"
    #: partitions and replication used when ``driftstream topics create`` (or the demo) creates missing topics;
    #: a missing input topic gets the partition count of the other one if that exists (co-partitioning)
    partitions: int = 8
    replication_factor: int = 1
    #: ``retention.ms`` of created topics (0: the broker's default, 7 days unless changed). The broker deletes
    #: input whose Kafka timestamps are older than this soon after it is produced, before it is processed
    retention_ms: int = 0
    #: further settings of created topics, passed to the broker untouched (e.g. ``"max.message.bytes"``)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessingConfig:
    group_id: str = "driftstream"
    #: max messages per consume() call
    batch_size: int = 2000
    #: max records of one partition processed as one micro-batch: what the merge releases at once (up to
    #: a few thousand while catching up) is processed in slices of this size. Same results for any size;
    #: a slice that fits the CPU caches is ~25% cheaper per record than a batch of thousands
    micro_batch_records: int = 256
    poll_timeout_seconds: float = 0.2
    #: checkpoint a partition after this many processed input messages ...
    checkpoint_every_messages: int = 5000
    #: ... or after this many seconds, whichever comes first
    checkpoint_every_seconds: float = 5.0
    #: messages bigger than this go to the dead-letter topic ("oversized")
    max_message_bytes: int = 1_000_000
    #: the format of input messages (inference, labels, control): one of stream.formats.FORMATS
    input_format: str = "json"
    #: where to start a partition that has no checkpoint: "earliest" or "latest"
    start_from: StartFrom = "earliest"
    #: stored offset below the log start (retention deleted data): "fail" or "reset" (with a data-quality event)
    on_offset_out_of_range: OnOffsetOutOfRange = "fail"
    #: max buffered messages per input partition before that partition is paused
    max_buffered_per_partition: int = 20000
    #: how long one input may stay empty before the other is processed without waiting for it (not while
    #: the broker is known to hold a backlog of it: then its records are on their way)
    max_idle_wait_seconds: float = 2.0
    #: Python's generation-0 garbage-collection threshold while running (0 = Python's default, 700):
    #: every decoded message allocates containers, and at the default the collector costs ~20% of the CPU
    gc_threshold: int = 50_000

    def check(self, where: str) -> None:
        if self.micro_batch_records < 1:
            raise ConfigError(f"{where}.micro_batch_records must be >= 1")
        if self.gc_threshold < 0:
            raise ConfigError(f"{where}.gc_threshold must be >= 0 (0 = Python's default)")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be >= 1")
        from stream.formats import FORMATS  # here, not at import: formats import the event types

        if self.input_format not in FORMATS:
            raise ConfigError(f"{where}.input_format must be one of {', '.join(map(repr, FORMATS))}, "
                              f"got {self.input_format!r}")


@dataclass(frozen=True)
class JoinConfig:
    #: max predictions (and, separately, early labels) waiting for their partner, per partition
    max_pending: int = 200_000
    #: a pending item older than this (event time, seconds) behind the newest event is expired
    ttl_seconds: float = 3600.0
    #: how many joined ids are remembered to recognise a duplicate label (also bounded by ttl_seconds);
    #: part of every checkpoint, so keep it modest
    remember_joined: int = 20_000
    #: wall clock: labels still waiting for their prediction when the partition has received nothing for this
    #: long are dead-lettered (label_without_prediction) instead of waiting for later events; 0 = off
    idle_expire_seconds: float = 120.0

    def check(self, where: str) -> None:
        if self.idle_expire_seconds < 0:
            raise ConfigError(f"{where}.idle_expire_seconds must be >= 0 (0 = off)")


@dataclass(frozen=True)
class DetectorConfig:
    #: a concept detector of ``detectors.registry`` by class name (binary ones take 0/1 errors)
    name: DetectorName = "ADWIN"
    params: Mapping[str, Any] = field(default_factory=dict)
    #: if > 0: calibrate the detector's threshold so that, on data like the first ``calibration_window``
    #: errors, false alarms come on average once every this many events (see detectors.calibrate)
    false_alarm_every: int = 0
    calibration_window: int = 2000
    calibration_seed: int = 0
    #: when calibration says the window is too short to pin the error rate, the detector keeps collecting
    #: up to what it asks for, at most this many errors (kept in the checkpoint until calibrated)
    calibration_max_window: int = 20_000
    #: when calibration refuses (no threshold gives the false-alarm law, or the reference would exceed
    #: calibration_max_window): "defaults" runs the detector on its configured params, uncalibrated;
    #: "off" turns it off. Either way a critical data-quality event "calibration_refused" says why.
    on_calibration_error: Literal["defaults", "off"] = "defaults"
    #: most work one calibration may take, in weighted simulated detector updates (see
    #: detectors.calibrate.BudgetExceeded): it runs on the service's thread, once per model and partition
    #: (and once in the model stage); 5e8 is ~5-15 s here. Beyond it the detector falls back as
    #: on_calibration_error says: calibrate large targets offline (detectors.calibrate) and set the params
    calibration_max_updates: int = 500_000_000
    #: after a calibrated detector's drift alarm, collect a reference of the new concept's errors (the same
    #: window rules) and calibrate again when its error rate differs (98% two-sample test), swapping the new
    #: values in after that reference: else the old threshold, set for the old rate, alarms far too often or
    #: too rarely on the new one (see stream.detect.ConceptDetectors). The same budget and fallback apply
    recalibrate_after_change: bool = True

    def check(self, where: str) -> None:
        if self.false_alarm_every < 0 or (self.false_alarm_every and self.calibration_window < 100):
            raise ConfigError(f"{where}: false_alarm_every must be >= 0 and calibration_window >= 100")
        if self.calibration_max_window < self.calibration_window:
            raise ConfigError(f"{where}: calibration_max_window ({self.calibration_max_window}) must be >= "
                              f"calibration_window ({self.calibration_window})")
        if self.calibration_max_updates < 1_000_000:
            raise ConfigError(f"{where}.calibration_max_updates must be >= 1,000,000")
        if self.on_calibration_error not in ("defaults", "off"):
            raise ConfigError(f"{where}.on_calibration_error must be 'defaults' or 'off'")
        allowed = inspect.signature(detector_class(self.name)).parameters
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:  # else the service would fail when it first builds the detector, not at start-up
            raise ConfigError(f"{where}.params: {self.name} has no parameter(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class OnlineModelConfig:
    enabled: bool = True
    #: "logistic" / "linear" (scaled numeric + one-hot categoricals into a linear head that follows the task,
    #: compiled and River-exact: stream.learner.OnlineLinearModel), "river" (the same model as River's pipeline,
    #: the reference) or "hoeffding_tree" (River's)
    kind: OnlineModelKind = "logistic"
    #: the compiled classifier's head: "auto" (one logistic regression while the label has at most two
    #: classes, one-vs-rest from a third) or "ovr" (one-vs-rest like River's pipeline, bit-identical to it)
    head: OnlineModelHead = "auto"
    learning_rate: float = 0.05
    #: warn -> background model -> swap on drift, watching the online model's own error
    adapt: bool = True
    #: detector on the online model's error; a binary one gives the warnings that start the background model.
    #: "auto": HDDMA for classification, ADWIN for regression
    drift_detector: OnlineDetectorName = "auto"
    drift_params: Mapping[str, Any] = field(default_factory=dict)
    #: the online model's predictions on topics.online_predictions: "event" (one message per inference event)
    #: or "off" (none: the model still learns, is compared with the served model and swaps; ~1 µs per event
    #: less). A batched form is not offered: a message per micro-batch would depend on where batches are
    #: cut, so a replay would not re-publish the same messages
    publish_predictions: OnlinePredictions = "event"


@dataclass(frozen=True)
class ChallengerConfig:
    """Champion (served model) vs challenger (online model) on the same labels."""

    enabled: bool = True
    #: sliding window of paired outcomes
    window: int = 2000
    #: significance level of the paired test (McNemar / paired z)
    alpha: float = 0.01
    min_pairs: int = 200
    #: run the test every this many joined events
    every: int = 100

    def check(self, where: str) -> None:
        if not (0 < self.alpha < 1) or self.window < self.min_pairs or self.every < 1 or self.min_pairs < 2:
            raise ConfigError(f"{where}: need 0 < alpha < 1, window >= min_pairs >= 2 (a paired test needs a "
                              f"variance), every >= 1")


@dataclass(frozen=True)
class RetrainPolicyConfig:
    enabled: bool = True
    #: retrain on confirmed concept drift of the served model's error
    on_concept_drift: bool = True
    #: retrain when data drift (feature/prediction/label) stays active this long (event seconds); 0 = off
    data_drift_sustained_seconds: float = 0.0
    #: retrain when the served model's error over ``performance_window`` labels exceeds this; 0 = off
    performance_threshold: float = 0.0
    performance_window: int = 1000
    #: scheduled retraining every this many event seconds; 0 = off
    every_seconds: float = 0.0
    #: scheduled retraining after this many new labels (volume of new labelled data); 0 = off
    every_labels: int = 0
    #: a schema change (missing/unexpected feature, wrong type) triggers retraining (else it only alerts)
    on_schema_change: bool = False
    #: after a retrain event, triggers only collect evidence for this long (event seconds)
    cooldown_seconds: float = 3600.0
    #: recommended window when no change point is known: this many seconds before the trigger
    fallback_window_seconds: float = 86400.0
    #: a concept change that lowers the served error (the concept came back) is published (severity info);
    #: it triggers a retrain only when this is true
    retrain_on_improvement: bool = False
    #: one degradation episode (from its change point until the error improves again) gives one retrain event;
    #: false: every confirmed degradation past the cooldown gives one
    one_retrain_per_episode: bool = True

    def check(self, where: str) -> None:
        if min(self.data_drift_sustained_seconds, self.performance_threshold, self.every_seconds,
               self.every_labels, self.cooldown_seconds) < 0 or self.performance_window < 1:
            raise ConfigError(f"{where}: thresholds must be >= 0 and performance_window >= 1")


FEATURE_TYPES: tuple[str, ...] = typing.get_args(FeatureType)


@dataclass(frozen=True)
class FeatureSpec:
    """One declared input feature of a model (``[models.<name>.features.<feature>]``)."""

    #: "numeric", "categorical" or "boolean"
    type: FeatureType = "numeric"
    nullable: bool = True
    #: inclusive range for numeric features (None: unbounded)
    min: float | None = None
    max: float | None = None
    #: allowed values of a categorical feature (empty: any value)
    categories: tuple[str, ...] = ()

    def check(self, where: str) -> None:
        if self.type != "numeric" and (self.min is not None or self.max is not None):
            raise ConfigError(f"{where}: min/max only apply to numeric features")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"{where}: min ({self.min}) is greater than max ({self.max})")
        if self.categories and self.type != "categorical":
            raise ConfigError(f"{where}: categories only apply to categorical features")
        if len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"{where}.categories has duplicates")


@dataclass(frozen=True)
class DataQualityConfig:
    enabled: bool = True
    #: a feature whose last ``constant_window`` non-null values are all equal is reported as constant
    constant_window: int = 500
    #: at most one event per (check, feature) per this many inference events of the model in a partition
    rate_limit_events: int = 1000
    #: label delay growth: the mean delay of the last ``label_delay_window`` joins above this factor times
    #: the mean of the first window is reported (0 = off)
    label_delay_growth_factor: float = 2.0
    label_delay_window: int = 500
    #: volume drop: inference events over ``volume_window_seconds`` of event time below this fraction of the
    #: first full window's count (0 = off)
    volume_drop_ratio: float = 0.5
    volume_window_seconds: float = 300.0
    #: no data: nothing arrived on a partition for this many wall-clock seconds (0 = off)
    no_data_seconds: float = 300.0

    def check(self, where: str) -> None:
        if self.constant_window < 2:
            raise ConfigError(f"{where}.constant_window must be >= 2")
        if self.label_delay_window < 1:
            raise ConfigError(f"{where}.label_delay_window must be >= 1")
        if self.rate_limit_events < 1:
            raise ConfigError(f"{where}.rate_limit_events must be >= 1")


@dataclass(frozen=True)
class DataDriftConfig:
    """Windowed two-sample tests on features, served predictions/scores and labels."""

    enabled: bool = True
    #: a numeric test of ``detectors.registry`` ("ks" or "psi")
    numeric_test: NumericTestName = "ks"
    #: a categorical test of ``detectors.registry`` ("chi2" or "js"; also used for booleans)
    categorical_test: CategoricalTestName = "chi2"
    reference_size: int = 1000
    window_size: int = 500
    #: values between two tests once the window is full
    step: int = 100
    #: significance level of each KS / chi2 test; small because a test runs every ``step`` values of every
    #: signal forever (it is not a family-wise error rate). 1e-4 gave a false data-drift incident in the
    #: first 10,000 events of 4 of 20 seeds of the demo's workload (7 signals, the model stage); 1e-6 in none,
    #: for ~60 events more delay on a shift of one feature (README, Data drift)
    alpha: float = 1e-6
    psi_threshold: float = 0.25
    js_threshold: float = 0.1
    #: features tracked per model (declared order, else order of first appearance)
    max_features: int = 32
    #: also watch the mean of every numeric feature with this detector ("ADWIN" or "PageHinkley";
    #: "" = off); each detection is a feature drift event with detector "ADWIN" / "PageHinkley"
    mean_detector: MeanDetectorName = ""

    def check(self, where: str) -> None:
        for key in ("reference_size", "window_size", "step", "max_features"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key} must be >= 1")
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"{where}.alpha must be in (0, 1)")
        if self.psi_threshold <= 0.0:
            raise ConfigError(f"{where}.psi_threshold must be > 0")
        if not 0.0 < self.js_threshold <= 1.0:
            raise ConfigError(f"{where}.js_threshold must be in (0, 1]")


CLASSIFICATION_DETECTORS = (DetectorConfig("ADWIN", {}), DetectorConfig("HDDMA", {}))
REGRESSION_DETECTORS = (DetectorConfig("ADWIN", {}), DetectorConfig("PageHinkley", {}))


@dataclass(frozen=True)
class ModelSpec:
    """What is monitored for one model name (declared in ``[models.<name>]``)."""

    task: Task = "classification"
    #: detectors on the served model's error stream (0/1 for classification, |error| for regression);
    #: left at the default, a regression model gets ADWIN + PageHinkley instead of ADWIN + HDDMA
    error_detectors: tuple[DetectorConfig, ...] = CLASSIFICATION_DETECTORS
    online_model: OnlineModelConfig = OnlineModelConfig()
    #: declared input schema; empty means "infer from the first event" (and report the model as undeclared)
    features: Mapping[str, FeatureSpec] = field(default_factory=dict)
    data_quality: DataQualityConfig = DataQualityConfig()
    data_drift: DataDriftConfig = DataDriftConfig()
    retrain: RetrainPolicyConfig = RetrainPolicyConfig()
    challenger: ChallengerConfig = ChallengerConfig()

    @property
    def detectors(self) -> tuple[DetectorConfig, ...]:
        """The error detectors in force for this task."""
        if self.task == "regression" and self.error_detectors == CLASSIFICATION_DETECTORS:
            return REGRESSION_DETECTORS
        return self.error_detectors

    def check(self, where: str) -> None:
        """What involves more than one part of the spec (each part checked itself)."""
        for name in self.features:
            if not name or len(name) > 128:
                raise ConfigError(f"{where}.features.{name}: feature names have 1..128 characters")
        if self.task == "regression":
            real = ", ".join(REAL_VALUED[:-1]) + " or " + REAL_VALUED[-1]
            for d in self.detectors:
                if d.name in BINARY:
                    raise ConfigError(f"{where}.error_detectors: {d.name} takes 0/1 errors; a regression model's "
                                      f"absolute errors need {real}")
            od = self.online_model.drift_detector
            if self.online_model.adapt and od in BINARY:
                raise ConfigError(f"{where}.online_model.drift_detector: {od} takes 0/1 errors; use {real} "
                                  "for regression")


@dataclass(frozen=True)
class StateConfig:
    #: key namespace in Redis
    key_prefix: str = "driftstream"
    #: HMAC key for state blobs (required outside demo mode; prefer DRIFTSTREAM_STATE__HMAC_KEY)
    hmac_key: str = ""


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    #: every instance on one host needs its own port (the default is shared: a second instance fails to start)
    port: int = 9108
    host: str = "127.0.0.1"
    #: if ``port`` is taken, try this many ports after it and serve on the first free one (logged; 0 = fail)
    port_search: int = 0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    json: bool = False


def _default_kafka() -> Mapping[str, Any]:
    return {"bootstrap.servers": "127.0.0.1:31092"}


def _default_redis() -> Mapping[str, Any]:
    return {"url": "redis://127.0.0.1:31379/0"}


@dataclass(frozen=True)
class ScopeConfig:
    """The model-level stage: decisions per model over all its partitions (``stream.scope``).

    Each partition pipeline publishes a summary of every micro-batch per model to ``topics.summaries``
    (keyed by model); a consumer group of the same instances merges them in event time and decides once per
    model: concept and data-drift incidents, retrain events, challenger verdicts (``"scope": "model"``)."""

    enabled: bool = True
    #: an idle or slow partition holds a model back by at most this much event time (0: wait forever)
    max_watermark_lag_seconds: float = 60.0
    #: ... and only once it sent nothing for this long (wall clock): a partition catching up on a backlog
    #: is behind in event time but busy, and is waited for (0: the event-time bound alone)
    idle_partition_seconds: float = 30.0
    #: ... unless the broker holds input of that partition it has not processed yet (a backlog: the input
    #: topics' high watermarks beyond the end positions of its last summary, asked when the idle test would
    #: fire): then it is waiting its turn (a slow consumer, a restart or a rebalance catching up) and is
    #: waited for until it has sent nothing for this long (0: wait for a partition with a backlog forever)
    stalled_partition_seconds: float = 300.0
    #: alarms within this much event time of an incident's last alarm belong to that incident
    incident_quiet_seconds: float = 120.0
    #: partition-scope evidence ids remembered for incidents
    max_evidence: int = 200
    #: event-time disorder tolerated within a partition's input: a partition promises the model stage that
    #: its later items are newer than (its oldest input's newest event time - this)
    disorder_seconds: float = 1.0
    #: also publish the partitions' own decisions (retrain events, challenger verdicts, scope "partition");
    #: with the model stage on they are evidence only, and off by default. Partition-scope drift events are
    #: always published (model-scope incidents name them as evidence; data drift: see partition_data_drift)
    publish_partition_decisions: bool = False
    #: also run each partition's own data-drift tests (partition-scope data-drift events, named as evidence by
    #: the model-scope incidents). Off by default: the stage runs the same tests on all of the model's traffic
    #: from the rows the summaries carry, and a partition's test on 1/P of it is a second, weaker copy of that
    #: work (it was the biggest part of the stage's cost; with publish_partition_decisions the partitions' own
    #: retrain policies then see no data drift). The partitions' concept detectors always run
    partition_data_drift: bool = False
    #: a partition holds a model's summary over micro-batches until it has this many items (outcomes, rows,
    #: labels) ...
    summary_flush_items: int = 2000
    #: ... or its first micro-batch is this old (wall clock; 0: one summary per micro-batch); always sent
    #: before a checkpoint of the partition. The Kafka client hands over a few records per partition at a
    #: time, and the stage pays per summary as well as per item; the model-scope decisions wait this long
    #: more at most
    summary_flush_seconds: float = 0.25

    def check(self, where: str) -> None:
        for name in ("max_watermark_lag_seconds", "idle_partition_seconds", "stalled_partition_seconds",
                     "incident_quiet_seconds", "disorder_seconds", "summary_flush_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0")
        if self.max_evidence < 1:
            raise ConfigError(f"{where}.max_evidence must be >= 1")
        if self.summary_flush_items < 1:
            raise ConfigError(f"{where}.summary_flush_items must be >= 1")


@dataclass(frozen=True)
class AppConfig:
    #: librdkafka settings, passed to every client untouched (bootstrap.servers, security.protocol, sasl.*, ssl.*)
    kafka: Mapping[str, Any] = field(default_factory=_default_kafka)
    #: ``url`` plus redis-py keyword arguments, passed untouched (password, ssl_ca_certs, ...)
    redis: Mapping[str, Any] = field(default_factory=_default_redis)
    topics: TopicsConfig = TopicsConfig()
    processing: ProcessingConfig = ProcessingConfig()
    join: JoinConfig = JoinConfig()
    state: StateConfig = StateConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    scope: ScopeConfig = ScopeConfig()
    #: the spec used for a model name that is not declared in ``models``; data drift is opt-in for it,
    #: since without a declared schema nobody has said which distributions are meant to be stable
    default_model: ModelSpec = ModelSpec(data_drift=DataDriftConfig(enabled=False))
    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    #: monitor models that are not declared in ``models`` with ``default_model`` (else dead-letter them)
    accept_undeclared_models: bool = True
    #: demo mode relaxes the HMAC-key requirement (a fixed demo key is used)
    demo: bool = False

    def model_spec(self, name: str) -> ModelSpec:
        return self.models.get(name, self.default_model)

    def check(self, where: str) -> None:
        if "bootstrap.servers" not in self.kafka:
            raise ConfigError("kafka.bootstrap.servers is required")
        if "url" not in self.redis:
            raise ConfigError("redis.url is required")
