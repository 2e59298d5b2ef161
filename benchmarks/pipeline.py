"""End-to-end pipeline benchmark: driftstream against the Quix Streams + River job a user would write.

    python benchmarks/pipeline.py                 # 1M inference events + 1M labels over 8 partitions
    python benchmarks/pipeline.py --quick         # 100k events: a smoke run
    python benchmarks/pipeline.py --events 20000 --variants ceiling,driftstream --no-resume
    python benchmarks/pipeline.py --quick --profile   # + a cProfile run of variant 2, top hotspots
    python benchmarks/pipeline.py --markdown      # the tables as Markdown, for the README
    python benchmarks/pipeline.py --rounds 3      # every variant 3 times in turn: medians and spread
    python benchmarks/pipeline.py --scaling --rounds 3   # CPU per event vs features (5, 20, 100), models (1, 3, 20)

One run, one machine, the shared broker. The workload (``stream.tools.workload.Workload`` with 8 extra numeric
features, the concept changing half way) is produced once into fresh topics of this run; then every
variant reads it from the beginning with a fresh consumer group, each in its own subprocess, until it has
consumed every input message (with ``--rounds N``, the whole sequence N times, later rounds with groups of
their own; the tables then show each variant's median run, ratios between medians, and the events/s of
every round):

1. ``ceiling``: confluent-kafka ``consume(num_messages=...)`` + ``orjson.loads`` of every value, nothing else;
2. ``driftstream``: ``stream.app.Service`` in-process with the **default configuration** (the built-in
   defaults, what ``driftstream run`` uses without ``-c``: the online model on, of whatever kind the
   defaults name, join + data quality + concept and feature drift + challenger), checkpoints every 1 s
   (time-based only); stop when ``driftstream_messages_total`` reaches the count. The benchmark changes
   only the topics, group, Redis prefix and checkpoint cadence, and turns feature drift on for undeclared
   models (it is opt-in there, and the workload's models are undeclared);
   2b. ``driftstream-nockpt`` (not run unless asked for): the same with checkpoints off (one final
   checkpoint, after the window);
   With the model-level stage on (the default), the window ends only once the stage has also read every
   summary written (its decisions are part of the end-to-end work);
   2c. ``driftstream-no-scope`` (not run unless asked for): as 2 with the model-level stage off (each
   partition decides alone): ``1 - 2c / 2`` in CPU per event is the stage's share of the end-to-end cost
   (issue 17's target: at most 10% at 8 partitions);
3. ``driftstream-no-model``: as 2 with the online model off;
4. ``quix``: ``benchmarks/quix_baseline.py`` (Quix Streams join in state + River ``ADWIN``/``HDDMA``
   ``update`` per joined event), as shipped;
5. ``quix+model``: the same Quix job plus the River online model a user would add (scaled + one-hot
   logistic pipeline per (partition, model), ``predict_proba_one`` then ``learn_one`` per joined event,
   the same features): the like-for-like peer of 2.

The headline is 2 against 5 in **CPU per event** (the broker shares the machine's cores, so wall time is
bounded by it), with events/s beside it; 2 against 3 is what the online model costs. With ``--rounds N``
both are medians over the rounds, each metric on its own.

``--scaling`` runs 2 and 3 (model on and off) on workloads of their own instead: 5, 20 and 100 features
per event (one model), and 1, 3 and 20 models (12 features; events go round-robin to the models), and
prints CPU per event for each.

An *event* in the tables is one input message (an inference event or a label). Throughput and CPU are
measured over the processing window, from the first consumed message to the last, so group joins and
imports are excluded (they show as "start s", from spawn to the first message, and "first output s", from spawn
to the first message processed: what a user waits for after starting the service). CPU seconds are the
process's (all threads, librdkafka's included) over the window; peak RSS is the subprocess's maximum
resident set size, from ``os.wait4``.

Also measured: the time ``driftstream run`` takes to produce its first new output after a SIGKILL (a
checkpointed, partially processed workload; restart; first message appended to the online-predictions
topic), and the state bytes per partition (the Redis ``size`` field of each checkpoint of variants 2 and 3).
The targets are printed next to the measured ratios; nothing is asserted. Every topic and Redis key this
run creates is deleted at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pstats
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

# detectors.py in this folder would shadow the ``detectors`` package: put the repository first instead.
_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from stream.config import AppConfig, DataDriftConfig, OnlineModelConfig, load_config  # noqa: E402

PARTITIONS = 8
EXTRA_FEATURES = 8
CHECKPOINT_SECONDS = 1.0
NEVER = 10**12
DEFAULT_EVENTS = 1_000_000
QUICK_EVENTS = 100_000
HMAC_KEY = "pipeline-bench-hmac-key"

# name -> (table label, what it is)
VARIANTS: dict[str, tuple[str, str]] = {
    "ceiling": ("1 ceiling", "confluent-kafka batch consume + orjson decode"),
    "driftstream": ("2 driftstream default config",
                    "Service, default config: online model on, join + data quality + concept/feature drift, ckpt 1 s"),
    "driftstream-nockpt": ("2b driftstream no ckpt", "as 2, checkpoints off"),
    "driftstream-no-model": ("3 driftstream model off", "as 2, online model off"),
    "driftstream-no-scope": ("2c driftstream model stage off", "as 2, the model-level stage off (partitions decide)"),
    "quix": ("4 Quix + River", "Quix Streams join in state + River ADWIN/HDDMA update per event"),
    "quix+model": ("5 Quix + River + model", "as 4 + River's scaled/one-hot logistic model per event"),
}
ORDER = tuple(VARIANTS)
#: what a run measures unless --variants says otherwise
DEFAULT_VARIANTS = ("ceiling", "driftstream", "driftstream-no-model", "quix", "quix+model")
DRIFTSTREAM_VARIANTS = ("driftstream", "driftstream-nockpt", "driftstream-no-model", "driftstream-no-scope")
#: issue 18's targets, median of the rounds of one run
TARGET_MODEL_OVERHEAD = 1.3     # CPU per event, default config / model off: at most
TARGET_CPU_VS_PEER = 5.0        # CPU per event, quix+model / default config: at least
TARGET_RATE_VS_PEER = 3.0       # events/s, default config / quix+model: at least
TARGET_CHECKPOINT_OVERHEAD = 0.10
#: issue 17: the model-level stage's share of the end-to-end CPU per event (1 - 2c / 2): at most
TARGET_STAGE_SHARE = 0.10
#: --scaling: (features per event, models) settings; 12 features and 1 model is the main workload
SCALING_FEATURES = (5, 20, 100)
SCALING_MODELS = (1, 3, 20)
BASE_FEATURES = 4  # the workload's amount, age, country, channel


# -- configuration -------------------------------------------------------------------------------
def bench_config(base: AppConfig, run_id: str) -> AppConfig:
    """The run's own topics (input and output), with the benchmark's partition count."""
    names = {f.name: f"{run_id}.{getattr(base.topics, f.name)}"
             for f in dataclasses.fields(base.topics) if isinstance(getattr(base.topics, f.name), str)}
    topics = dataclasses.replace(base.topics, partitions=PARTITIONS, **names)
    state = dataclasses.replace(base.state, hmac_key=HMAC_KEY, key_prefix=run_id)
    return dataclasses.replace(base, topics=topics, state=state)


def variant_config(cfg: AppConfig, variant: str, group: str) -> AppConfig:
    """Config of a driftstream variant: its own group, checkpoint cadence and model spec."""
    ckpt = NEVER if variant == "driftstream-nockpt" else CHECKPOINT_SECONDS
    processing = dataclasses.replace(cfg.processing, group_id=group,
                                     checkpoint_every_seconds=float(ckpt), checkpoint_every_messages=NEVER)
    dm = cfg.default_model
    # feature drift is opt-in for undeclared models (every model of the workload is); the benchmark measures it
    model = dataclasses.replace(dm, data_drift=dataclasses.replace(dm.data_drift, enabled=True))
    models = cfg.models
    if variant == "driftstream-no-model":
        model = dataclasses.replace(model, online_model=dataclasses.replace(dm.online_model, enabled=False))
        models = {name: _without_online_model(m) for name, m in cfg.models.items()}
    scope = cfg.scope
    if variant == "driftstream-no-scope":
        scope = dataclasses.replace(scope, enabled=False)
    return dataclasses.replace(cfg, processing=processing, default_model=model, models=models, scope=scope)


def _without_online_model(model_cfg: Any) -> Any:
    om = getattr(model_cfg, "online_model", None)
    return model_cfg if om is None else dataclasses.replace(model_cfg, online_model=dataclasses.replace(om, enabled=False))


def group_of(run_id: str, variant: str) -> str:
    # Quix names its changelog topics after the group, and a topic name cannot hold a "+"
    return f"{run_id}.{variant.replace('+', '-with-')}"


# -- workers (each runs in its own subprocess) -----------------------------------------------------
def worker_ceiling(cfg: AppConfig, spec: dict[str, Any]) -> dict[str, Any]:
    from confluent_kafka import Consumer

    c = Consumer({**cfg.kafka, "group.id": group_of(spec["run_id"], "ceiling") + spec.get("group_tag", ""),
                  "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "partition.assignment.strategy": "range"})
    c.subscribe([cfg.topics.inference, cfg.topics.labels])
    expect, consumed = spec["expect"], 0
    first_at = first_cpu = None
    deadline = time.monotonic() + spec["timeout"]
    try:
        while consumed < expect and time.monotonic() < deadline:
            for m in c.consume(num_messages=cfg.processing.batch_size, timeout=cfg.processing.poll_timeout_seconds):
                if m.error() is not None:
                    continue
                if first_at is None:
                    first_at, first_cpu = time.monotonic(), time.process_time()
                orjson.loads(m.value())
                consumed += 1
        end, end_cpu = time.monotonic(), time.process_time()
    finally:
        c.close()
    out: dict[str, Any] = {"consumed": consumed}
    if first_at is not None:
        out.update(first_at=first_at, seconds=end - first_at, cpu_seconds=end_cpu - first_cpu)
    return out


class _FirstMessageClock:
    """Wraps the service's consumer to note when the first message arrives; everything else delegates."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.first_at: float | None = None
        self.first_cpu = 0.0
        #: CPU time of the thread that consumes (the service's main thread) at the first message
        self.first_thread_cpu = 0.0

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        msgs = self._consumer.consume(*args, **kwargs)
        if msgs and self.first_at is None:
            self.first_at, self.first_cpu = time.monotonic(), time.process_time()
            self.first_thread_cpu = time.thread_time()
        return msgs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def messages_total(metrics: Any) -> float:
    return sum(s.value for fam in metrics.messages.collect() for s in fam.samples if s.name.endswith("_total"))


