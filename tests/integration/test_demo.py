"""The README's demo command runs end to end on the real stack and writes its report."""

from __future__ import annotations

from stream.tools.cli import main


def test_demo_runs_and_writes_report(stack, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    rc = main(["demo", "--events", "6000", "--rate", "20000", "--report", str(tmp_path / "demo")])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "true change at event 2000: first detection at" in out
    assert "concept-drift detections before the first change (false alarms): 0" in out
    png, html = tmp_path / "demo.png", tmp_path / "demo.html"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = html.read_text()
    assert "data:image/png;base64," in text and "drift/concept:served_error" in text
