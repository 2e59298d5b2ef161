"""``driftstream demo``: a drifting stream through the real service on the local stack.

1. make sure Kafka and Redis answer (start the local stack with ``deploy/local/stack.sh`` if they do not);
2. create fresh demo topics and produce a workload whose concept changes at known points, at a steady rate;
3. run the service (same code as ``driftstream run``) while a console consumer prints the model-scope
   incidents and decisions live (the partitions' own events too with ``--partition-events``);
4. wait for the model-level stage to read every summary, print true change points vs model-scope detections
   (``--summary-json``: the same figures as JSON), and write a report (PNG + self-contained HTML).

On a terminal the console is a live table per partition; otherwise (CI logs, ``| tee``) it prints plain lines,
never wrapped, and a status line every 2 s. Both say how long the first processed event took from the start.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.live import Live
from rich.table import Table

import detectors
from stream.app import build_service
from stream.clients import consumer_config, producer_config
from stream.config import AppConfig
from stream.metrics import Metrics
from stream.topics import admin_client, ensure_topics
from stream.tools.workload import Workload, events, produce

REPO = Path(__file__).resolve().parents[2]


def _reachable(cfg: AppConfig) -> bool:
    import redis

    try:
        admin_client(cfg).list_topics(timeout=3)
        settings = dict(cfg.redis)
        return bool(redis.Redis.from_url(settings.pop("url"), socket_timeout=2, **settings).ping())
    except Exception:
        return False


def _count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    total = 0.0
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def make_console(file: Any = None) -> Console:
    """Rich's console on a terminal; elsewhere one that prints each line whole (soft wrap: no wrapping at 80
    columns, no cropping) without colours or highlighting, for logs that are read or grepped later."""
    console = Console(file=file)
    if console.is_terminal:
        return console
    return Console(file=file, soft_wrap=True, highlight=False, no_color=True)


def run_demo(cfg: AppConfig, args: argparse.Namespace) -> int:
    started = time.monotonic()
    console = make_console()
    started_stack = False
    if not _reachable(cfg):
        script = REPO / "deploy" / "local" / "stack.sh"
        console.print("[yellow]local stack not reachable; starting it with deploy/local/stack.sh[/]")
        subprocess.run(["bash", str(script), "install"], check=True)
        subprocess.run(["bash", str(script), "start"], check=True)
        started_stack = True
    try:
        return _demo(cfg, args, console, started)
    finally:
        if started_stack:
            subprocess.run(["bash", str(REPO / "deploy" / "local" / "stack.sh"), "stop"], check=False)


def _demo(cfg: AppConfig, args: argparse.Namespace, console: Console, started: float) -> int:
    run_id = time.strftime("%Y%m%d%H%M%S")
    partitions = getattr(args, "partitions", None) or cfg.topics.partitions
    if partitions < 1:
        console.print(f"[red]--partitions must be at least 1, got {partitions}[/]")
        return 2
    topics = dataclasses.replace(cfg.topics, partitions=partitions, **{
        f.name: f"demo-{run_id}.{getattr(cfg.topics, f.name)}"
        for f in dataclasses.fields(cfg.topics) if isinstance(getattr(cfg.topics, f.name), str)
    })
    processing = dataclasses.replace(cfg.processing, group_id=f"driftstream-demo-{run_id}",
                                     checkpoint_every_seconds=2.0)
    dm = cfg.default_model
    dm = dataclasses.replace(dm, data_drift=dataclasses.replace(dm.data_drift, enabled=True, reference_size=500,
                                                                window_size=300, step=100))
    cfg = dataclasses.replace(cfg, topics=topics, processing=processing, demo=True, default_model=dm,
                              metrics=dataclasses.replace(cfg.metrics, enabled=False))
    n = args.events
    # concept changes at 1/3 (the served model becomes wrong) and 2/3 (the old concept recurs); at 5/6 the
    # `amount` feature shifts while the concept stays: feature drift without concept drift
    w = Workload(n_events=n, change_points=(n // 3, 2 * n // 3), seed=getattr(args, "seed", 42), spacing=0.01,
                 label_delay=3.0, concepts=2, feature_shift_at=(5 * n // 6,))
    ensure_topics(admin_client(cfg), cfg)
    console.rule("[bold]driftstream demo")
    console.print(f"topics demo-{run_id}.* with {partitions} partitions  ·  {n} inference events + labels  ·  "
                  f"true concept changes at events {list(w.change_points)}, feature shift of `amount` at "
                  f"{w.feature_shift_at[0]}  ·  produce rate {args.rate:.0f}/s")
    # numba compiles the detectors' kernels on their first use in a fresh install (~10 s; cached afterwards,
    # and `deploy/local/dev.sh` does it during set-up): say so rather than sit silent
    t_kernels = time.monotonic()
    console.print("[dim]loading the detectors' compiled kernels ...[/]")
    detectors.warm_up()
    t_kernels = time.monotonic() - t_kernels
    if t_kernels > 3.0:
        console.print(f"[dim]kernels compiled in {t_kernels:.1f} s (first run of this install; cached for the "
                      "next ones)[/]")

    producer = Producer({**producer_config(cfg)})
    produced = {"n": 0, "done": False}

    def _produce() -> None:
        t0 = time.monotonic()
        batch: list = []
        for kind, ts, ev in events(w):
            topic = topics.inference if kind == "inference" else topics.labels
            producer.produce(topic, key=ev["id"], value=orjson.dumps(ev), timestamp=int(ts * 1000))
            if kind == "inference":
                produced["n"] += 1
                if produced["n"] % 500 == 0:
                    producer.poll(0)
                    lag = produced["n"] / args.rate - (time.monotonic() - t0)
                    if lag > 0:
                        time.sleep(lag)
        producer.flush(60)
        produced["done"] = True

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    service = build_service(cfg, metrics)
    prod_thread = threading.Thread(target=_produce, name="demo-producer", daemon=True)
    svc_thread = threading.Thread(target=service.run, name="driftstream", daemon=True)
    prod_thread.start()
    svc_thread.start()

    watcher = Consumer({**consumer_config(cfg), "group.id": f"demo-console-{run_id}",
                        "auto.offset.reset": "earliest"})
    watcher.subscribe([topics.drift_events, topics.retrain_events, topics.model_updates])
    detections: list[dict[str, Any]] = []
    partition_events = bool(getattr(args, "partition_events", False))
    total_msgs = sum(1 for _ in events(w))
    t0 = time.monotonic()
    first_output: float | None = None  # seconds from the demo's start to the first processed event
    last_status = 0.0
    live = Live(console=console, refresh_per_second=4, transient=False) if console.is_terminal else None
    if live is not None:
        live.start()
    try:
        while True:
            for m in watcher.consume(100, 0.2):
                if m.error():
                    continue
                ev = orjson.loads(m.value())
                detections.append(ev)
                if _shown(ev, partition_events):
                    console.print(_alarm_line(ev, w))
            now = time.monotonic()
            done = _count(registry, "driftstream_messages_total")
            if done and first_output is None:
                first_output = now - started
                console.print(f"first event processed {first_output:.1f} s after the demo started")
            if live is not None:
                live.update(_status_table(service, registry, produced["n"], done, total_msgs, now - t0, detections))
            elif now - last_status >= 2.0:
                last_status = now
                console.print(_status_line(registry, produced["n"], done, total_msgs, now - t0, len(service.processors)))
            if produced["done"] and done >= total_msgs:
                break
            if not svc_thread.is_alive():
                console.print("[red]the service stopped unexpectedly (see the error above)[/]")
                return 1
            if now - t0 > max(120.0, 5 * n / args.rate):
                console.print("[red]demo timed out waiting for the service[/]")
                break
    finally:
        if live is not None:
            live.stop()
    # the model stage decides on the partitions' summaries after them: let it read them all, then stop the
    # service (its outputs flushed), then read what it published after the console last looked
    if not _wait_for_scope(service, cfg, watcher):
        console.print("[yellow]the model-level stage had not read every summary after 60 s; its last decisions "
                      "may be missing[/]")
    service.stop()
    svc_thread.join(30)
    for ev in _drain(watcher):
        detections.append(ev)
        if _shown(ev, partition_events):
            console.print(_alarm_line(ev, w))
    watcher.close()

    console.rule("summary")
    console.print(f"partitions: {partitions}  ·  first event processed "
                  f"{'never' if first_output is None else f'{first_output:.1f} s'} after the demo started")
    figures = summarize(w, detections, partitions)
    for line in _summary_lines(w, detections, figures, partition_events):
        console.print(line)
    summary_json = getattr(args, "summary_json", None)
    if summary_json:
        path = Path(summary_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")
        console.print(f"summary written: {path}")
    shown = [d for d in detections if _shown(d, partition_events)]
    png, html = write_report(w, shown, Path(args.report), partitions=partitions, first_output=first_output,
                             partition_events=partition_events)
    console.print(f"report written: {png} and {html}")
    return 0


def _summary_lines(w: Workload, detections: list[dict[str, Any]], figures: dict[str, Any],
                   partition_events: bool) -> list[str]:
    """The console summary: model-scope figures (what ``--summary-json`` writes), then counts of the
    partitions' own events (evidence for the incidents)."""
    lines = ["model scope (one decision per model over all partitions; a concept incident is placed at the "
             "event whose outcome tipped the model's detector):"]
    model = [d for d in detections if _scope(d) == "model"]
    for c in figures["changes"]:
        lines.append(f"true change at event {c['at']}: first detection {_detection(c)}")
    fs = figures["feature_shift"]
    if fs["at"] is not None:
        lines.append(f"feature shift at event {fs['at']}: first feature-drift incident {_detection(fs)}")
    data = [d for d in model if d.get("type") == "drift" and d.get("kind") != "concept"]
    signals = sorted(_counts(d["kind"] + ":" + d["signal"] for d in data).items())
    lines.append(f"incidents: concept {figures['incidents']['concept']}, feature {figures['incidents']['feature']}; "
                 f"all data-drift incidents {len(data)} ({', '.join(f'{k} {v}' for k, v in signals) or 'none'})")
    lines.append(f"false alarms (model-scope incidents before the first change): {figures['false_alarms']}")
    others = _counts(d["type"] for d in model if d.get("type") != "drift")
    lines.append(f"retrain events: {figures['retrain_events']}; model-scope decisions: "
                 + (", ".join(f"{k} {v}" for k, v in sorted(others.items())) or "none"))
    part = [d for d in detections if _scope(d) == "partition"]
    kinds = _counts((d["type"] + ("/" + d["kind"] if d.get("type") == "drift" else "")) for d in part)
    lines.append("partition-scope events (the partitions' own signals, "
                 + ("shown above" if partition_events else "shown with --partition-events") + "): "
                 + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"))
    if partition_events:
        idx = sorted(_index(w, d) for d in part if d.get("type") == "drift" and d.get("kind") == "concept"
                     and not d.get("warning"))
        for cp in w.change_points:
            after = [i for i in idx if i >= cp]
            lines.append(f"partition scope: true change at event {cp}: first alarm of any partition "
                         f"{'none' if not after else f'at {after[0]} (delay {after[0] - cp} events)'}")
    return lines


def _detection(c: dict[str, Any]) -> str:
    j = c["first_detection"]
    return "none" if j is None else f"at {j} (delay {c['delay']} events)"


def _counts(keys: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return out


def _wait_for_scope(service: Any, cfg: AppConfig, probe: Any, timeout: float = 60.0) -> bool:
    """Wait until the model-level stage has read every summary the partitions wrote (its next offset on
    each partition of the summaries topic reached that partition's end, twice 0.5 s apart: the partitions
    may still be flushing their last summaries). True at once without the stage."""
    from confluent_kafka import TopicPartition

    scope = getattr(service, "scope", None)
    if scope is None:
        return True
    topic = cfg.topics.summaries
    deadline = time.monotonic() + timeout
    caught_up = 0
    while time.monotonic() < deadline:
        meta = probe.list_topics(topic, timeout=5.0).topics.get(topic)
        parts = sorted(meta.partitions) if meta is not None else []
        ends = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0, cached=False)[1] for p in parts}
        owned = dict(scope.owned)
        done = all(end == 0 or (p in owned and (owned[p].next_offset or 0) >= end) for p, end in ends.items())
        caught_up = caught_up + 1 if done and parts else 0
        if caught_up >= 2:
            return True
        time.sleep(0.5)
    return False