def worker_driftstream(cfg: AppConfig, spec: dict[str, Any], variant: str) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from stream.app import build_service
    from stream.metrics import Metrics

    vcfg = variant_config(cfg, variant, group_of(spec["run_id"], variant) + spec.get("group_tag", ""))
    metrics = Metrics(CollectorRegistry())
    svc = build_service(vcfg, metrics)
    clock = _FirstMessageClock(svc.consumer)
    svc.consumer = clock
    expect = spec["expect"]
    done: dict[str, float] = {}

    main_clock = time.pthread_getcpuclockid(threading.get_ident())

    stage_done = _stage_caught_up(vcfg, svc) if svc.scope is not None else None

    def watch() -> None:
        # the stop condition: driftstream_messages_total reaches the number of input messages and, with the
        # model-level stage on, the stage has read every summary written so far (its decisions are part of the
        # end-to-end work: the partitions' last summaries are still to be decided when their inputs are done)
        deadline = time.monotonic() + spec["timeout"]
        while time.monotonic() < deadline:
            n = messages_total(metrics)
            if n and "first_output" not in done:
                done["first_output"] = time.monotonic()
            if n >= expect:
                if "inputs_at" not in done:
                    done["inputs_at"] = time.monotonic()
                if stage_done is None or stage_done():
                    done.update(at=time.monotonic(), cpu=time.process_time(), main_cpu=time.clock_gettime(main_clock))
                    break
            time.sleep(0.02)
        svc.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    profile_path = spec.get("profile")
    if profile_path:
        import cProfile

        prof = cProfile.Profile()
        rc = prof.runcall(svc.run)
        prof.dump_stats(profile_path)
    else:
        rc = svc.run()
    watcher.join(5)
    out: dict[str, Any] = {"consumed": int(messages_total(metrics)), "exit": rc,
                           "checkpoints": svc.checkpoints_written}
    if stage_done is not None and "at" in done and "inputs_at" in done:
        out["stage_tail_seconds"] = done["at"] - done["inputs_at"]
    if "first_output" in done:
        out["first_output_at"] = done["first_output"]
    if clock.first_at is not None:
        end, end_cpu = (done["at"], done["cpu"]) if done else (time.monotonic(), time.process_time())
        out.update(first_at=clock.first_at, seconds=end - clock.first_at, cpu_seconds=end_cpu - clock.first_cpu)
        if done:  # the service's own thread, without librdkafka's threads
            out.update(main_thread_cpu_seconds=done["main_cpu"] - clock.first_thread_cpu)
    return out


