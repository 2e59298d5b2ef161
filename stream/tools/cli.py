"""``driftstream`` command line: run, demo, check-config, state show / reset."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from stream.config import AppConfig, ConfigError, load_config, redacted


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import orjson

        out: dict[str, Any] = {"ts": record.created, "level": record.levelname, "logger": record.name,
                               "msg": record.getMessage()}
        for k in ("partition", "offset", "topic"):
            if hasattr(record, k):
                out[k] = getattr(record, k)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(cfg: AppConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if cfg.logging.json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.logging.level.upper())


def _load(args: argparse.Namespace) -> AppConfig:
    return load_config(args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(f"config OK: {args.config or '(defaults + environment)'}")
    print(f"  kafka: {redacted(cfg.kafka)}")
    print(f"  redis: {redacted(cfg.redis)}")
    print(f"  topics: inference={cfg.topics.inference} labels={cfg.topics.labels} drift={cfg.topics.drift_events}")
    print(f"  models declared: {', '.join(cfg.models) or '(none; undeclared models use default_model)'}")
    if not cfg.state.hmac_key and not cfg.demo:
        print("  WARNING: state.hmac_key is empty; `run` will refuse to start (set DRIFTSTREAM_STATE__HMAC_KEY)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from stream.app import build_service
    from stream.errors import FatalError
    from stream.metrics import Metrics, MetricsPortInUse, serve_metrics
    from stream.topics import TopologyError, admin_client, check_topics

    cfg = _load(args)
    setup_logging(cfg)
    log = logging.getLogger("driftstream")
    try:
        n = check_topics(admin_client(cfg), cfg, timeout=args.connect_timeout)  # lists missing topics
    except TopologyError as exc:
        log.error("%s", exc)
        return 2
    except Exception as exc:  # KafkaException on an unreachable broker
        log.error("cannot reach Kafka at %s: %s", cfg.kafka.get("bootstrap.servers"), exc)
        return 2
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    if cfg.metrics.enabled:
        try:
            port, _ = serve_metrics(registry, cfg.metrics.host, cfg.metrics.port, cfg.metrics.port_search)
        except MetricsPortInUse as exc:
            log.error("%s", exc)
            return 2
        log.info("metrics on http://%s:%d/metrics", cfg.metrics.host, port)
    try:
        service = build_service(cfg, metrics)
    except FatalError as exc:
        log.error("%s", exc)
        return 2
    service.install_signal_handlers()
    log.info("driftstream running: %d co-partitioned partitions, group %s", n, cfg.processing.group_id)
    return service.run(max_seconds=args.max_seconds)


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.tools.demo import run_demo

    return run_demo(load_config(args.config), args)


def _store(cfg: AppConfig):
    from stream.clients import make_redis
    from stream.checkpoint import CheckpointStore

    key = cfg.state.hmac_key.encode() or (b"driftstream-demo-key" if cfg.demo else b"")
    if not key:
        raise ConfigError("state.hmac_key is required to read checkpoints (set DRIFTSTREAM_STATE__HMAC_KEY)")
    return CheckpointStore(make_redis(cfg), cfg.state.key_prefix, cfg.processing.group_id, key)


def cmd_state_show(args: argparse.Namespace) -> int:
    from stream.errors import StateRefused
    from stream.partition import PartitionProcessor

    cfg = _load(args)
    store = _store(cfg)
    parts = [args.partition] if args.partition is not None else store.partitions()
    if not parts:
        print(f"no checkpoints for group {cfg.processing.group_id!r}")
        return 0
    out = []
    for p in parts:
        try:
            cp = store.load(p)
        except StateRefused as exc:
            out.append({"partition": p, "error": str(exc)})
            continue
        if cp is None:
            out.append({"partition": p, "checkpoint": None})
            continue

        class _Quiet:
            def __getattr__(self, _: str) -> Any:
                return lambda *a, **k: None

        proc = PartitionProcessor(p, cfg, cp.epoch, _Quiet(), _Quiet())
        proc.load_payload(cp.payload or b"{}")
        summary = proc.summary()
        summary.update({"offsets": cp.offsets, "blob_bytes": cp.size, "written_ms": cp.written_ms})
        out.append(summary)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_state_reset(args: argparse.Namespace) -> int:
    cfg = _load(args)
    store = _store(cfg)
    parts = [args.partition] if args.partition is not None else store.partitions()
    if args.partition is None and not args.all:
        print("refusing to reset every partition without --all", file=sys.stderr)
        return 2
    for p in parts:
        store.reset(p)
        print(f"reset partition {p} of group {cfg.processing.group_id}")
    return 0


def cmd_retrain_worker(args: argparse.Namespace) -> int:
    from stream.tools.retrain_worker import run_worker

    cfg = _load(args)
    setup_logging(cfg)
    try:
        store = _store(cfg)
    except ConfigError:
        store = None
        logging.getLogger("driftstream").warning("no HMAC key: evaluating without the current online model")
    return run_worker(cfg, store, max_events=args.max_events, max_seconds=args.max_seconds)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from stream.topics import TopologyError, admin_client, all_topics, check_copartitioned, ensure_topics

    cfg = _load(args)
    bootstrap = cfg.kafka.get("bootstrap.servers")
    try:
        admin = admin_client(cfg)
        created = ensure_topics(admin, cfg, timeout=args.connect_timeout)
        n = check_copartitioned(admin, cfg, timeout=args.connect_timeout)
    except TopologyError as exc:
        print(f"driftstream: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # KafkaException: unreachable broker, not authorised, bad replication factor
        print(f"driftstream: cannot create topics on {bootstrap}: {exc}", file=sys.stderr)
        return 2
    for name in all_topics(cfg):
        print(f"{'created' if name in created else 'exists '} {name}")
    print(f"inputs co-partitioned: {n} partitions each")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    from stream.tools.config_reference import markdown

    print(markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="driftstream",
        description="Streaming drift detection over Kafka: joins late labels to predictions, runs online "
                    "detectors and an online challenger model, checkpoints to Redis, publishes drift events.",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, fn: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", "-c", default=None, help="TOML config file (default: built-in defaults + env)")
        p.set_defaults(fn=fn)
        return p

    run = add("run", "run the service until SIGTERM/SIGINT", cmd_run)
    run.add_argument("--max-seconds", type=float, default=None, help="stop (with a checkpoint) after this long")
    run.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to wait for the broker at start")

    demo = add("demo", "produce a drifting stream into the local stack, run the service, show alerts live", cmd_demo)
    demo.add_argument("--events", type=int, default=60_000, help="inference events to produce")
    demo.add_argument("--rate", type=float, default=8000.0, help="events per second to produce")
    demo.add_argument("--report", default="reports/demo", help="report path prefix (.png and .html are written)")
    demo.add_argument("--partitions", type=int, default=None,
                      help="partitions of the demo's topics (default: topics.partitions, 8)")
    demo.add_argument("--partition-events", action="store_true",
                      help="also print the partitions' own (scope partition) events; by default only model scope")
    demo.add_argument("--summary-json", default=None, metavar="PATH",
                      help="write the model-scope figures (detection delays, incidents, retrain events, false "
                           "alarms) as JSON to PATH")
    demo.add_argument("--seed", type=int, default=42,
                      help="seed of the demo's workload (same changes, other draws: the figures' spread)")

    worker = add("retrain-worker", "consume retrain-events, retrain on the recommended window, publish the "
                                   "evaluation to model-updates (the reference downstream consumer)", cmd_retrain_worker)
    worker.add_argument("--max-events", type=int, default=None, help="stop after handling this many events")
    worker.add_argument("--max-seconds", type=float, default=None, help="stop after this long")

    add("check-config", "load and validate the config, print it with secrets redacted", cmd_check_config)
    topics = sub.add_parser("topics", help="create the topics the service uses")
    tsub = topics.add_subparsers(dest="topics_command", required=True)
    tcreate = tsub.add_parser("create", help="create every missing topic ([topics]: names, partitions, replication, "
                                             "retention_ms, settings); a missing input topic gets its partner's "
                                             "partition count; existing topics are left alone")
    tcreate.add_argument("--config", "-c", default=None)
    tcreate.add_argument("--connect-timeout", type=float, default=15.0, help="seconds to wait for the broker")
    tcreate.set_defaults(fn=cmd_topics_create)
    ref = sub.add_parser("config-reference", help="print every config key with type, default and meaning (Markdown)")
    ref.set_defaults(fn=cmd_config_reference)

    state = sub.add_parser("state", help="inspect or reset checkpoints in Redis")
    ssub = state.add_subparsers(dest="state_command", required=True)
    show = ssub.add_parser("show", help="decode checkpoints: offsets, epoch, join buffer, detectors, model version")
    show.add_argument("--config", "-c", default=None)
    show.add_argument("--partition", "-p", type=int, default=None)
    show.set_defaults(fn=cmd_state_show)
    reset = ssub.add_parser("reset", help="delete checkpoints (the partition restarts from processing.start_from)")
    reset.add_argument("--config", "-c", default=None)
    reset.add_argument("--partition", "-p", type=int, default=None)
    reset.add_argument("--all", action="store_true", help="reset every partition of the group")
    reset.set_defaults(fn=cmd_state_reset)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(f"driftstream: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
