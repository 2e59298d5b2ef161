"""Every output event the service publishes is built here: drift, data quality, retrain, challenger, swap,
online prediction, label missing, no data, offset reset, dead letter.

Each builder takes a plain origin, the input position that caused the event (see :class:`Origin`), and every
id goes through :func:`stream.events.output_id`, so a replay produces the same ids and the same content.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from stream.events import InferenceEvent, Origin, Record, output_id

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

    from stream.datadrift import DriftFinding
    from stream.detect import Alarm, Swap
    from stream.join import Joined, PendingPrediction
    from stream.policy import Position
    from stream.quality import Issue


def joined_origin(j: "Joined", partition: int, inference_topic: str, labels_topic: str) -> Origin:
    """The input that completed a join: the inference event (label first) or the label (prediction first)."""
    topic = inference_topic if j.completed_by == "inference" else labels_topic
    return Origin(topic, partition, j.completed_offset)


def drift_event(at: Origin, model: str, alarm: "Alarm") -> dict[str, Any]:
    j = alarm.joined
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"drift:{alarm.detector}"),
        "type": "drift",
        "scope": "partition",
        "kind": "concept",
        "signal": "served_error",
        "model": model,
        "partition": at.partition,
        "detector": alarm.detector,
        "severity": "critical" if alarm.direction == "degradation" else "info",
        "direction": alarm.direction,
        "error_before": alarm.error_before,
        "error_after": alarm.error_after,
        "offset": at.offset,
        "topic": at.topic,
        "ts": max(j.label_ts, j.prediction.ts),
        # the join that tipped the detector (with late labels it can come well after the change) ...
        "event_id": j.id,
        "prediction_offset": j.prediction.offset,
        # ... and the change point estimated from the served errors before it
        "estimated_change_point": {"joins_before_alarm": alarm.change_joins_before,
                                   "joined_count": alarm.joined_count - alarm.change_joins_before},
        "statistic": {
            "estimate": alarm.estimate,
            "served_error_rolling": alarm.served_error_rolling,
            "online_error_rolling": alarm.online_error_rolling,
        },
        "joined_count": alarm.joined_count,
        "calibration": alarm.calibration,
    }


def data_drift_event(f: "DriftFinding", model: str, partition: int) -> dict[str, Any]:
    r = f.result
    return {
        "id": output_id(f.at.topic, partition, f.at.offset, f"drift:{f.kind}:{f.signal}:{f.detector}"),
        "type": "drift",
        "scope": "partition",
        "kind": f.kind,
        "signal": f.signal,
        "model": model,
        "partition": partition,
        "detector": f.detector,
        "severity": "warning",
        "offset": f.at.offset,
        "topic": f.at.topic,
        "ts": f.at.ts,
        "event_id": f.at.event_id,
        "statistic": r.statistic,
        "p_value": r.p_value,
        "distance": r.distance,
        "threshold": r.threshold,
        "windows": {"reference_size": r.reference_size, "current_size": r.current_size},
        "values_seen": r.position,
    }


def quality_issue_event(at: Origin, model: str, issue: "Issue", severity: str, ts: float,
                        event_id: str) -> dict[str, Any]:
    """A data-quality finding on one inference event (one feature, or ``*``)."""
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"dq:{issue.check}:{issue.feature}"),
        "type": "data-quality",
        "check": issue.check,
        "feature": issue.feature,
        "model": model,
        "partition": at.partition,
        "offset": at.offset,
        "ts": ts,
        "event_id": event_id,
        "severity": severity,
        "evidence": issue.evidence,
    }


def model_quality_event(at: Origin, model: str, check: str, ts: float, evidence: dict[str, Any]) -> dict[str, Any]:
    """A data-quality finding about a model's stream rather than one event (volume drop, label delay growth)."""
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"dq:{check}:*"), "type": "data-quality",
        "check": check, "feature": "*", "model": model, "partition": at.partition, "offset": at.offset,
        "topic": at.topic, "ts": ts, "severity": "warning", "evidence": evidence,
    }


def no_data_event(inference_topic: str, labels_topic: str, partition: int, next_offsets: tuple[int, int],
                  silent_seconds: float, limit_seconds: float) -> dict[str, Any]:
    """A partition that received nothing for ``limit_seconds`` (wall clock), at its next input offsets.

    The content names the limit, not the measured silence: a replay that meets the same silence a little
    later must give the same event under the same id (the id names the input position)."""
    inf, lab = next_offsets
    return {
        "id": output_id(inference_topic, partition, f"{inf}-{lab}", "dq:no_data:*"), "type": "data-quality",
        "check": "no_data", "feature": "*", "model": "*", "partition": partition,
        "severity": "warning", "evidence": {"silent_seconds_at_least": limit_seconds, "limit_seconds": limit_seconds,
                                            "next_offsets": {inference_topic: inf, labels_topic: lab}},
    }


def offset_reset_event(at: Origin, log_start: int) -> dict[str, Any]:
    """A stored position below the log start (retention deleted unprocessed input): reset to the log start."""
    return {
        "id": output_id(at.topic, at.partition, at.offset, "offset-reset"), "type": "data-quality",
        "check": "offset_out_of_range", "severity": "critical", "partition": at.partition,
        "topic": at.topic, "stored_offset": at.offset, "log_start": log_start, "skipped": log_start - at.offset,
    }


