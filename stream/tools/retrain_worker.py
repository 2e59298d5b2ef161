"""``driftstream retrain-worker``: the reference consumer of ``retrain-events``.

It shows how a downstream service uses driftstream's alerts. For each retrain event it

1. reads the recommended window back from Kafka: the inference and label messages from the window's start
   (offsets, or a timestamp looked up with ``offsets_for_times``) to the newest message, of the event's
   partition, or of every partition in ``window.partitions`` for a model-scope event (``"scope": "model"``:
   one model trained once on all its traffic, not once per partition);
2. joins them by id and splits them in time: the newest ``holdout_fraction`` of labelled events is the
   evaluation slice, the rest the training set;
3. trains a fresh model of the online model's configured kind (``stream.learner.build_online_model``: the
   compiled linear model, or River's) on the training set;
4. evaluates it on the evaluation slice against the current online model (each row against the online
   model of its partition, loaded from that partition's Redis checkpoint, HMAC-checked before it is parsed
   or unpickled) and against the served model's own predictions;
5. publishes one outcome per retrain event to ``model-updates`` (id derived from the retrain event id, so
   a replay duplicates rather than differs) and only then commits its offset.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from stream.clients import consumer_config, producer_config
from stream.checkpoint import CheckpointStore
from stream.config import AppConfig
from stream.detect import model_x, served_error
from stream.learner import OnlineLinearModel, build_online_model
from stream.publish import Publisher
from stream.state import online_model

log = logging.getLogger("driftstream.retrain_worker")


def _read_range(cfg: AppConfig, topic: str, partition: int, start: int, end: int, timeout: float = 30.0
                ) -> list[dict[str, Any]]:
    """Decoded messages of ``topic[partition]`` with offsets in ``[start, end)``; bad ones are skipped
    (the service already dead-lettered them)."""
    if end <= start:
        return []
    c = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-retrain-reader",
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, partition, start)])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.5)
            done = False
            for m in msgs:
                if m.error():
                    done = done or m.error().code() == m.error()._PARTITION_EOF
                    continue
                if m.offset() >= end:
                    done = True
                    break
                try:
                    out.append(orjson.loads(m.value()))
                except (orjson.JSONDecodeError, TypeError):
                    continue
                if m.offset() == end - 1:
                    done = True
            if done:
                break
    finally:
        c.close()
    return out


def _offset_for_time(cfg: AppConfig, topic: str, partition: int, ts: float) -> int:
    c = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-retrain-reader"})
    try:
        res = c.offsets_for_times([TopicPartition(topic, partition, int(ts * 1000))], timeout=10)
        off = res[0].offset
        if off < 0:
            off = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        return off
    finally:
        c.close()


def _window_offsets(cfg: AppConfig, ev: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """From the recommended start to the newest data: the window opens where the new concept begins,
    and everything that arrived since the decision reflects it too."""
    win = ev["window"]
    return _partition_window(cfg, ev["partition"], win["from"], win["to"], win["from"]["ts"])


def _partition_window(cfg: AppConfig, p: int, frm: dict[str, Any], to: dict[str, Any], from_ts: float
                      ) -> dict[str, tuple[int, int]]:
    """``{topic: (start, end)}`` of partition ``p``: from the offsets in ``frm`` (or, where one is None,
    the first message at ``from_ts``) to the newest message."""
    out = {}
    c = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-retrain-reader"})
    try:
        for topic, key in ((cfg.topics.inference, "inference_offset"), (cfg.topics.labels, "labels_offset")):
            start = frm.get(key)
            if start is None:
                start = _offset_for_time(cfg, topic, p, from_ts)
            end = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            out[topic] = (int(start), max(int(end), int(to.get(key) or 0)))
    finally:
        c.close()
    return out


def _windows(cfg: AppConfig, ev: dict[str, Any]) -> dict[int, dict[str, tuple[int, int]]]:
    """Partition -> ``{topic: (start, end)}`` to train on: the event's partition, or for a model-scope
    event every partition of ``window.partitions`` (the model's whole traffic)."""
    if ev.get("scope") != "model":
        return {int(ev["partition"]): _window_offsets(cfg, ev)}
    win = ev["window"]
    return {int(p): _partition_window(cfg, int(p), span["from"], span["to"], win["from"]["ts"])
            for p, span in sorted(win["partitions"].items(), key=lambda kv: int(kv[0]))}


def _labelled_rows(cfg: AppConfig, model_name: str, p: int, ranges: dict[str, tuple[int, int]]
                   ) -> list[tuple[Any, ...]]:
    """(ts, partition, features, served prediction, label) of the model's joined events in ``ranges``."""
    preds = {e.get("id"): e for e in _read_range(cfg, cfg.topics.inference, p, *ranges[cfg.topics.inference])
             if isinstance(e, dict) and e.get("model") == model_name and isinstance(e.get("features"), dict)}
    rows = []
    for lab in _read_range(cfg, cfg.topics.labels, p, *ranges[cfg.topics.labels]):
        if not isinstance(lab, dict):
            continue
        pr = preds.get(lab.get("id"))
        if pr is not None and lab.get("model") == model_name:
            rows.append((pr["ts"], p, pr["features"], pr.get("prediction"), lab.get("label")))
    return rows


def _error(task: str, model: Any, x: dict[str, Any], y: Any) -> float:
    pred = model.predict_one(model_x(model, x))
    if pred is None:
        return 1.0
    return served_error(task, pred, y)


def evaluate_retrain_event(cfg: AppConfig, ev: dict[str, Any], store: CheckpointStore | None,
                           holdout_fraction: float = 0.2) -> dict[str, Any]:
    model_name = ev["model"]
    spec = cfg.model_spec(model_name)
    model_scope = ev.get("scope") == "model"
    windows = _windows(cfg, ev)
    rows = [r for p, ranges in windows.items() for r in _labelled_rows(cfg, model_name, p, ranges)]
    # event time, ties by partition (each partition's rows keep their order): the same split on a replay
    rows.sort(key=lambda r: (r[0], r[1]))
    n_hold = max(1, int(len(rows) * holdout_fraction)) if rows else 0
    train, hold = rows[: len(rows) - n_hold], rows[len(rows) - n_hold:]
    candidate = build_online_model(spec.online_model, spec.task)
    if type(candidate) is OnlineLinearModel:  # the training set in one replay (what learn_one per row gives)
        candidate.replay_ops([x for _, _, x, _, _ in train], [True] * len(train), [y for *_, y in train])
    else:
        for _, _, x, _, y in train:
            candidate.learn_one(model_x(candidate, x), y)
    result: dict[str, Any] = {
        "id": f"{ev['id']}:retrain-result",
        "type": "retrain-result",
        "scope": "model" if model_scope else "partition",
        "model": model_name,
        "retrain_event": ev["id"],
        "reasons": ev.get("reasons", []),
        "trained_on": len(train),
        "evaluated_on": len(hold),
    }
    ranges_json = {p: {t: {"from": a, "to": b} for t, (a, b) in r.items()} for p, r in windows.items()}
    if model_scope:
        result["partitions"] = sorted(windows)
        result["window"] = {str(p): w for p, w in ranges_json.items()}
        result["rows_per_partition"] = {str(p): sum(1 for r in rows if r[1] == p) for p in sorted(windows)}
    else:
        (p,) = windows
        result["partition"] = p
        result["window"] = ranges_json[p]
    if not hold or not train:
        result.update({"promote": False, "note": "not enough labelled data in the window"})
        return result
    result["candidate_error"] = sum(_error(spec.task, candidate, x, y) for _, _, x, _, y in hold) / len(hold)
    result["served_error"] = sum(served_error(spec.task, sp, y) for _, _, _, sp, y in hold) / len(hold)
    # each row against the online model of its partition (one per partition): all of them, or no figure
    online = {p: _load_online_model(store, p, model_name) for p in sorted({r[1] for r in hold})}
    if all(m is not None for m in online.values()):
        result["online_error"] = sum(_error(spec.task, online[p], x, y) for _, p, x, _, y in hold) / len(hold)
    elif model_scope:
        result["online_missing"] = [p for p, m in online.items() if m is None]
    best_other = min(v for k, v in result.items() if k in ("served_error", "online_error"))
    result["promote"] = result["candidate_error"] < best_other
    return result


def _load_online_model(store: CheckpointStore | None, partition: int, model: str) -> Any | None:
    if store is None:
        return None
    cp = store.load(partition)  # raises StateRefused on a bad HMAC: nothing is unpickled then
    if cp is None or cp.payload is None:
        return None
    return online_model(cp.payload, model)


def run_worker(cfg: AppConfig, store: CheckpointStore | None, max_events: int | None = None,
               max_seconds: float | None = None) -> int:
    consumer = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-retrain-worker",
                         "auto.offset.reset": "earliest"})
    publisher = Publisher(Producer(producer_config(cfg)), dead_letter_topic=cfg.topics.dead_letter)
    consumer.subscribe([cfg.topics.retrain_events])
    handled = 0
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        while (max_events is None or handled < max_events) and (deadline is None or time.monotonic() < deadline):
            for m in consumer.consume(10, 0.5):
                if m.error():
                    continue
                try:
                    ev = orjson.loads(m.value())
                    outcome = evaluate_retrain_event(cfg, ev, store)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.error("cannot handle retrain event at offset %d: %s", m.offset(), exc)
                    outcome = {"id": f"{m.topic()}:{m.partition()}:{m.offset()}:retrain-result",
                               "type": "retrain-result", "error": str(exc)}
                publisher.send(cfg.topics.model_updates, outcome.get("model"), outcome)
                publisher.flush()
                consumer.commit(message=m, asynchronous=False)
                handled += 1
                log.info("retrain event %s: %s", outcome.get("retrain_event"), outcome)
    except KafkaException as exc:
        log.error("Kafka error: %s", exc)
        return 1
    finally:
        consumer.close()
    return 0
