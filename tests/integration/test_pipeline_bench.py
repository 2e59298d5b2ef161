"""Smoke test of ``benchmarks/pipeline.py``: the ceiling and driftstream variants on a tiny workload.

The Quix baseline only in a short second test (it needs the bench extra), and never a check of speed: only that every variant consumed
exactly every input message in each of two rounds, and that the tables have a row for each of them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.conftest import REPO

VARIANTS = ("ceiling", "driftstream", "driftstream-nockpt", "driftstream-no-model")
ROWS = ("1 ceiling", "2 driftstream default config", "2b driftstream no ckpt", "3 driftstream model off")


def test_pipeline_benchmark_consumes_every_message(stack, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pipeline.py"), "--events", "5000", "--variants",
         ",".join(VARIANTS), "--no-resume", "--timeout", "180", "--rounds", "2", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["expect"] == 2 * 5000  # every inference event has its label
    assert set(result["variants"]) == set(VARIANTS)
    for name, v in result["variants"].items():
        assert v["consumed"] == result["expect"], f"{name} consumed {v['consumed']} of {result['expect']}"
        assert v["exit_code"] == 0
    for name, runs in result["rounds"].items():  # two rounds, each with groups of its own, each complete
        assert len(runs) == 2 and all(r["consumed"] == result["expect"] for r in runs), name
        assert f"events/s of each round, {ROWS[VARIANTS.index(name)]}" in proc.stdout
    table_rows = {line.split("  ")[0].strip() for line in proc.stdout.splitlines()}
    for row in ROWS:
        assert row in table_rows, f"row {row!r} missing from the table:\n{proc.stdout}"
    assert "checkpoint overhead" in proc.stdout
    for name in ("driftstream", "driftstream-nockpt", "driftstream-no-model"):  # the service's own thread
        main = result["variants"][name]["extra"]["main_thread_cpu_seconds"]
        assert 0 < main <= result["variants"][name]["cpu_seconds"]
        assert result["variants"][name]["cpu_per_million"] > 0 and result["variants"][name]["rate"] > 0
    assert "service thread CPU, 2 driftstream default config" in proc.stdout
    assert "2 / 3 CPU per event (default config vs model off)" in proc.stdout
    assert result["ratios"]["cpu_default_over_no_model"] > 0
    assert "cleanup: deleted" in proc.stderr


def test_quix_variants_with_and_without_the_model_consume_every_message(stack, tmp_path):
    import quixstreams  # noqa: F401  (the test extra installs the baseline: missing, this fails rather than skips)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pipeline.py"), "--events", "2000", "--variants",
         "driftstream,quix,quix+model", "--no-resume", "--timeout", "180", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("quix", "quix+model"):
        v = result["variants"][name]
        assert v["consumed"] == result["expect"] == 2 * 2000, name
        assert v["extra"]["joined"] == 2000
    assert result["variants"]["quix+model"]["extra"]["models"] == 8  # one per (partition, model)
    assert "models" not in result["variants"]["quix"]["extra"]
    assert result["ratios"]["cpu_quix_model_over_default"] > 0
    assert "5 / 2 CPU per event (Quix + River + model vs default config)" in proc.stdout