def online_prediction_event(at: Origin, ev: InferenceEvent, prediction: Any, version: int) -> dict[str, Any]:
    return {
        "id": output_id(at.topic, at.partition, at.offset, "online-prediction"),
        "type": "online-prediction",
        "event_id": ev.id,
        "model": ev.model,
        "prediction": prediction,
        "served_prediction": ev.prediction,
        "model_version": version,
        "partition": at.partition,
        "offset": at.offset,
        "ts": ev.ts,
    }


def online_prediction_events(predictions: "Iterable[tuple[tuple[Record, InferenceEvent], Any, int]]"
                             ) -> list[tuple[str, dict[str, Any]]]:
    """:func:`online_prediction_event` of each ``((record, event), prediction, model version)`` of a micro-batch,
    with its key (the event id), in one pass."""
    kind = "online-prediction"
    return [(ev.id, {
        "id": output_id(r.topic, r.partition, r.offset, kind),
        "type": kind,
        "event_id": ev.id,
        "model": ev.model,
        "prediction": value,
        "served_prediction": ev.prediction,
        "model_version": version,
        "partition": r.partition,
        "offset": r.offset,
        "ts": ev.ts,
    }) for (r, ev), value, version in predictions]


def label_missing_event(at: Origin, event_id: str, pred: "PendingPrediction", why: str,
                        pending_predictions: int) -> dict[str, Any]:
    """A prediction whose label did not arrive within the join window (or that overflowed it)."""
    return {
        "id": output_id(at.topic, at.partition, at.offset, "label-missing"),
        "type": "data-quality",
        "check": "label_missing",
        "severity": "info",
        "model": pred.model,
        "partition": at.partition,
        "event_id": event_id,
        "offset": at.offset,
        "ts": pred.ts,
        "reason": why,
        "pending_predictions": pending_predictions,
    }


def _position(here: "Position") -> dict[str, Any]:
    return {"inference_offset": here.inference_offset, "labels_offset": here.labels_offset, "ts": here.ts}


def retrain_event(at: Origin, model: str, here: "Position", decision: Any, comparison: Any) -> dict[str, Any]:
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"retrain:{model}"),
        "type": "retrain",
        "scope": "partition",
        "model": model,
        "partition": at.partition,
        "reasons": decision.reasons,
        "evidence": decision.evidence,
        "window": {
            "source": decision.window_source,
            "from": decision.window_from,
            "to": _position(here),
        },
        "champion_challenger": None if comparison is None else _comparison(comparison),
        "ts": here.ts,
        "offset": at.offset,
        "topic": at.topic,
    }


def _comparison(c: Any) -> dict[str, Any]:
    return {"test": c.test, "n": c.n, "statistic": c.statistic, "p_value": c.p_value,
            "champion_error": c.champion_error, "challenger_error": c.challenger_error,
            "challenger_better": c.challenger_better, "b": c.b, "c": c.c}


def challenger_event(at: Origin, model: str, model_version: int, here: "Position", comparison: Any) -> dict[str, Any]:
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"challenger-better:{model}"),
        "type": "challenger-better",
        "scope": "partition",
        "model": model,
        "partition": at.partition,
        "model_version": model_version,
        "evidence": _comparison(comparison),
        "ts": here.ts,
        "offset": at.offset,
        "topic": at.topic,
    }


def swap_event(at: Origin, model: str, swap: "Swap") -> dict[str, Any]:
    j = swap.joined
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"model-swap:{model}"),
        "type": "model-swap",
        "scope": "partition",
        "model": model,
        "partition": at.partition,
        "model_version": swap.version,
        "reason": "online_error_drift",
        "detector": swap.detector,
        "background_trained_on": swap.background_trained_on,
        "ts": max(j.label_ts, j.prediction.ts),
        "offset": at.offset,
        "topic": at.topic,
    }


def component_failed_event(at: Origin, model: str, component: str, error: BaseException, ts: float | None
                           ) -> dict[str, Any]:
    """A model's component raised: it is disabled for that model in that partition (the rest goes on)."""
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"dq:component_failed:{component}"),
        "type": "data-quality", "check": "component_failed", "severity": "critical", "feature": "*",
        "model": model, "component": component, "partition": at.partition, "offset": at.offset, "topic": at.topic,
        "ts": ts, "error": f"{type(error).__name__}: {error}"[:500],
        "action": f"{component} disabled for this model in this partition until its state is reset",
    }


