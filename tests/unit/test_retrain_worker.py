"""The retrain worker on model-scope and partition-scope retrain events, without servers: the reads from
Kafka and Redis are replaced by in-memory partitions (tests/integration/test_retrain.py runs the worker on
the real broker and Redis)."""

from __future__ import annotations

from typing import Any

import pytest

from stream.config import load_config
from stream.tools import retrain_worker

PARTITIONS = 3
N = 100  # events per partition


def _partition_data(p: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inference events and labels of partition ``p``; event times interleave the partitions
    (ts = 1000 + 3 i + p). Every label is 1; the served model predicted 0 on partition 1 only."""
    inference = [{"id": f"p{p}-{i}", "model": "fraud", "ts": 1000.0 + 3 * i + p,
                  "features": {"amount": float(i % 7)}, "prediction": 0 if p == 1 else 1} for i in range(N)]
    labels = [{"id": f"p{p}-{i}", "model": "fraud", "label": 1} for i in range(N)]
    return inference, labels


class Constant:
    """An online model that always predicts ``value``."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict_one(self, x: dict[str, Any]) -> int:
        return self.value


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    cfg = load_config(None, {})
    data = {p: _partition_data(p) for p in range(PARTITIONS)}
    seen: dict[str, Any] = {"windows": [], "built": [], "online": {0: Constant(1), 1: Constant(0), 2: Constant(1)}}

    def partition_window(cfg, p, frm, to, from_ts):
        seen["windows"].append((p, dict(frm), from_ts))
        start = frm.get("inference_offset") or 0
        return {cfg.topics.inference: (start, N), cfg.topics.labels: (frm.get("labels_offset") or 0, N)}

    def read_range(cfg, topic, p, a, b):
        inference, labels = data[p]
        return (inference if topic == cfg.topics.inference else labels)[a:b]

    real = retrain_worker.build_online_model
    monkeypatch.setattr(retrain_worker, "_partition_window", partition_window)
    monkeypatch.setattr(retrain_worker, "_read_range", read_range)
    monkeypatch.setattr(retrain_worker, "build_online_model", lambda c, t: seen["built"].append(real(c, t)) or seen["built"][-1])
    monkeypatch.setattr(retrain_worker, "_load_online_model", lambda store, p, model: seen["online"][p])
    seen["cfg"] = cfg
    return seen


def _model_event(froms: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {"id": "scope:fraud:inference:2:77:retrain", "type": "retrain", "scope": "model", "model": "fraud",
            "partition": 2, "reasons": ["concept_drift"],
            "window": {"source": "change_point", "from": {"ts": 1100.0}, "to": {"ts": 1297.0},
                       "partitions": {str(p): {"from": f, "to": {"inference_offset": N - 1, "labels_offset": N - 1}}
                                      for p, f in froms.items()}}}


def test_a_model_scope_event_trains_once_on_every_partition(worker) -> None:
    full = {"inference_offset": 0, "labels_offset": 0}
    ev = _model_event({0: full, 1: full, 2: full})
    result = retrain_worker.evaluate_retrain_event(worker["cfg"], ev, store=None)
    assert len(worker["built"]) == 1, "one model for the model-scope event, not one per partition"
    assert [w[0] for w in worker["windows"]] == [0, 1, 2]
    assert result["id"] == f"{ev['id']}:retrain-result" and result["retrain_event"] == ev["id"]
    assert result["scope"] == "model" and result["partitions"] == [0, 1, 2] and "partition" not in result
    assert result["rows_per_partition"] == {"0": N, "1": N, "2": N}
    assert result["trained_on"] + result["evaluated_on"] == PARTITIONS * N
    assert sorted(result["window"]) == ["0", "1", "2"]
    # the evaluation slice is the newest 20% in event time: 20 rows of each (interleaved) partition. Each
    # row is scored by its own partition's online model and served prediction: partition 1's are wrong
    assert result["evaluated_on"] == 60
    assert result["served_error"] == pytest.approx(1 / 3)
    assert result["online_error"] == pytest.approx(1 / 3)
    assert result["candidate_error"] == 0.0 and result["promote"] is True


def test_a_model_scope_window_starts_per_partition(worker) -> None:
    ev = _model_event({0: {"inference_offset": 0, "labels_offset": 0},
                       1: {"inference_offset": 60, "labels_offset": 60},
                       2: {"inference_offset": None, "labels_offset": None}})
    result = retrain_worker.evaluate_retrain_event(worker["cfg"], ev, store=None)
    # a partition without offsets (it had sent nothing at the change point) starts at the window's time
    assert worker["windows"][2] == (2, {"inference_offset": None, "labels_offset": None}, 1100.0)
    assert result["rows_per_partition"] == {"0": N, "1": N - 60, "2": N}
    assert len(worker["built"]) == 1


def test_a_model_scope_event_without_every_online_model_reports_no_online_error(worker) -> None:
    worker["online"][1] = None
    full = {"inference_offset": 0, "labels_offset": 0}
    result = retrain_worker.evaluate_retrain_event(worker["cfg"], _model_event({0: full, 1: full, 2: full}), None)
    assert "online_error" not in result and result["online_missing"] == [1]
    assert result["promote"] == (result["candidate_error"] < result["served_error"])


def test_a_partition_scope_event_trains_on_its_partition_only(worker) -> None:
    ev = {"id": "inference:1:500:retrain", "type": "retrain", "scope": "partition", "model": "fraud", "partition": 1,
          "reasons": ["concept_drift"],
          "window": {"source": "change_point", "from": {"ts": 1000.0, "inference_offset": 0, "labels_offset": 0},
                     "to": {"ts": 1297.0, "inference_offset": N - 1, "labels_offset": N - 1}}}
    result = retrain_worker.evaluate_retrain_event(worker["cfg"], ev, store=None)
    assert [w[0] for w in worker["windows"]] == [1]
    assert result["scope"] == "partition" and result["partition"] == 1 and "partitions" not in result
    assert result["trained_on"] + result["evaluated_on"] == N
    assert set(result["window"]) == {worker["cfg"].topics.inference, worker["cfg"].topics.labels}
    assert result["served_error"] == 1.0 and result["online_error"] == 1.0
