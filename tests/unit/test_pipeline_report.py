"""The pipeline benchmark's summary of repeated rounds (pure parts; the runs themselves are in
tests/integration/test_pipeline_bench.py)."""

from __future__ import annotations

from benchmarks.pipeline import VariantResult, median_run, report


def _run(variant: str, seconds: float | None, consumed: int = 1000) -> VariantResult:
    return VariantResult(variant=variant, consumed=consumed, seconds=seconds, cpu_seconds=1.0, peak_rss_mib=100.0,
                         start_seconds=0.5, exit_code=0, extra={})


def test_median_run_is_the_middle_window_and_an_unfinished_run_counts_as_slowest():
    runs = [_run("driftstream", 3.0), _run("driftstream", 1.0), _run("driftstream", 2.0)]
    assert median_run(runs).seconds == 2.0
    assert median_run([_run("quix", 2.0), _run("quix", 1.0)]).seconds == 1.0  # the lower of two
    assert median_run([_run("quix", None), _run("quix", 5.0), _run("quix", 4.0)]).seconds == 5.0


def test_report_compares_medians_and_lists_every_round():
    rounds = {"ceiling": [_run("ceiling", 1.0), _run("ceiling", 1.0), _run("ceiling", 1.0)],
              "driftstream": [_run("driftstream", 2.0), _run("driftstream", 8.0), _run("driftstream", 4.0)]}
    medians = {v: median_run(rs) for v, rs in rounds.items()}
    text = report(medians, 1000, 500, None, {}, markdown=True, rounds=rounds)
    assert "| 2 / 1 (driftstream vs ceiling) | 25% |" in text  # 1000/4 s against 1000/1 s
    assert "| events/s of each round, 2 driftstream | 0.5k, 0.1k, 0.2k (median in the tables) |" in text
    assert "events/s of each round, 1 ceiling" in text