def _drain(watcher: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The events left in the watched topics: read until the watcher's position reaches every assigned
    partition's end (a slow group join or a slow machine must not hide an alarm), or ``timeout``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs = watcher.consume(1000, 0.5)
        got += [orjson.loads(m.value()) for m in msgs if not m.error()]
        if msgs:
            continue
        assigned = watcher.assignment()
        if assigned and all(_at_end(watcher, p) for p in watcher.position(assigned)):
            break
    return got


def _at_end(consumer: Any, tp: Any) -> bool:
    low, high = consumer.get_watermark_offsets(tp, timeout=5.0)
    return (tp.offset if tp.offset >= 0 else low) >= high  # no position yet: it starts at the earliest


def _scope(ev: dict[str, Any]) -> str:
    return ev.get("scope", "partition")


def _shown(ev: dict[str, Any], partition_events: bool) -> bool:
    """Model-scope events always; the partitions' own events (evidence, online-model swaps) only on request."""
    return partition_events or _scope(ev) == "model"


def _event_no(w: Workload | None, ts: float) -> str:
    """An event time as the workload's inference-event number (its event time is t0 + i * spacing)."""
    return f"{ts:.2f}" if w is None else f"event {int(round((ts - w.t0) / w.spacing))}"


def _offsets(parts: dict[str, Any], key: str = "inference_offset") -> str:
    return " ".join(f"p{p}:{v.get(key)}" for p, v in sorted(parts.items(), key=lambda kv: int(kv[0])))


def _alarm_line(ev: dict[str, Any], w: Workload | None = None) -> str:
    """One console line per output event; model-scope events say ``scope=model`` where partition-scope
    ones name their partition (``p3``)."""
    model_scope = _scope(ev) == "model"
    where = "scope=model" if model_scope else f"p{ev.get('partition')}"
    if ev.get("type") == "retrain":
        win = ev["window"]
        if model_scope:
            parts = win["partitions"]
            span = " ".join(f"p{p}:{v['from'].get('inference_offset')}-{v['to'].get('inference_offset')}"
                            for p, v in sorted(parts.items(), key=lambda kv: int(kv[0])))
            return (f"[bold yellow]RETRAIN[/] model={ev['model']} {where} reasons={','.join(ev['reasons'])} "
                    f"window from {win['source']} ({_event_no(w, win['from']['ts'])}) "
                    f"to {_event_no(w, win['to']['ts'])} "
                    f"over {len(parts)} partitions (inference offsets {span})")
        return (f"[bold yellow]RETRAIN[/] model={ev['model']} {where} reasons={','.join(ev['reasons'])} "
                f"window from {win['source']} (inference offset {win['from'].get('inference_offset')})")
    if ev.get("type") == "model-swap":
        return f"[bold cyan]SWAP[/] online model {where} -> version {ev['model_version']}"
    if ev.get("type") == "challenger-better":
        e = ev["evidence"]
        return (f"[bold green]CHALLENGER[/] model={ev.get('model')} {where} online model beats served: "
                f"{e['challenger_error']:.3f} vs {e['champion_error']:.3f} (McNemar p={e['p_value']:.1e})")
    if ev.get("type") != "drift":
        return f"{ev.get('type')}: {ev.get('id')}"
    if "event_id" in ev:
        at = f"event {ev['event_id']}"
    elif model_scope:
        at = f"offset p{ev.get('partition')}:{ev.get('offset')}"
    else:
        at = f"offset {ev.get('offset')}"
    stat = ev.get("statistic")
    if isinstance(stat, dict) and stat.get("served_error_rolling") is not None:
        detail = f"served error ≈ {stat['served_error_rolling']:.2f}"
        if stat.get("online_error_rolling") is not None:
            detail += f", online model ≈ {stat['online_error_rolling']:.2f}"
    else:
        detail = f"statistic {stat:.3f}" if isinstance(stat, float) else f"statistic {stat}"
    line = (f"[bold red]DRIFT[/] {ev.get('kind', 'concept'):<10} model={ev['model']} {where} "
            f"{ev.get('signal', '')}/{ev['detector']:<7} at {at}: {detail}")
    if model_scope:
        cp = ev.get("change_point") or {}
        key = "labels_offset" if ev.get("kind") == "label" else "inference_offset"
        contrib = ev.get("contributing_partitions") or {}
        counts = " ".join(f"p{p}:{v['outcomes'] if isinstance(v, dict) else v}"
                          for p, v in sorted(contrib.items(), key=lambda kv: int(kv[0])))
        if ev.get("direction") is not None:  # which way the served error moved around the change point
            before, after = ev.get("error_before", float("nan")), ev.get("error_after", float("nan"))
            line += f" · {ev['direction']} {before:.2f} → {after:.2f}"
        line += (f" · change point {_event_no(w, cp['ts']) if 'ts' in cp else '?'} "
                 f"({key.replace('_', ' ')}s {_offsets(cp.get('partitions') or {}, key)})"
                 f" · contributing partitions {len(contrib)} "
                 f"({'outcomes' if ev.get('kind') == 'concept' else 'values'} {counts})"
                 f" · evidence {len(ev.get('evidence') or [])}")
    return line


def _status_line(registry: CollectorRegistry, produced: int, done: float, total: int, elapsed: float,
                 partitions: int) -> str:
    served = _mean_gauge(registry, "driftstream_served_model_error")
    online = _mean_gauge(registry, "driftstream_online_model_error")
    return (f"[dim]{elapsed:5.1f}s produced {produced:>7} · processed {int(done):>7}/{total} msgs · "
            f"{done / max(elapsed, 1e-9):7.0f} msg/s · served err {served:.3f} · online err {online:.3f} · "
            f"partitions {partitions}[/]")


def _status_table(service: Any, registry: CollectorRegistry, produced: int, done: float, total: int,
                  elapsed: float, detections: list[dict[str, Any]]) -> Table:
    """Per-partition progress, served vs online model error and alarms, for the live console."""
    table = Table(title=f"driftstream · {elapsed:5.1f}s · produced {produced} events · processed {int(done)}/{total} "
                        f"msgs · {done / max(elapsed, 1e-9):,.0f} msg/s", expand=False)
    for col in ("partition", "inference offset", "labels offset", "joined", "pending", "served error",
                "online error", "alarms"):
        table.add_column(col, justify="right")
    alarms: dict[str, float] = {}
    for m in registry.collect():
        for smp in m.samples:
            if smp.name == "driftstream_detector_alarms_total" and smp.labels.get("level") == "drift":
                alarms[smp.labels["detector"]] = alarms.get(smp.labels["detector"], 0) + smp.value
    try:
        procs = sorted(list(service.processors.items()))
    except RuntimeError:  # the service thread changed the assignment while we looked
        procs = []
    for p, proc in procs:
        try:
            mons = [mp.monitor for mp in list(proc.models.values())]
            served = [m.rolling_served_error() for m in mons if m.rolling_served_error() is not None]
            online = [m.rolling_online_error() for m in mons if m.rolling_online_error() is not None]
            table.add_row(str(p), str(proc.next_offsets.get(proc.inference_topic, "")),
                          str(proc.next_offsets.get(proc.labels_topic, "")), str(sum(m.joined for m in mons)),
                          str(proc.join.pending_predictions),
                          f"{sum(served) / len(served):.3f}" if served else "-",
                          f"{sum(online) / len(online):.3f}" if online else "-",
                          str(sum(1 for d in detections if d.get("partition") == p and _scope(d) == "partition")))
        except RuntimeError:
            continue
    table.caption = "drift alarms so far: " + (", ".join(f"{k} {int(v)}" for k, v in sorted(alarms.items())) or "none")
    return table


def _mean_gauge(registry: CollectorRegistry, name: str) -> float:
    vals = [s.value for m in registry.collect() for s in m.samples if s.name == name]
    return sum(vals) / len(vals) if vals else float("nan")


def _index(w: Workload, d: dict[str, Any]) -> int:
    """Inference-event number an output refers to: its event id, else its event time."""
    eid = d.get("event_id")
    if isinstance(eid, str) and eid.startswith(f"{w.id_prefix}-"):
        return int(eid.split("-")[1])
    return int(round((float(d.get("ts", w.t0)) - w.t0) / w.spacing))


def summarize(w: Workload, detections: list[dict[str, Any]], partitions: int) -> dict[str, Any]:
    """The demo's figures at model scope (``--summary-json``), from the model-scope events only.

    - a concept incident is placed at its ``event_id``: the inference event whose joined outcome tipped the
      model's detector (as the partition alarms were counted before the model stage); the first incident at
      or after a true change, and before the next one, is that change's first detection;
    - the feature shift's first detection is the first model-scope ``feature`` incident at or after the shift
      (data-drift incidents are placed at their event time as an event number);
    - false alarms: model-scope drift incidents of any kind placed before the first true change;
    - incidents: model-scope concept incidents, and model-scope incidents of kind ``feature``;
    - retrain events: model-scope retrain events.
    """
    model = [d for d in detections if _scope(d) == "model"]
    drifts = sorted(((_index(w, d), d) for d in model if d.get("type") == "drift"), key=lambda x: x[0])
    concept = [i for i, d in drifts if d.get("kind") == "concept"]
    feature = [i for i, d in drifts if d.get("kind") == "feature"]

    def first(at: int, hits: list[int], until: int) -> dict[str, Any]:
        after = [i for i in hits if at <= i < until]
        j = after[0] if after else None
        return {"at": at, "first_detection": j, "delay": None if j is None else j - at}

    bounds = list(w.change_points[1:]) + [w.n_events]
    start = min(w.change_points) if w.change_points else w.n_events
    return {
        "partitions": partitions,
        "changes": [first(cp, concept, until) for cp, until in zip(w.change_points, bounds)],
        "feature_shift": (first(w.feature_shift_at[0], feature, w.n_events) if w.feature_shift_at else
                          {"at": None, "first_detection": None, "delay": None}),
        "incidents": {"concept": len(concept), "feature": len(feature)},
        "retrain_events": sum(1 for d in model if d.get("type") == "retrain"),
        "false_alarms": sum(1 for i, _ in drifts if i < start),
    }


def write_report(w: Workload, detections: list[dict[str, Any]], prefix: Path, *, partitions: int,
                 first_output: float | None = None, partition_events: bool = False) -> tuple[Path, Path]:
    """The report of the events given (the demo passes the model-scope ones, and with ``--partition-events``
    the partitions' own too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from stream.tools.workload import concept

    errs = []
    for kind, _, ev in events(w):
        if kind == "inference":
            i = int(ev["id"].split("-")[1])
            errs.append(int(ev["prediction"] != concept(i, ev["features"], w.change_points, w.concepts)))
    errs_a = np.asarray(errs, dtype=float)
    win = 500
    rolling = np.convolve(errs_a, np.ones(win) / win, mode="valid")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax.plot(np.arange(win - 1, len(errs_a)), rolling, color="#3465a4", lw=1.2, label=f"served error rate (rolling {win})")
    for a in (ax, ax2):
        for k, cp in enumerate(w.change_points):
            a.axvline(cp, color="black", ls="--", lw=1.2, label="true concept change" if k == 0 and a is ax else None)
        for k, fs in enumerate(w.feature_shift_at):
            a.axvline(fs, color="#888a85", ls=":", lw=1.5, label="true feature shift" if k == 0 and a is ax else None)
    top = min(1.0, float(rolling.max()) * 1.08) if rolling.size else 1.0
    markers = {"ADWIN": ("v", "#cc0000"), "HDDMA": ("o", "#75507b"), "DDM": ("^", "#f57900")}
    seen: set[str] = set()
    rows = []
    for d in detections:
        i = _index(w, d)
        t = d.get("type")
        if t == "drift" and d.get("kind") == "concept":
            m, c = markers.get(d["detector"], ("o", "#75507b"))
            label = f"{d['detector']} concept {'incident' if _scope(d) == 'model' else 'alarm (partition)'}"
            ax.scatter([i], [top], marker=m, color=c, s=50, zorder=5, label=label if label not in seen else None)
        elif t == "retrain":
            label = "retrain event"
            ax.scatter([i], [top * 0.93], marker="s", color="#4e9a06", s=40, zorder=5,
                       label=label if label not in seen else None)
        elif t == "model-swap":
            label = "online model swap"
            ax.scatter([i], [top * 0.86], marker="D", color="#06989a", s=35, zorder=5,
                       label=label if label not in seen else None)
        else:
            label = ""
        seen.add(label)
        rows.append(d)
    signals = sorted({f"{d['kind']}:{d['signal']}" for d in detections if d.get("type") == "drift"
                      and d.get("kind") != "concept"})
    for d in detections:
        if d.get("type") == "drift" and d.get("kind") != "concept":
            ax2.scatter([_index(w, d)], [signals.index(f"{d['kind']}:{d['signal']}")], marker="|", s=200,
                        color="#c4a000")
    ax2.set_yticks(range(len(signals)), signals if signals else [])
    ax2.set_ylim(-0.8, max(len(signals), 1) - 0.2)
    ax2.set_title("feature / prediction / label drift events (windowed KS, χ²), by signal", fontsize=9)
    ax2.set_xlabel("inference event #")
    ax2.grid(alpha=0.3)
    ax.set_ylabel("error rate")
    ax.set_title(f"driftstream demo: served-model error, true changes, model-scope incidents and decisions "
                 f"({partitions} partitions{', with their own signals' if partition_events else ''})")
    ax.legend(loc="center left", fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = prefix.with_suffix(".png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    b64 = base64.b64encode(png.read_bytes()).decode()

    def cell(d: dict[str, Any]) -> str:
        what = d.get("type", "")
        if what == "drift":
            what = f"drift/{d.get('kind')}:{d.get('signal')}"
        elif what == "retrain":
            what = "retrain: " + ", ".join(d.get("reasons", []))
        stat = d.get("statistic")
        if isinstance(stat, dict):
            stat = stat.get("served_error_rolling")
        shown = "" if not isinstance(stat, (int, float)) else f"{stat:.4g}"
        if isinstance(d.get("p_value"), (int, float)):
            shown += f" (p={d['p_value']:.2g})"
        return (f"<tr><td>{_index(w, d)}</td><td>{what}</td><td>{d.get('detector', '')}</td><td>{shown}</td>"
                f"<td>{_scope(d)}</td><td>{d.get('partition', '') if _scope(d) == 'partition' else 'all'}</td>"
                f"<td>{d.get('model', '')}</td><td><code>{d.get('id')}</code></td></tr>")

    html = prefix.with_suffix(".html")
    html.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>driftstream demo report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
        f"</head><body><h1>driftstream demo report</h1><p>{w.n_events} inference events over {partitions} "
        f"partitions, true concept changes at {list(w.change_points)}, feature shift at "
        f"{list(w.feature_shift_at)}; {len(rows)} output events; first event processed "
        f"{'never' if first_output is None else f'{first_output:.1f} s'} after the demo started.</p>"
        f"<img src='data:image/png;base64,{b64}' style='max-width:100%'>"
        "<h2>Events</h2><p>statistic: the test statistic of data-drift events (KS D, χ²), the rolling served "
        "error at concept-drift alarms.</p><table><tr><th>event #</th><th>what</th><th>detector</th>"
        "<th>statistic</th><th>scope</th><th>partition</th><th>model</th>"
        "<th>id</th></tr>" + "".join(cell(d) for d in sorted(rows, key=lambda d: _index(w, d))) + "</table></body></html>"
    )
    return png, html
