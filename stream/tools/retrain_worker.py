"""``driftstream retrain-worker``: the reference consumer of ``retrain-events``.

It shows how a downstream service uses driftstream's alerts. For each retrain event it

1. reads the recommended window back from Kafka: the partition's inference and label messages from the
   window's start (offsets, or a timestamp looked up with ``offsets_for_times``) to the newest message;
2. joins them by id and splits them in time: the newest ``holdout_fraction`` of labelled events is the
   evaluation slice, the rest the training set;
3. trains a fresh model of the online model's configured kind (``stream.learner.build_online_model``: the
   compiled linear model, or River's) on the training set;
4. evaluates it on the evaluation slice against the current online model (loaded from the partition's
   Redis checkpoint, HMAC-checked before it is parsed or unpickled) and against the served model's own
   predictions;
5. publishes the outcome to ``model-updates`` (id derived from the retrain event id, so a replay
   duplicates rather than differs) and only then commits its offset.
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
from stream.learner import build_online_model
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
    p = ev["partition"]
    win = ev["window"]
    out = {}
    c = Consumer({**consumer_config(cfg), "group.id": f"{cfg.processing.group_id}-retrain-reader"})
    try:
        for topic, key in ((cfg.topics.inference, "inference_offset"), (cfg.topics.labels, "labels_offset")):
            start = win["from"].get(key)
            if start is None:
                start = _offset_for_time(cfg, topic, p, win["from"]["ts"])
            end = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            out[topic] = (int(start), max(int(end), int(win["to"][key] or 0)))
    finally:
        c.close()
    return out


def _error(task: str, model: Any, x: dict[str, Any], y: Any) -> float:
    pred = model.predict_one(model_x(model, x))
    if pred is None:
        return 1.0
    return served_error(task, pred, y)


def evaluate_retrain_event(cfg: AppConfig, ev: dict[str, Any], store: CheckpointStore | None,
                           holdout_fraction: float = 0.2) -> dict[str, Any]:
    model_name, p = ev["model"], ev["partition"]
    spec = cfg.model_spec(model_name)
    ranges = _window_offsets(cfg, ev)
    preds = {e.get("id"): e for e in _read_range(cfg, cfg.topics.inference, p, *ranges[cfg.topics.inference])
             if isinstance(e, dict) and e.get("model") == model_name and isinstance(e.get("features"), dict)}
    rows = []
    for lab in _read_range(cfg, cfg.topics.labels, p, *ranges[cfg.topics.labels]):
        if not isinstance(lab, dict):
            continue
        pr = preds.get(lab.get("id"))
        if pr is not None and lab.get("model") == model_name:
            rows.append((pr["ts"], pr["features"], pr.get("prediction"), lab.get("label")))
    rows.sort(key=lambda r: r[0])
    n_hold = max(1, int(len(rows) * holdout_fraction)) if rows else 0
    train, hold = rows[: len(rows) - n_hold], rows[len(rows) - n_hold:]
    candidate = build_online_model(spec.online_model, spec.task)
    for _, x, _, y in train:
        candidate.learn_one(model_x(candidate, x), y)
    result: dict[str, Any] = {
        "id": f"{ev['id']}:retrain-result",
        "type": "retrain-result",
        "model": model_name,
        "partition": p,
        "retrain_event": ev["id"],
        "reasons": ev.get("reasons", []),
        "window": {t: {"from": a, "to": b} for t, (a, b) in ranges.items()},
        "trained_on": len(train),
        "evaluated_on": len(hold),
    }
    if not hold or not train:
        result.update({"promote": False, "note": "not enough labelled data in the window"})
        return result
    result["candidate_error"] = sum(_error(spec.task, candidate, x, y) for _, x, _, y in hold) / len(hold)
    result["served_error"] = sum(served_error(spec.task, sp, y) for _, _, sp, y in hold) / len(hold)
    online = _load_online_model(store, p, model_name)
    if online is not None:
        result["online_error"] = sum(_error(spec.task, online, x, y) for _, x, _, y in hold) / len(hold)
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
