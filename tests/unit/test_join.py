from __future__ import annotations

import orjson
import pytest

from stream.errors import InvalidMessage
from stream.join import LabelJoin, MismatchedLabel, PendingLabel, PendingPrediction


def pred(offset, ts, model="m", p=1):
    return PendingPrediction(offset, ts, model, p, None, {"a": 1.0})


def lab(offset, ts, model="m", y=1):
    return PendingLabel(offset, ts, model, y, "{}")


def test_label_after_prediction_joins():
    j = LabelJoin(10, 100, 10)
    assert j.add_prediction("a", pred(0, 1.0)) is None
    out = j.add_label("a", lab(0, 5.0, y=0))
    assert out.id == "a" and out.label == 0 and out.completed_by == "labels" and out.completed_offset == 0
    assert j.pending_predictions == 0


def test_label_before_prediction_is_held_then_joined():
    j = LabelJoin(10, 100, 10)
    assert j.add_label("a", lab(3, 5.0)) is None
    out = j.add_prediction("a", pred(7, 1.0))
    assert out.completed_by == "inference" and out.completed_offset == 7 and j.pending_labels == 0


def test_duplicates_are_errors():
    j = LabelJoin(10, 100, 10)
    j.add_prediction("a", pred(0, 1.0))
    with pytest.raises(InvalidMessage, match="duplicate_id"):
        j.add_prediction("a", pred(1, 1.0))
    j.add_label("a", lab(0, 2.0))
    with pytest.raises(InvalidMessage, match="duplicate_label"):
        j.add_label("a", lab(1, 2.0))
    with pytest.raises(InvalidMessage, match="duplicate_id"):
        j.add_prediction("a", pred(2, 3.0))  # id already joined


def test_model_mismatch():
    j = LabelJoin(10, 100, 10)
    j.add_prediction("a", pred(0, 1.0, model="m1"))
    with pytest.raises(InvalidMessage, match="model_mismatch"):
        j.add_label("a", lab(0, 2.0, model="m2"))
    j.add_label("b", lab(1, 2.0, model="m2"))
    with pytest.raises(MismatchedLabel) as e:
        j.add_prediction("b", pred(1, 2.0, model="m1"))
    assert e.value.label.offset == 1 and j.pending_predictions == 2


def test_ttl_expiry_by_event_time_and_count_bound():
    j = LabelJoin(max_pending=2, ttl_seconds=10, remember_joined=10)
    j.add_prediction("a", pred(0, 0.0))
    j.add_label("x", lab(0, 1.0))
    j.add_prediction("b", pred(1, 5.0))
    assert j.expire() == ([], [])
    j.add_prediction("c", pred(2, 11.5))  # watermark 11.5 -> "a" (ts 0) and label "x" (ts 1) are too old
    preds, labels = j.expire()
    assert [k for k, _ in preds] == ["a"] and [k for k, _ in labels] == ["x"]
    j.add_prediction("d", pred(3, 12.0))  # 3 pending > max 2 -> oldest ("b") overflows
    preds, _ = j.expire()
    assert [k for k, _ in preds] == ["b"]


def test_state_round_trip_through_json():
    j = LabelJoin(10, 100, 3)
    j.add_prediction("a", pred(0, 1.0))
    j.add_label("z", lab(1, 2.0))
    for i in range(5):
        j.add_prediction(f"p{i}", pred(i + 1, 2.0))
        j.add_label(f"p{i}", lab(i + 2, 3.0))
    k = LabelJoin(10, 100, 3)
    k.load_state(orjson.loads(orjson.dumps(j.to_state())))
    assert k.to_state() == j.to_state()
    with pytest.raises(InvalidMessage):
        k.add_label("p4", lab(9, 4.0))  # remembered as joined
    assert k.add_label("a", lab(10, 4.0)).id == "a"


def test_state_written_before_the_flat_joined_lists_still_loads():
    j = LabelJoin(max_pending=10, ttl_seconds=100.0, remember_joined=5)
    old = {"watermark": 50.0, "predictions": [], "labels": [], "joined": [["a", 40.0], ["b", 45.0]]}
    j.load_state(old)
    assert j.to_state()["joined_ids"] == ["a", "b"] and j.to_state()["joined_ts"] == [40.0, 45.0]
    with pytest.raises(InvalidMessage):
        j.check_label("a")


def test_remembered_ids_are_bounded_by_count_and_forgotten_in_join_order():
    j = LabelJoin(max_pending=100, ttl_seconds=10.0, remember_joined=3)
    for i in range(5):
        j.add_prediction(f"e{i}", PendingPrediction(i, float(i), "m", 1, None, {}))
        j.add_label(f"e{i}", PendingLabel(i, float(i), "m", 1, "{}"))
    assert j.to_state()["joined_ids"] == ["e2", "e3", "e4"]
    j.check_label("e1")  # forgotten: no longer a known duplicate
    with pytest.raises(InvalidMessage):
        j.check_label("e2")
    j.add_prediction("late", PendingPrediction(9, 13.5, "m", 1, None, {}))
    j.expire()  # horizon 3.5: e2 (2.0) and e3 (3.0) are forgotten
    assert j.to_state()["joined_ids"] == ["e4"]
