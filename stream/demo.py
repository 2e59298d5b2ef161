"""``driftstream demo``: a drifting stream through the real service on the local stack.

1. make sure Kafka and Redis answer (start the local stack with ``deploy/local/stack.sh`` if they do not);
2. create fresh demo topics and produce a workload whose concept changes at known points, at a steady rate;
3. run the service (same code as ``driftstream run``) while a console consumer prints drift events live;
4. print true change points vs detections, and write a report (PNG + self-contained HTML).
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

from stream.app import build_service, producer_config
from stream.config import AppConfig
from stream.metrics import Metrics
from stream.topics import admin_client, ensure_topics
from stream.workload import Workload, events, produce

REPO = Path(__file__).resolve().parent.parent


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


def run_demo(cfg: AppConfig, args: argparse.Namespace) -> int:
    console = Console()
    started_stack = False
    if not _reachable(cfg):
        script = REPO / "deploy" / "local" / "stack.sh"
        console.print("[yellow]local stack not reachable; starting it with deploy/local/stack.sh[/]")
        subprocess.run(["bash", str(script), "install"], check=True)
        subprocess.run(["bash", str(script), "start"], check=True)
        started_stack = True
    try:
        return _demo(cfg, args, console)
    finally:
        if started_stack:
            subprocess.run(["bash", str(REPO / "deploy" / "local" / "stack.sh"), "stop"], check=False)


def _demo(cfg: AppConfig, args: argparse.Namespace, console: Console) -> int:
    run_id = time.strftime("%Y%m%d%H%M%S")
    topics = dataclasses.replace(cfg.topics, **{
        f.name: f"demo-{run_id}.{getattr(cfg.topics, f.name)}"
        for f in dataclasses.fields(cfg.topics) if isinstance(getattr(cfg.topics, f.name), str)
    })
    processing = dataclasses.replace(cfg.processing, group_id=f"driftstream-demo-{run_id}",
                                     checkpoint_every_seconds=2.0)
    cfg = dataclasses.replace(cfg, topics=topics, processing=processing, demo=True,
                              metrics=dataclasses.replace(cfg.metrics, enabled=False))
    n = args.events
    w = Workload(n_events=n, change_points=(n // 3, 2 * n // 3), seed=42, spacing=0.01, label_delay=3.0, concepts=2)
    ensure_topics(admin_client(cfg), cfg)
    console.rule("[bold]driftstream demo")
    console.print(f"topics demo-{run_id}.*  ·  {n} inference events + labels  ·  true concept changes at "
                  f"events {list(w.change_points)}  ·  produce rate {args.rate:.0f}/s")

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

    watcher = Consumer({**{k: v for k, v in cfg.kafka.items()}, "group.id": f"demo-console-{run_id}",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    watcher.subscribe([topics.drift_events])
    detections: list[dict[str, Any]] = []
    total_msgs = sum(1 for _ in events(w))
    t0 = time.monotonic()
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
                console.print(_alarm_line(ev))
            now = time.monotonic()
            done = _count(registry, "driftstream_messages_total")
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
    time.sleep(1.0)
    for m in watcher.consume(1000, 1.0):
        if not m.error():
            detections.append(orjson.loads(m.value()))
    watcher.close()
    service.stop()
    svc_thread.join(30)

    console.rule("summary")
    det_idx = sorted({int(d["event_id"].split("-")[1]) for d in detections})
    for cp in w.change_points:
        after = [i for i in det_idx if i >= cp]
        first = after[0] if after else None
        console.print(f"true change at event {cp}: first detection "
                      f"{'none' if first is None else f'at {first} (delay {first - cp} events)'}")
    before = [i for i in det_idx if i < w.change_points[0]]
    console.print(f"detections before the first change (false alarms): {len(before)}")
    png, html = write_report(w, detections, Path(args.report))
    console.print(f"report written: {png} and {html}")
    return 0


def _alarm_line(ev: dict[str, Any]) -> str:
    where = f"event {ev['event_id']}" if "event_id" in ev else f"offset {ev.get('offset')}"
    stat = ev.get("statistic")
    if isinstance(stat, dict) and stat.get("served_error_rolling") is not None:
        detail = f"served error ≈ {stat['served_error_rolling']:.2f}"
        if stat.get("online_error_rolling") is not None:
            detail += f", online model ≈ {stat['online_error_rolling']:.2f}"
    else:
        detail = f"statistic {stat}"
    return (f"[bold red]DRIFT[/] {ev.get('kind', 'concept'):<10} model={ev['model']} p{ev['partition']} "
            f"{ev.get('signal', '')}/{ev['detector']:<7} at {where}: {detail}")


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
            mons = list(proc.monitors.values())
            served = [m.rolling_served_error() for m in mons if m.rolling_served_error() is not None]
            online = [m.rolling_online_error() for m in mons if m.rolling_online_error() is not None]
            table.add_row(str(p), str(proc.next_offsets.get(proc.inference_topic, "")),
                          str(proc.next_offsets.get(proc.labels_topic, "")), str(sum(m.joined for m in mons)),
                          str(proc.join.pending_predictions),
                          f"{sum(served) / len(served):.3f}" if served else "-",
                          f"{sum(online) / len(online):.3f}" if online else "-",
                          str(sum(1 for d in detections if d.get("partition") == p)))
        except RuntimeError:
            continue
    table.caption = "drift alarms so far: " + (", ".join(f"{k} {int(v)}" for k, v in sorted(alarms.items())) or "none")
    return table


def _mean_gauge(registry: CollectorRegistry, name: str) -> float:
    vals = [s.value for m in registry.collect() for s in m.samples if s.name == name]
    return sum(vals) / len(vals) if vals else float("nan")


def write_report(w: Workload, detections: list[dict[str, Any]], prefix: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from stream.workload import concept

    errs = []
    for kind, _, ev in events(w):
        if kind == "inference":
            i = int(ev["id"].split("-")[1])
            errs.append(int(ev["prediction"] != concept(i, ev["features"], w.change_points, w.concepts)))
    errs_a = np.asarray(errs, dtype=float)
    win = 500
    rolling = np.convolve(errs_a, np.ones(win) / win, mode="valid")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(11, 4.2))
    ax.plot(np.arange(win - 1, len(errs_a)), rolling, color="#3465a4", lw=1.2, label=f"served error rate (rolling {win})")
    for k, cp in enumerate(w.change_points):
        ax.axvline(cp, color="black", ls="--", lw=1.2, label="true change point" if k == 0 else None)
    markers = {"ADWIN": ("v", "#cc0000"), "DDM": ("^", "#f57900")}
    seen = set()
    for d in detections:
        i = int(d["event_id"].split("-")[1])
        m, c = markers.get(d["detector"], ("o", "#75507b"))
        ax.scatter([i], [min(1.0, rolling.max() * 1.05)], marker=m, color=c, s=60, zorder=5,
                   label=f"{d['detector']} detection" if d["detector"] not in seen else None)
        seen.add(d["detector"])
    ax.set_xlabel("inference event #")
    ax.set_ylabel("error rate")
    ax.set_title("driftstream demo: served-model error, true concept changes and detections (all partitions)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = prefix.with_suffix(".png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    b64 = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(
        f"<tr><td>{d['id']}</td><td>{d['model']}</td><td>{d['partition']}</td><td>{d['detector']}</td>"
        f"<td>{d['event_id']}</td><td>{d['offset']}</td></tr>" for d in detections
    )
    html = prefix.with_suffix(".html")
    html.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>driftstream demo report</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
        f"</head><body><h1>driftstream demo report</h1><p>{w.n_events} events, true change points "
        f"{list(w.change_points)}, {len(detections)} drift events.</p>"
        f"<img src='data:image/png;base64,{b64}' style='max-width:100%'>"
        "<h2>Drift events</h2><table><tr><th>id</th><th>model</th><th>partition</th><th>detector</th>"
        f"<th>event</th><th>offset</th></tr>{rows}</table></body></html>"
    )
    return png, html