def _stage_caught_up(cfg: AppConfig, svc: Any) -> Any:
    """A check, for the watcher thread, that the model-level stage has read every summary written so far:
    its next offsets on the summaries topic reach the topic's high watermarks (asked with a consumer of its
    own, not the service's), twice in a row (a summary produced in between moves the high watermark)."""
    from confluent_kafka import Consumer, TopicPartition

    from stream.clients import consumer_config

    probe = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-probe"})
    topic = cfg.topics.summaries
    last: list[int | None] = [None]

    def check() -> bool:
        try:
            parts = probe.list_topics(topic, timeout=5).topics[topic].partitions
            high = sum(probe.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                       for p in parts)
        except Exception:  # the broker is busy: ask again
            return False
        owned = dict(svc.scope.owned)
        read = sum(o.next_offset or 0 for o in owned.values())
        ok = len(owned) == len(parts) and read >= high and last[0] == high
        last[0] = high if read >= high else None
        return ok

    return check


def worker_main(variant: str, spec: dict[str, Any]) -> int:
    cfg = bench_config(load_config(None), spec["run_id"])
    if variant == "ceiling":
        result = worker_ceiling(cfg, spec)
    elif variant in ("quix", "quix+model"):
        from benchmarks import quix_baseline

        result = quix_baseline.run(cfg.kafka["bootstrap.servers"], group_of(spec["run_id"], variant) + spec.get("group_tag", ""),
                                   cfg.topics.inference, cfg.topics.labels, cfg.topics.drift_events, spec["expect"],
                                   commit_interval=CHECKPOINT_SECONDS, timeout=min(spec["timeout"], 120.0),
                                   model=variant == "quix+model")
    else:
        result = worker_driftstream(cfg, spec, variant)
    print("RESULT " + orjson.dumps(result).decode(), flush=True)
    return 0 if result.get("consumed") == spec["expect"] else 1


# -- the parent: workload, variants, resume, state sizes, report -----------------------------------
@dataclasses.dataclass
class VariantResult:
    variant: str
    consumed: int
    seconds: float | None
    cpu_seconds: float | None
    peak_rss_mib: float
    start_seconds: float | None
    exit_code: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: spawn -> the first input message processed (start-up, imports, compiled kernels, group join included)
    first_output_seconds: float | None = None

    @property
    def rate(self) -> float | None:
        return self.consumed / self.seconds if self.seconds else None

    @property
    def cpu_per_million(self) -> float | None:
        return self.cpu_seconds / self.consumed * 1e6 if self.cpu_seconds is not None and self.consumed else None


