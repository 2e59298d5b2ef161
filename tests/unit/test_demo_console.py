"""The demo's console off a terminal (CI logs, ``| tee``): plain lines, never wrapped; on a terminal, Rich's."""

from __future__ import annotations

import io

from prometheus_client import CollectorRegistry

from stream.tools.demo import _alarm_line, _status_line, make_console


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_lines_are_plain_and_whole(monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()
    console = make_console(buf)
    assert not console.is_terminal
    alarm = _alarm_line({"type": "drift", "kind": "concept", "model": "fraud", "partition": 3, "signal": "served_error",
                         "detector": "HDDMA", "event_id": "e-20073",
                         "statistic": {"served_error_rolling": 0.0412, "online_error_rolling": 0.05}})
    status = _status_line(CollectorRegistry(), 12000, 11000.0, 24000, 3.0, 8)
    console.print(alarm)
    console.print(status)
    console.print("x" * 300)
    lines = buf.getvalue().splitlines()
    assert lines == [
        "DRIFT concept    model=fraud p3 served_error/HDDMA   at event e-20073: served error ≈ 0.04, online model ≈ 0.05",
        "  3.0s produced   12000 · processed   11000/24000 msgs ·    3667 msg/s · served err nan · online err nan · "
        "partitions 8",
        "x" * 300,
    ]
    assert "\x1b[" not in buf.getvalue()


def test_on_a_terminal_it_is_rich_with_wrapping():
    console = make_console(_Tty())
    assert console.is_terminal and not console.soft_wrap


class _Msg:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self):
        return None

    def value(self) -> bytes:
        return self._value


class _TP:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _SlowWatcher:
    """A console consumer on a slow machine: its group join completes after the service has finished."""

    def __init__(self) -> None:
        self.polls = 0
        self.pos = -1001  # no position before the first message

    def consume(self, n, timeout):
        self.polls += 1
        if self.polls < 4:
            return []  # not assigned yet
        if self.polls == 4:
            self.pos = 2
            return [_Msg(b'{"type": "drift", "n": 1}'), _Msg(b'{"type": "drift", "n": 2}')]
        return []

    def assignment(self):
        return [] if self.polls < 4 else [_TP(0)]

    def position(self, tps):
        return [_TP(self.pos)]

    def get_watermark_offsets(self, tp, timeout):
        return 0, 2


def test_the_final_drain_waits_for_the_assignment_and_reads_to_the_end():
    # regression: the demo read the output topics once for 1 s after the service finished, and did not
    # print what it read there; on a slow CI machine every alarm came in that read and none was shown
    from stream.tools.demo import _drain

    got = _drain(_SlowWatcher(), timeout=10.0)
    assert [e["n"] for e in got] == [1, 2]


def _model_incident(i: int, kind: str = "concept", **extra):
    ev = {"type": "drift", "scope": "model", "kind": kind, "model": "fraud", "detector": "ADWIN",
          "signal": "served_error" if kind == "concept" else "amount", "partition": 1, "offset": 7,
          "ts": 1000.0 + i * 0.01, "change_point": {"ts": 1000.0 + (i - 5) * 0.01, "partitions": {
              "0": {"inference_offset": 10, "labels_offset": 9}, "1": {"inference_offset": 12, "labels_offset": 11}}},
          "contributing_partitions": {"0": {"outcomes": 3, "served_error": 0.5},
                                      "1": {"outcomes": 2, "served_error": 1.0}},
          "evidence": ["a"], "statistic": {"served_error_rolling": 0.2, "online_error_rolling": None}}
    if kind == "concept":
        ev["event_id"] = f"e-{i}"
    else:
        ev["statistic"] = 0.25
        ev["contributing_partitions"] = {"0": 150, "1": 150}
    ev.update(extra)
    return ev


def test_model_scope_lines_name_the_change_point_and_partitions():
    from stream.tools.workload import Workload

    w = Workload(n_events=100, t0=1000.0, spacing=0.01)
    inc = _model_incident(60, direction="degradation", error_before=0.05, error_after=0.512)
    assert _alarm_line(inc, w) == (
        "[bold red]DRIFT[/] concept    model=fraud scope=model served_error/ADWIN   at event e-60: served error ≈ 0.20"
        " · degradation 0.05 → 0.51 · change point event 55 (inference offsets p0:10 p1:12) · contributing partitions 2 (outcomes p0:3 p1:2)"
        " · evidence 1")
    feat = _alarm_line(_model_incident(70, "feature"), w)
    assert feat.startswith("[bold red]DRIFT[/] feature    model=fraud scope=model amount/ADWIN   at offset p1:7: "
                           "statistic 0.250 · change point event 65 ")
    assert feat.endswith("contributing partitions 2 (values p0:150 p1:150) · evidence 1")


def test_model_scope_retrain_line_covers_every_partition():
    # regression: a model-scope retrain event (window per partition, no window.from.inference_offset) crashed
    # the demo with KeyError: 'inference_offset'
    ev = {"type": "retrain", "scope": "model", "model": "fraud", "reasons": ["concept_drift"], "partition": 0,
          "window": {"source": "change_point", "from": {"ts": 1000.2}, "to": {"ts": 1000.5}, "partitions": {
              "1": {"from": {"inference_offset": 5}, "to": {"inference_offset": 9}},
              "0": {"from": {"inference_offset": None}, "to": {"inference_offset": 8}}}}}
    from stream.tools.workload import Workload

    assert _alarm_line(ev, Workload(t0=1000.0, spacing=0.01)) == (
        "[bold yellow]RETRAIN[/] model=fraud scope=model reasons=concept_drift window from change_point (event 20) "
        "to event 50 over 2 partitions (inference offsets p0:None-8 p1:5-9)")


def test_summary_counts_model_scope_only():
    from stream.tools.demo import _shown, summarize
    from stream.tools.workload import Workload

    w = Workload(n_events=1000, change_points=(300, 600), feature_shift_at=(800,), t0=1000.0, spacing=0.01)
    part = {"type": "drift", "scope": "partition", "kind": "concept", "event_id": "e-100", "ts": 1001.0}
    evs = [
        part,  # a partition's alarm before the change: evidence, not a false alarm at model scope
        _model_incident(320), _model_incident(330),  # the first one detects change 1
        _model_incident(250, "label"),  # a model-scope incident before the first change: a false alarm
        _model_incident(700),  # change 2, 100 events late
        _model_incident(790, "feature"), _model_incident(850, "feature"),  # before the shift, then 50 after it
        {"type": "retrain", "scope": "model"}, {"type": "retrain", "scope": "partition"},
    ]
    assert summarize(w, evs, 4) == {
        "partitions": 4,
        "changes": [{"at": 300, "first_detection": 320, "delay": 20}, {"at": 600, "first_detection": 700, "delay": 100}],
        "feature_shift": {"at": 800, "first_detection": 850, "delay": 50},
        "incidents": {"concept": 3, "feature": 2},
        "retrain_events": 1,
        "false_alarms": 1,
    }
    # a change nobody detected before the next one is not credited with the next one's incident
    assert summarize(w, [_model_incident(650)], 1)["changes"][0] == {"at": 300, "first_detection": None, "delay": None}
    assert not _shown(part, False) and _shown(part, True) and _shown(evs[1], False)
