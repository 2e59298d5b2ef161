"""The README's demo command runs end to end on the real stack and writes its report; its console, captured
(not a terminal), is plain lines that are never wrapped; by default it shows the model-scope decisions only,
and ``--summary-json`` writes the model-scope figures."""

from __future__ import annotations

import json
import re

from stream.tools.cli import main

ANSI = re.compile(r"\x1b\[")


def test_demo_runs_and_writes_report(stack, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # a CI log has no width: lines must not wrap at 80
    rc = main(["demo", "--events", "6000", "--rate", "20000", "--partitions", "3", "--report", str(tmp_path / "demo"),
               "--summary-json", str(tmp_path / "summary.json")])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "true change at event 2000: first detection at" in out
    assert "false alarms (model-scope incidents before the first change): 0" in out
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
    # model scope only, by default: incidents with their change point over the three partitions' offsets and
    # the partitions that contributed; retrain events whose window covers every partition
    assert all(" scope=model " in a for a in alarms), alarms
    concept = [a for a in alarms if a.startswith("DRIFT concept ")]
    assert concept and all(re.search(r" · change point event \d+ \(inference offsets p0:\d+ p1:\d+ p2:\d+\) · "
                                      r"contributing partitions [1-3] \(outcomes (p[0-2]:\d+ ?)+\)", a) for a in concept)
    retrains = [line for line in lines if line.startswith("RETRAIN ")]
    assert retrains and all(" scope=model " in r and " over 3 partitions " in r for r in retrains), retrains
    assert not [line for line in lines if line.startswith("SWAP ")]  # the partitions' online models: with the flag
    status = [line for line in lines if re.match(r"\s*\d+\.\ds produced ", line)]
    assert status and all(re.search(r"· online err \S+ · partitions [0-3]$", line) for line in status), status
    png, html = tmp_path / "demo.png", tmp_path / "demo.html"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = html.read_text()
    assert "data:image/png;base64," in text and "drift/concept:served_error" in text
    assert "6000 inference events over 3 partitions" in text and "first event processed" in text
    # the service really ran with three partitions: no offset names a partition past 2
    assert {int(m) for m in re.findall(r" p(\d+):", " ".join(alarms))} == {0, 1, 2}
    # --summary-json: the model-scope figures, the same as the console's summary
    figures = json.loads((tmp_path / "summary.json").read_text())
    assert set(figures) == {"partitions", "changes", "feature_shift", "incidents", "retrain_events", "false_alarms"}
    assert figures["partitions"] == 3 and figures["false_alarms"] == 0
    assert [c["at"] for c in figures["changes"]] == [2000, 4000]
    first = figures["changes"][0]
    assert first["first_detection"] is not None and first["delay"] == first["first_detection"] - 2000 >= 0
    assert f"true change at event 2000: first detection at {first['first_detection']} (delay {first['delay']} events)" in out
    assert figures["feature_shift"]["at"] == 5000
    assert figures["incidents"]["concept"] == len(concept) and figures["incidents"]["concept"] >= 1
    assert figures["incidents"]["feature"] == sum(a.startswith("DRIFT feature ") for a in alarms)
    assert figures["retrain_events"] == len(retrains)


def test_partition_events_flag_adds_the_partitions_own_lines(stack, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    rc = main(["demo", "--events", "4500", "--rate", "20000", "--partitions", "2", "--report", str(tmp_path / "demo"),
               "--partition-events", "--summary-json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    lines = out.splitlines()
    alarms = [line for line in lines if line.startswith("DRIFT ")]
    part = [a for a in alarms if re.search(r" model=\S+ p[01] ", a)]
    model = [a for a in alarms if " scope=model " in a]
    assert part and model and len(part) + len(model) == len(alarms), alarms
    assert any(line.startswith("partition scope: true change at event 1500: first alarm of any partition at ")
               for line in lines), out[-3000:]
    assert "partition-scope events (the partitions' own signals, shown above): " in out
    figures = json.loads((tmp_path / "s.json").read_text())
    assert figures["partitions"] == 2 and [c["at"] for c in figures["changes"]] == [1500, 3000]
    # the figures are counted at model scope: the partitions' alarms are not incidents
    assert figures["incidents"]["concept"] == sum(a.startswith("DRIFT concept ") for a in model) < len(
        [a for a in alarms if a.startswith("DRIFT concept ")])
