"""Every output event the service publishes is built here: drift, retrain, challenger, swap, online
prediction, label missing, data quality, dead letter.

Every output id is derived from the input position that caused it (see :func:`stream.events.output_id`),
so a replay produces the same ids and the same content.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from stream.events import InferenceEvent, Record, output_id

if TYPE_CHECKING:  # pragma: no cover
    from stream.detect import Alarm, ModelMonitor
    from stream.partition import PartitionProcessor


def drift_event(proc: "PartitionProcessor", mon: "ModelMonitor", alarm: "Alarm") -> dict[str, Any]:
    j = alarm.joined
    topic = proc.inference_topic if j.completed_by == "inference" else proc.labels_topic
    return {
        "id": output_id(topic, proc.partition, j.completed_offset, f"drift:{alarm.detector}"),
        "type": "drift",
        "kind": "concept",
        "signal": "served_error",
        "model": mon.model,
        "partition": proc.partition,
        "detector": alarm.detector,
        "severity": "critical",
        "offset": j.completed_offset,
        "topic": topic,
        "ts": max(j.label_ts, j.prediction.ts),
        "event_id": j.id,
        "prediction_offset": j.prediction.offset,
        "statistic": {
            "estimate": alarm.estimate,
            "served_error_rolling": alarm.served_error_rolling,
            "online_error_rolling": alarm.online_error_rolling,
        },
        "joined_count": alarm.joined_count,
        "calibration": alarm.calibration,
    }


def online_prediction_event(r: Record, ev: InferenceEvent, prediction: Any, version: int) -> dict[str, Any]:
    return {
        "id": output_id(r.topic, r.partition, r.offset, "online-prediction"),
        "type": "online-prediction",
        "event_id": ev.id,
        "model": ev.model,
        "prediction": prediction,
        "served_prediction": ev.prediction,
        "model_version": version,
        "partition": r.partition,
        "offset": r.offset,
        "ts": ev.ts,
    }


def label_missing_event(proc: "PartitionProcessor", event_id: str, pred: Any, why: str) -> dict[str, Any]:
    """A prediction whose label did not arrive within the join window (or that overflowed it)."""
    return {
        "id": output_id(proc.inference_topic, proc.partition, pred.offset, "label-missing"),
        "type": "data-quality",
        "check": "label_missing",
        "severity": "info",
        "model": pred.model,
        "partition": proc.partition,
        "event_id": event_id,
        "offset": pred.offset,
        "ts": pred.ts,
        "reason": why,
        "pending_predictions": proc.join.pending_predictions,
    }


def retrain_event(proc: "PartitionProcessor", model: str, key: tuple[str, int], here: Any, decision: Any,
                  comparison: Any) -> dict[str, Any]:
    topic, offset = key
    return {
        "id": output_id(topic, proc.partition, offset, f"retrain:{model}"),
        "type": "retrain",
        "model": model,
        "partition": proc.partition,
        "reasons": decision.reasons,
        "evidence": decision.evidence,
        "window": {
            "source": decision.window_source,
            "from": decision.window_from,
            "to": {"inference_offset": here.inference_offset, "labels_offset": here.labels_offset, "ts": here.ts},
        },
        "champion_challenger": None if comparison is None else _comparison(comparison),
        "ts": here.ts,
        "offset": offset,
        "topic": topic,
    }


def _comparison(c: Any) -> dict[str, Any]:
    return {"test": c.test, "n": c.n, "statistic": c.statistic, "p_value": c.p_value,
            "champion_error": c.champion_error, "challenger_error": c.challenger_error,
            "challenger_better": c.challenger_better, "b": c.b, "c": c.c}


def challenger_event(proc: "PartitionProcessor", mon: "ModelMonitor", key: tuple[str, int], here: Any,
                     comparison: Any) -> dict[str, Any]:
    topic, offset = key
    return {
        "id": output_id(topic, proc.partition, offset, f"challenger-better:{mon.model}"),
        "type": "challenger-better",
        "model": mon.model,
        "partition": proc.partition,
        "model_version": mon.model_version,
        "evidence": _comparison(comparison),
        "ts": here.ts,
        "offset": offset,
        "topic": topic,
    }


def swap_event(proc: "PartitionProcessor", mon: "ModelMonitor", swap: Any) -> dict[str, Any]:
    j = swap.joined
    topic = proc.inference_topic if j.completed_by == "inference" else proc.labels_topic
    return {
        "id": output_id(topic, proc.partition, j.completed_offset, f"model-swap:{mon.model}"),
        "type": "model-swap",
        "model": mon.model,
        "partition": proc.partition,
        "model_version": swap.version,
        "reason": "online_error_drift",
        "detector": swap.detector,
        "background_trained_on": swap.background_trained_on,
        "ts": max(j.label_ts, j.prediction.ts),
        "offset": j.completed_offset,
        "topic": topic,
    }


def dead_letter_event(record: Record, reason: str, detail: str) -> dict[str, Any]:
    """An input that could not be processed, with its reason and where to find it in the input topic."""
    value = record.value or b""
    try:
        text: str | None = value.decode("utf-8")
        encoded = None
    except UnicodeDecodeError:
        text, encoded = None, base64.b64encode(value).decode()
    return {
        "id": output_id(record.topic, record.partition, record.offset, "dead-letter"),
        "type": "dead-letter",
        "reason": reason,
        "error": detail[:1000],
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                   "timestamp_ms": record.timestamp_ms},
        "key": record.key.decode("utf-8", "replace") if record.key else None,
        "value": text,
        "value_base64": encoded,
    }
