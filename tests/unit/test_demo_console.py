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
