"""The README's demo command runs end to end on the real stack and writes its report; its console, captured
(not a terminal), is plain lines that are never wrapped."""

from __future__ import annotations

import re

from stream.tools.cli import main

ANSI = re.compile(r"\x1b\[")


def test_demo_runs_and_writes_report(stack, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # a CI log has no width: lines must not wrap at 80
    rc = main(["demo", "--events", "6000", "--rate", "20000", "--partitions", "3", "--report", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "true change at event 2000: first detection at" in out
    assert "concept-drift detections before the first change (false alarms): 0" in out
    lines = out.splitlines()
    # the partition count comes from --partitions, and is said at the start, in the summary and the report
    assert any(line.startswith("topics demo-") and "with 3 partitions" in line and line.endswith("/s")
               for line in lines), out[:2000]
    (summary,) = [line for line in lines if line.startswith("partitions: ")]
    assert re.fullmatch(r"partitions: 3  ·  first event processed \d+\.\d s after the demo started", summary)
    # plain, unwrapped lines: every alarm and status line is whole, with no escape codes and no markup left
    assert not ANSI.search(out) and "[bold" not in out and "[dim]" not in out
    alarms = [line for line in lines if line.startswith("DRIFT ")]
    assert alarms and all(re.search(r" at (event|offset) \S+: (served error|statistic) ", a) for a in alarms)
    assert max(len(a) for a in alarms) > 100  # long enough that a wrapped console would have split them
    status = [line for line in lines if re.match(r"\s*\d+\.\ds produced ", line)]
    assert status and all(re.search(r"· online err \S+ · partitions [0-3]$", line) for line in status), status
    png, html = tmp_path / "demo.png", tmp_path / "demo.html"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = html.read_text()
    assert "data:image/png;base64," in text and "drift/concept:served_error" in text
    assert "6000 inference events over 3 partitions" in text and "first event processed" in text
    # the service really ran with three partitions: no alarm names a partition past 2
    assert {int(m) for m in re.findall(r" p(\d+) ", " ".join(alarms))} <= {0, 1, 2}