def calibration_refused_event(at: Origin, model: str, detector: str, error: Exception, fallback: str,
                              calibration: dict[str, Any], ts: float | None) -> dict[str, Any]:
    """A concept detector's calibration refused its false-alarm target on this model's errors: the detector
    runs uncalibrated (``fallback`` "defaults") or not at all ("off"); ``calibration`` says what was asked,
    on how long a reference, and what to do instead."""
    action = ("running on its configured parameters, uncalibrated: its false-alarm rate is not the one asked for"
              if fallback == "defaults" else "turned off for this model in this partition")
    return {
        "id": output_id(at.topic, at.partition, at.offset, f"dq:calibration_refused:{detector}"),
        "type": "data-quality", "check": "calibration_refused", "severity": "critical", "feature": "*",
        "model": model, "detector": detector, "partition": at.partition, "offset": at.offset, "topic": at.topic,
        "ts": ts, "error": f"{type(error).__name__}: {error}"[:500], "fallback": fallback,
        "calibration": calibration, "action": f"{detector} {action}",
    }


def dead_letter_event(record: Record, reason: str, detail: str, max_bytes: int | None = None) -> dict[str, Any]:
    """An input that could not be processed, with its reason and where to find it in the input topic.

    With ``max_bytes`` the event's JSON stays within that many bytes (what the producer and the dead-letter
    topic accept): a value that does not fit is cut to a prefix (``value_truncated``; a base64 value to
    whole 4-character groups), or left out (None) if not even the rest fits, and the event then carries the
    original size (``value_bytes``) and the sha256 of the whole value (``value_sha256``) besides the
    source position, so that the message can still be found and recognised in the input topic."""
    value = record.value or b""
    try:
        text: str | None = value.decode("utf-8")
        encoded = None
    except UnicodeDecodeError:
        text, encoded = None, base64.b64encode(value).decode()
    key = record.key.decode("utf-8", "replace") if record.key else None
    event = {
        "id": output_id(record.topic, record.partition, record.offset, "dead-letter"),
        "type": "dead-letter",
        "reason": reason,
        "error": detail[:1000],
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                   "timestamp_ms": record.timestamp_ms},
        "key": key,
        "value": text,
        "value_base64": encoded,
    }
    # JSON escaping makes a byte at most 6 (\u00XX): most events are known to fit without encoding them
    worst = 6 * (len(value) + min(len(detail), 1000) + len(record.key or b"") + len(record.topic) + len(reason)) + 300
    if max_bytes is None or worst <= max_bytes or len(orjson.dumps(event)) <= max_bytes:
        return event
    name = "value" if text is not None else "value_base64"
    whole = event[name]
    event.update({name: "", "key": key[:1000] if key else key, "value_truncated": True,
                  "value_bytes": len(value), "value_sha256": hashlib.sha256(value).hexdigest()})
    room = max_bytes - len(orjson.dumps(event))  # bytes left between the value's quotes
    if room >= 0:
        event[name] = _json_prefix(whole, room, groups_of=4 if name == "value_base64" else 1)
        return event
    event[name] = None
    for field in ("error", "key"):  # a tiny budget: the error text, then the key are cut as well
        text, event[field] = event[field], ""
        room = max_bytes - len(orjson.dumps(event))
        event[field] = _json_prefix(text or "", max(room, 0))
        if room >= 0:
            break
    return event


def _json_prefix(s: str, room: int, groups_of: int = 1) -> str:
    """The longest prefix of ``s`` (a multiple of ``groups_of`` characters) whose JSON string encoding,
    quotes excluded, takes at most ``room`` bytes. Escapes and multi-byte characters make the encoding
    longer than the prefix, never shorter, so the answer has at most ``room`` characters."""
    lo, hi = 0, min(len(s), room) // groups_of
    while lo < hi:  # the largest n with s[:n * groups_of] fitting
        mid = (lo + hi + 1) // 2
        if len(orjson.dumps(s[:mid * groups_of])) - 2 <= room:
            lo = mid
        else:
            hi = mid - 1
    return s[:lo * groups_of]


def rejected_output_event(topic: str, key: bytes | None, value: bytes, error: str) -> dict[str, Any]:
    """An output event the producer or its topic refused for its content (too large): a small notice for
    the dead-letter topic instead, with the refused event's id, type, size and sha256 and the input
    position it derives from, so that one input can never stop the output path. Its id is the refused
    event's with ``rejected:`` before the kind (outputs' ids are ``topic:partition:offset:kind`` and topic
    names have no ``:``), so a replay gives the same notice."""
    try:
        refused = orjson.loads(value)
    except orjson.JSONDecodeError:
        refused = None
    if not isinstance(refused, dict):
        refused = {}
    ident = str(refused.get("id", ""))[:1000]
    parts = ident.split(":", 3)
    source = None
    if len(parts) == 4 and parts[1].isdigit():
        source = {"topic": parts[0], "partition": int(parts[1]), "offset": parts[2]}
        if parts[2].isdigit():
            source["offset"] = int(parts[2])
        rid = output_id(parts[0], int(parts[1]), source["offset"], f"rejected:{parts[3]}")
    else:
        rid = output_id(topic, -1, hashlib.sha256(value).hexdigest()[:32], "rejected")
    return {
        "id": rid,
        "type": "dead-letter",
        "reason": "output_rejected",
        "error": error[:200],
        "source": source,
        "output": {"topic": topic, "id": ident, "type": str(refused.get("type", ""))[:100],
                   "key": key.decode("utf-8", "replace")[:200] if key else None,
                   "bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()},
    }