def run_variant(variant: str, spec: dict[str, Any], log: Any) -> VariantResult:
    """Run one variant in a subprocess; its own rusage (peak RSS) comes from ``os.wait4``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--spec", json.dumps(spec)]
    spawned = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for t in readers:
        t.start()
    killer = threading.Timer(spec["timeout"] + 120, proc.kill)
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(10)
    stdout = b"".join(out_chunks).decode(errors="replace")
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = orjson.loads(line[len("RESULT "):])
    if proc.returncode != 0 or not result:
        tail = b"".join(err_chunks).decode(errors="replace")[-3000:]
        log(f"  {variant}: exit {proc.returncode}; stderr tail:\n{tail}")
    first_at = result.get("first_at")
    # the ceiling and Quix variants are done with a message right when they have it
    first_output_at = result.get("first_output_at", first_at)
    return VariantResult(
        variant=variant,
        consumed=int(result.get("consumed", 0)),
        seconds=result.get("seconds"),
        cpu_seconds=result.get("cpu_seconds"),
        peak_rss_mib=usage.ru_maxrss / 1024.0,  # KiB on Linux
        start_seconds=first_at - spawned if first_at is not None else None,
        exit_code=proc.returncode,
        extra={k: v for k, v in result.items()
               if k not in ("consumed", "seconds", "cpu_seconds", "first_at", "first_output_at")},
        first_output_seconds=first_output_at - spawned if first_output_at is not None else None,
    )


def model_names(n: int) -> tuple[str, ...]:
    """The workload's model names: ``fraud``, then ``fraud-2`` ... (events go round-robin to them)."""
    return ("fraud",) + tuple(f"fraud-{k}" for k in range(2, n + 1))


