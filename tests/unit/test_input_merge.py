"""The two-topic merge's silence timer (the zombie test's 4-in-240k differing online predictions).

An input counts as silent after ``max_idle_wait_seconds`` without records. The timer was reset only when a
release left records of that input buffered: an input whose records all went out in every release (the
usual case while catching up in small fetches) kept the time it first ran empty, so at the end of a backlog
(at most IDLE_BACKLOG_SLACK messages left) the other input was drained ahead of it and the last predictions
were made before labels that precede them in event time."""

from __future__ import annotations

from stream.events import Record
from stream.merge import InputMerge

INF, LAB = "inference", "labels"


def _rec(topic: str, offset: int, ts_ms: int) -> Record:
    return Record(topic, 0, offset, ts_ms, b"k", b"{}")


def test_an_input_that_keeps_delivering_is_never_silent():
    m = InputMerge(INF, LAB, max_idle_wait_seconds=2.0)
    backlog = {INF: 10, LAB: 50}

    def caught_up(topic: str) -> bool:
        return backlog[topic] == 0

    now, released = 0.0, []
    m.add(_rec(LAB, 0, 0))
    released += m.release(caught_up, now, backlog.get)
    # inference arrives one record at a time, every second, and each goes out at once (labels lead it)
    for i in range(10):
        now += 1.0
        m.add(_rec(LAB, i + 1, 1000 * (i + 2)))
        m.add(_rec(INF, i, 1000 * (i + 1)))
        released += m.release(caught_up, now, backlog.get)
        assert m.buffered(INF) == 0
    # 10 s after inference first ran empty, with labels buffered and a few inference messages still to come:
    # inference is not silent (it delivered a second ago), so the labels wait
    waiting = m.buffered(LAB)
    assert waiting == 2
    assert m.release(caught_up, now + 1.5, backlog.get) == []
    # really silent for max_idle_wait_seconds with a small backlog (a transaction marker): labels go
    assert [r.offset for r in m.release(caught_up, now + 2.5, backlog.get)] == [9, 10]


def test_merge_order_is_by_timestamp_then_inference_first():
    m = InputMerge(INF, LAB, max_idle_wait_seconds=2.0)
    for r in (_rec(INF, 0, 5), _rec(INF, 1, 7), _rec(LAB, 0, 5), _rec(LAB, 1, 6)):
        m.add(r)
    out = m.release(lambda t: True, 0.0)
    assert [(r.topic, r.offset) for r in out] == [(INF, 0), (LAB, 0), (LAB, 1), (INF, 1)]