def produce_workload(cfg: AppConfig, n_events: int, run_id: str, features: int = EXTRA_FEATURES + BASE_FEATURES,
                     models: int = 1) -> int:
    from confluent_kafka import Producer

    from stream.clients import producer_config
    from stream.tools.workload import Workload, produce

    spacing, delay = 0.01, 5.0
    # event time ends about now: the broker neither rejects future timestamps nor expires the data
    t0 = float(int(time.time() - n_events * spacing - delay))
    w = Workload(n_events=n_events, change_points=(n_events // 2,), extra_features=features - BASE_FEATURES,
                 models=model_names(models), id_prefix=run_id, t0=t0, spacing=spacing, label_delay=delay)
    return produce(Producer(producer_config(cfg)), w, cfg.topics.inference, cfg.topics.labels)


def state_sizes(cfg: AppConfig, redis_client: Any, group: str) -> list[int]:
    """The Redis ``size`` field of every partition checkpoint of ``group`` (sealed blob bytes)."""
    sizes = []
    for p in range(cfg.topics.partitions):
        v = redis_client.hget(f"{cfg.state.key_prefix}:{{{group}:{p}}}", "size")
        if v is not None:
            sizes.append(int(v))
    return sizes


def measure_resume(cfg: AppConfig, run_id: str, expect: int, timeout: float = 120.0,
                   static: bool = False) -> dict[str, Any]:
    """SIGKILL ``driftstream run`` after its first checkpoint of every partition, restart it, and time the
    restart to the first output it appends (online predictions: one per inference event). With
    ``static``, both runs use Kafka static membership (``[kafka] "group.instance.id"``): the restarted
    member takes its partitions back at once instead of waiting for the killed one's session to time out."""
    import redis
    from confluent_kafka import Consumer, TopicPartition

    from stream.checkpoint import CheckpointStore

    group = group_of(run_id, "resume-static" if static else "resume")
    env = dict(os.environ)
    env.update({
        "DRIFTSTREAM_KAFKA__BOOTSTRAP_SERVERS": cfg.kafka["bootstrap.servers"],
        "DRIFTSTREAM_REDIS__URL": cfg.redis["url"],
        "DRIFTSTREAM_PROCESSING__GROUP_ID": group,
        "DRIFTSTREAM_PROCESSING__CHECKPOINT_EVERY_SECONDS": str(CHECKPOINT_SECONDS),
        "DRIFTSTREAM_PROCESSING__CHECKPOINT_EVERY_MESSAGES": str(NEVER),
        "DRIFTSTREAM_STATE__HMAC_KEY": cfg.state.hmac_key,
        "DRIFTSTREAM_STATE__KEY_PREFIX": cfg.state.key_prefix,
        "DRIFTSTREAM_METRICS__ENABLED": "false",  # the default port may belong to someone else's service
        "DRIFTSTREAM_LOGGING__LEVEL": "INFO",
    })
    if static:
        env["DRIFTSTREAM_KAFKA__GROUP_INSTANCE_ID"] = f"{run_id}-instance-0"
    for f in dataclasses.fields(cfg.topics):
        value = getattr(cfg.topics, f.name)
        env[f"DRIFTSTREAM_TOPICS__{f.name.upper()}"] = json.dumps(value) if isinstance(value, str) else str(value)
    cmd = [sys.executable, "-m", "stream.tools.cli", "run"]
    settings = dict(cfg.redis)
    rc = redis.Redis.from_url(settings.pop("url"), **settings)
    store = CheckpointStore(rc, cfg.state.key_prefix, group, cfg.state.hmac_key.encode())
    out_topic = cfg.topics.online_predictions

    # 1. a partially processed workload with a checkpoint of every partition
    first = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    checkpointed: dict[int, int] = {}
    while time.monotonic() < deadline and first.poll() is None:
        checkpointed = {}
        for p in range(cfg.topics.partitions):
            cp = store.load(p)
            if cp is not None:
                checkpointed[p] = sum(cp.offsets.values())
        if len(checkpointed) == cfg.topics.partitions:
            break
        time.sleep(0.05)
    # 2. SIGKILL: no drain, no final checkpoint
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    done_at_kill = sum(checkpointed.values())
    if len(checkpointed) < cfg.topics.partitions:
        return {"error": f"only {len(checkpointed)} partitions checkpointed before the deadline"}

    # 3. everything appended to the output topic from now on is new
    reader = Consumer({**cfg.kafka, "group.id": f"{run_id}.resume-reader", "enable.auto.commit": False})
    tps = []
    for p in range(cfg.topics.partitions):
        _, high = reader.get_watermark_offsets(TopicPartition(out_topic, p), timeout=10)
        tps.append(TopicPartition(out_topic, p, high))
    reader.assign(tps)

    # 4. restart and time it to the first new output
    assigned_at: list[float] = []
    started = time.monotonic()
    second = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def watch_log() -> None:
        for line in second.stderr:
            if b"assigned partitions" in line and not assigned_at:
                assigned_at.append(time.monotonic())

    threading.Thread(target=watch_log, daemon=True).start()
    first_output_at = None
    try:
        while time.monotonic() - started < timeout and second.poll() is None:
            msgs = reader.consume(100, 0.05)
            if any(m.error() is None for m in msgs):
                first_output_at = time.monotonic()
                break
    finally:
        reader.close()
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(60)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    if first_output_at is None:
        return {"error": "no new output after the restart", "processed_at_kill": done_at_kill}
    return {
        "seconds": first_output_at - started,
        "to_assignment": (assigned_at[0] - started) if assigned_at else None,
        "processed_at_kill": done_at_kill,
        "of": expect,
    }


def cleanup(cfg: AppConfig, run_id: str, redis_client: Any, log: Any) -> None:
    """Delete every topic whose name carries this run's id (inputs, outputs, Quix changelogs) and the
    run's Redis keys."""
    from stream.topics import admin_client

    admin = admin_client(cfg)
    names = [t for t in admin.list_topics(timeout=30).topics if run_id in t]
    if names:
        for name, fut in admin.delete_topics(names, operation_timeout=60).items():
            try:
                fut.result(60)
            except Exception as exc:
                log(f"  could not delete topic {name}: {exc}")
    keys = list(redis_client.scan_iter(match=f"{run_id}*:*"))  # --scaling settings have prefixes of their own
    if keys:
        redis_client.delete(*keys)
    log(f"cleanup: deleted {len(names)} topics and {len(keys)} Redis keys")


# -- report --------------------------------------------------------------------------------------
def _fmt_rate(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def _fmt(x: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{suffix}"


def median_run(runs: list[VariantResult]) -> VariantResult:
    """The median of a variant's runs by processing window (the lower one of an even count); a run that did
    not finish counts as the slowest."""
    ordered = sorted(runs, key=lambda r: math.inf if r.seconds is None else r.seconds)
    return ordered[(len(ordered) - 1) // 2]


def summarize(results: dict[str, VariantResult], expect: int,
              rounds: dict[str, list[VariantResult]] | None = None) -> dict[str, dict[str, float | None]]:
    """Per variant, the medians over its rounds, each metric on its own: ``rate`` (events/s, of the median
    run by window) and ``cpu_per_million`` (CPU seconds per 1M events = CPU µs per event, the median over
    the rounds that consumed everything, the lower one of an even count). ``None`` where no run finished."""
    out = {}
    for v, r in results.items():
        runs = (rounds or {}).get(v) or [r]
        cpus = sorted(x.cpu_per_million for x in runs if x.consumed == expect and x.cpu_per_million is not None)
        out[v] = {"rate": r.rate if r.consumed == expect else None,
                  "cpu_per_million": cpus[(len(cpus) - 1) // 2] if cpus else None}
    return out


def ratios(summary: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """The ratios the report prints (``None`` when a side is missing), named for the JSON output."""
    def get(v: str, k: str) -> float | None:
        return summary.get(v, {}).get(k)

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    cpu, rate = "cpu_per_million", "rate"
    return {
        # the headline: the default config against the same Quix job with the River model a user would add
        "cpu_quix_model_over_default": div(get("quix+model", cpu), get("driftstream", cpu)),
        "rate_default_over_quix_model": div(get("driftstream", rate), get("quix+model", rate)),
        # what the online model costs driftstream
        "cpu_default_over_no_model": div(get("driftstream", cpu), get("driftstream-no-model", cpu)),
        # without any model on either side (the comparison published before issue 18)
        "cpu_quix_over_no_model": div(get("quix", cpu), get("driftstream-no-model", cpu)),
        "rate_no_model_over_quix": div(get("driftstream-no-model", rate), get("quix", rate)),
        # what the River model costs the Quix job
        "cpu_quix_model_over_quix": div(get("quix+model", cpu), get("quix", cpu)),
        "rate_default_over_ceiling": div(get("driftstream", rate), get("ceiling", rate)),
        # what the model-level stage costs end to end (issue 17): the default config vs the same without it
        "stage_share_cpu": None if div(get("driftstream-no-scope", cpu), get("driftstream", cpu)) is None
        else 1 - div(get("driftstream-no-scope", cpu), get("driftstream", cpu)),
        "stage_share_rate": None if div(get("driftstream", rate), get("driftstream-no-scope", rate)) is None
        else 1 - div(get("driftstream", rate), get("driftstream-no-scope", rate)),
    }


def report(results: dict[str, VariantResult], expect: int, n_events: int, resume: dict[str, Any] | None,
           sizes: dict[str, list[int]], markdown: bool, rounds: dict[str, list[VariantResult]] | None = None) -> str:
    summary = summarize(results, expect, rounds)
    header = ["variant", "consumed", "events/s", "CPU µs per event", "peak RSS MiB", "window s", "start s",
              "first output s"]
    rows = []
    for v in ORDER:
        r = results.get(v)
        if r is None:
            continue
        consumed = f"{r.consumed}" + ("" if r.consumed == expect else f" (of {expect}!)")
        rows.append([VARIANTS[v][0], consumed, _fmt_rate(summary[v]["rate"]), _fmt(summary[v]["cpu_per_million"]),
                     _fmt(r.peak_rss_mib, ".0f"), _fmt(r.seconds, ".2f"), _fmt(r.start_seconds, ".1f"),
                     _fmt(r.first_output_seconds, ".1f")])

    overhead = None
    r2, r2b = results.get("driftstream"), results.get("driftstream-nockpt")
    if r2 and r2b and r2.seconds and r2b.seconds and summary["driftstream"]["rate"] and summary["driftstream-nockpt"]["rate"]:
        overhead = (r2.seconds - r2b.seconds) / r2b.seconds

    def verdict(x: float | None, ok: bool) -> str:
        return "" if x is None else ("met" if ok else "NOT met")

    q = ratios(summary)
    cpu5, rate5, model = (q["cpu_quix_model_over_default"], q["rate_default_over_quix_model"],
                          q["cpu_default_over_no_model"])
    ratio_rows = [
        ["5 / 2 CPU per event (Quix + River + model vs default config)", _fmt(cpu5, ".2f", "x"),
         f">= {TARGET_CPU_VS_PEER:.0f}x", verdict(cpu5, cpu5 is not None and cpu5 >= TARGET_CPU_VS_PEER)],
        ["2 / 5 events/s (default config vs Quix + River + model)", _fmt(rate5, ".2f", "x"),
         f">= {TARGET_RATE_VS_PEER:.0f}x", verdict(rate5, rate5 is not None and rate5 >= TARGET_RATE_VS_PEER)],
        ["2 / 3 CPU per event (default config vs model off)", _fmt(model, ".2f", "x"),
         f"<= {TARGET_MODEL_OVERHEAD:.1f}x", verdict(model, model is not None and model <= TARGET_MODEL_OVERHEAD)],
        ["4 / 3 CPU per event (Quix + River vs model off)", _fmt(q["cpu_quix_over_no_model"], ".2f", "x"), "", ""],
        ["3 / 4 events/s (model off vs Quix + River)", _fmt(q["rate_no_model_over_quix"], ".2f", "x"), "", ""],
        ["5 / 4 CPU per event (what River's model costs the Quix job)", _fmt(q["cpu_quix_model_over_quix"], ".2f", "x"),
         "", ""],
        ["2 / 1 events/s (default config vs ceiling)",
         _fmt(None if q["rate_default_over_ceiling"] is None else 100 * q["rate_default_over_ceiling"], ".0f", "%"), "", ""],
    ]
    if overhead is not None:
        ratio_rows.append(["checkpoint overhead (t2 - t2b) / t2b", _fmt(100 * overhead, ".1f", "%"),
                           f"<= {100 * TARGET_CHECKPOINT_OVERHEAD:.0f}%",
                           verdict(overhead, overhead <= TARGET_CHECKPOINT_OVERHEAD)])
    share, share_rate = q["stage_share_cpu"], q["stage_share_rate"]
    ratio_rows += [
        ["1 - 2c / 2 CPU per event (the model stage's share, end to end)",
         _fmt(None if share is None else 100 * share, ".1f", "%"), f"<= {100 * TARGET_STAGE_SHARE:.0f}%",
         verdict(share, share is not None and share <= TARGET_STAGE_SHARE)],
        ["1 - 2 / 2c events/s (throughput the model stage costs)",
         _fmt(None if share_rate is None else 100 * share_rate, ".1f", "%"), f"<= {100 * TARGET_STAGE_SHARE:.0f}%",
         verdict(share_rate, share_rate is not None and share_rate <= TARGET_STAGE_SHARE)],
    ]
    ratio_rows = [r for r in ratio_rows if r[1] != "n/a"]
    extra_rows = []
    for v in ORDER:
        runs = (rounds or {}).get(v, [])
        if len(runs) > 1:  # the table shows the medians; here are all of them
            extra_rows.append([f"events/s of each round, {VARIANTS[v][0]}",
                               ", ".join(_fmt_rate(r.rate) for r in runs) + " (median in the tables)"])
            extra_rows.append([f"CPU µs per event of each round, {VARIANTS[v][0]}",
                               ", ".join(_fmt(r.cpu_per_million) for r in runs) + " (median in the tables)"])
    for label, res in (resume or {}).items():
        if "error" in res:
            extra_rows.append([f"resume after SIGKILL{label}", f"failed: {res['error']}"])
        else:
            extra_rows.append([f"resume after SIGKILL{label}: restart -> first new output",
                               f"{res['seconds']:.2f} s (restart -> partitions assigned: "
                               f"{_fmt(res['to_assignment'], '.2f', ' s')}; killed after "
                               f"{res['processed_at_kill']} of {res['of']} messages)"])
    for v in DRIFTSTREAM_VARIANTS:
        r = results.get(v)
        tail = r.extra.get("stage_tail_seconds") if r else None
        if tail is not None:
            extra_rows.append([f"model stage after the last input, {VARIANTS[v][0]}",
                               f"{tail:.2f} s to read the last summaries (inside the window)"])
        main = r.extra.get("main_thread_cpu_seconds") if r else None
        if main is not None and r.consumed and r.seconds:
            extra_rows.append([f"service thread CPU, {VARIANTS[v][0]}",
                               f"{main / r.consumed * 1e6:.1f} µs per event ({100 * main / r.seconds:.0f}% of the "
                               f"window; the rest of the CPU is librdkafka's threads)"])
    for v, s in sizes.items():
        if s:
            extra_rows.append([f"state bytes per partition, {VARIANTS[v][0]}",
                               f"mean {sum(s) / len(s):,.0f}, min {min(s):,}, max {max(s):,} ({len(s)} partitions)"])

    title = (f"{n_events:,} inference events + labels = {expect:,} input messages, {PARTITIONS} partitions, "
             f"{EXTRA_FEATURES + BASE_FEATURES} features per event")
    return "\n".join([title, "", _table(header, rows, markdown), "", _table(["ratio (of the medians)", "measured",
                                                                           "target", ""], ratio_rows, markdown),
                      "", _table(["also measured", "value"], extra_rows, markdown) if extra_rows else ""]).rstrip()


def scaling_report(cells: list[dict[str, Any]], n_events: int, markdown: bool) -> str:
    """``--scaling``: one row per (features, models) setting, CPU per event with the model on and off.
    A cell is ``{"features", "models", "expect", "summary": summarize(...)}``."""
    header = ["features", "models", "CPU µs per event, default config", "CPU µs per event, model off",
              "model on / off", "events/s, default config", "events/s, model off"]
    rows = []
    for c in cells:
        on, off = c["summary"].get("driftstream", {}), c["summary"].get("driftstream-no-model", {})
        q = ratios(c["summary"])["cpu_default_over_no_model"]
        rows.append([str(c["features"]), str(c["models"]), _fmt(on.get("cpu_per_million")),
                     _fmt(off.get("cpu_per_million")), _fmt(q, ".2f", "x"), _fmt_rate(on.get("rate")),
                     _fmt_rate(off.get("rate"))])
    title = (f"scaling: {n_events:,} inference events + labels per setting, {PARTITIONS} partitions, "
             f"events round-robin over the models")
    return "\n".join([title, "", _table(header, rows, markdown)])


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def print_profile(path: str, top: int = 30) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=None, help=f"inference events (default {DEFAULT_EVENTS:,})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events: a smoke run")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated subset of {', '.join(ORDER)} (default {', '.join(DEFAULT_VARIANTS)})")
    ap.add_argument("--scaling", action="store_true",
                    help=f"instead: CPU per event of the default config and of model off, vs features per event "
                         f"({', '.join(map(str, SCALING_FEATURES))}; one model) and models "
                         f"({', '.join(map(str, SCALING_MODELS))}; {EXTRA_FEATURES + BASE_FEATURES} features), "
                         f"each on a workload of its own ({QUICK_EVENTS:,} events unless --events/--quick)")
    ap.add_argument("--no-resume", action="store_true", help="skip the SIGKILL/restart measurement")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the variants this many times, in turn, and report each one's median run "
                         "(by window) with the spread of all rounds: the machine is shared and noisy")
    ap.add_argument("--profile", action="store_true",
                    help="also run variant 2 under cProfile (an extra run, not timed) and print the hotspots")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--json", default=None,
                    help="also write the results as JSON to this file (every variant's rate and cpu_per_million)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="max seconds per variant")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def run_rounds(spec: dict[str, Any], variants: list[str], n_rounds: int, log: Any,
               after_first: Any = None) -> dict[str, list[VariantResult]]:
    """Every variant of ``variants`` (in ``ORDER``), ``n_rounds`` times in turn; later rounds read with groups
    of their own (and their own checkpoints). ``after_first(variant)`` runs after each variant's first round."""
    rounds: dict[str, list[VariantResult]] = {}
    for k in range(1, n_rounds + 1):
        tag = "" if k == 1 else f"-round{k}"
        for v in [v for v in ORDER if v in variants]:
            log(f"running {v}{f' (round {k} of {n_rounds})' if n_rounds > 1 else ''}: {VARIANTS[v][1]} ...")
            r = run_variant(v, dict(spec, group_tag=tag), log)
            rounds.setdefault(v, []).append(r)
            log(f"  {v}: {r.consumed:,} messages in {_fmt(r.seconds, '.2f')} s, {_fmt_rate(r.rate)}/s, "
                f"{_fmt(r.cpu_per_million)} CPU µs per event, peak RSS {r.peak_rss_mib:.0f} MiB"
                + (f", {r.extra['checkpoints']} partition checkpoints" if r.extra.get("checkpoints") else ""))
            if k == 1 and after_first is not None:
                after_first(v)
    return rounds


def run_scaling(run_id: str, n_events: int, args: argparse.Namespace, redis_client: Any, log: Any) -> int:
    """``--scaling``: the default config and model off on one workload per (features, models) setting."""
    from stream.topics import admin_client, ensure_topics

    settings = [(f, 1) for f in SCALING_FEATURES] + [(EXTRA_FEATURES + BASE_FEATURES, m) for m in SCALING_MODELS]
    cells: list[dict[str, Any]] = []
    ok = True
    for features, models in settings:
        sub = f"{run_id}-f{features}m{models}"
        cfg = bench_config(load_config(None), sub)
        ensure_topics(admin_client(cfg), cfg)
        expect = produce_workload(cfg, n_events, sub, features=features, models=models)
        log(f"{sub}: produced {expect:,} messages ({features} features, {models} models)")
        rounds = run_rounds({"run_id": sub, "expect": expect, "timeout": args.timeout},
                            ["driftstream", "driftstream-no-model"], args.rounds, log)
        ok = ok and all(r.consumed == expect for rs in rounds.values() for r in rs)
        results = {v: median_run(rs) for v, rs in rounds.items()}
        cells.append({"features": features, "models": models, "expect": expect,
                      "summary": summarize(results, expect, rounds),
                      "rounds": {v: [{**dataclasses.asdict(r), "rate": r.rate, "cpu_per_million": r.cpu_per_million}
                                     for r in rs] for v, rs in rounds.items()}})
        cleanup(cfg, sub, redis_client, log)  # each setting's topics go before the next one's are produced
    print(scaling_report(cells, n_events, args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps({"run_id": run_id, "events": n_events, "scaling": cells},
                                              indent=2, default=str))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, json.loads(args.spec))
    import redis

    from stream.topics import admin_client, ensure_topics

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(ORDER)
    if unknown:
        print(f"unknown variants: {', '.join(sorted(unknown))}; known: {', '.join(ORDER)}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    run_id = f"pbench-{uuid.uuid4().hex[:10]}"
    cfg = bench_config(load_config(None), run_id)
    settings = dict(cfg.redis)
    redis_client = redis.Redis.from_url(settings.pop("url"), **settings)
    if args.scaling:
        n_events = args.events or (QUICK_EVENTS // 2 if args.quick else QUICK_EVENTS)
        try:
            return run_scaling(run_id, n_events, args, redis_client, log)
        finally:
            cleanup(cfg, run_id, redis_client, log)
    n_events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    results: dict[str, VariantResult] = {}  # each variant's median run
    rounds: dict[str, list[VariantResult]] = {}
    sizes: dict[str, list[int]] = {}
    resume = None
    try:
        ensure_topics(admin_client(cfg), cfg)
        t = time.monotonic()
        expect = produce_workload(cfg, n_events, run_id)
        log(f"{run_id}: produced {expect:,} messages ({n_events:,} inference events + labels) "
            f"in {time.monotonic() - t:.1f} s")
        spec = {"run_id": run_id, "expect": expect, "timeout": args.timeout}

        def state_of(v: str) -> None:
            if v in ("driftstream", "driftstream-no-model"):
                sizes[v] = state_sizes(cfg, redis_client, group_of(run_id, v))

        rounds = run_rounds(spec, variants, args.rounds, log, after_first=state_of)
        results.update({v: median_run(rs) for v, rs in rounds.items()})
        if args.profile:
            prof_path = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"{run_id}.prof")
            log("running driftstream under cProfile (an extra run with its own group, not in the table) ...")
            prof = run_variant("driftstream", dict(spec, profile=prof_path, group_tag="-profile"), log)
            log(f"  profiled run: {prof.consumed:,} messages in {_fmt(prof.seconds, '.2f')} s under cProfile")
        if not args.no_resume:
            log("measuring resume after SIGKILL (dynamic and static group membership) ...")
            resume = {"": measure_resume(cfg, run_id, expect),
                      " (static membership)": measure_resume(cfg, run_id, expect, static=True)}
        text = report(results, expect, n_events, resume, sizes, args.markdown, rounds)
        print(text)
        if args.profile:
            print()
            print_profile(prof_path)
            Path(prof_path).unlink(missing_ok=True)
        if args.json:
            summary = summarize(results, expect, rounds)
            Path(args.json).write_text(json.dumps({
                "run_id": run_id, "events": n_events, "expect": expect,
                # rate and cpu_per_million: the medians over the rounds (summarize); the rest: the median run's
                "variants": {v: {**dataclasses.asdict(r), **summary[v]} for v, r in results.items()},
                "ratios": ratios(summary),
                "rounds": {v: [{**dataclasses.asdict(r), "rate": r.rate, "cpu_per_million": r.cpu_per_million}
                               for r in rs] for v, rs in rounds.items()},
                "resume": resume, "state_sizes": sizes,
            }, indent=2, default=str))
    finally:
        cleanup(cfg, run_id, redis_client, log)
    return 0 if all(r.consumed == expect for rs in rounds.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
