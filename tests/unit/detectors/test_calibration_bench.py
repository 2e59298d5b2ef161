"""benchmarks/calibration.py: one setting end to end on a few runs, the row layout, the refusal summary."""

from __future__ import annotations

import json
import math

import numpy as np

from benchmarks import calibration as bench


def test_one_setting_measures_the_calibrated_law_and_rivers_default(capsys):
    row = bench.bench_one("PageHinkley", 0.2, 1_000, 60)
    assert row["params"]["threshold"] > 0
    assert set(row["law"]) == {"mean", "median", "p10", "within_n", "censored"}
    assert 0.6 < row["law"]["mean"] < 1.5 and row["law"]["median"] > 0.3  # 60 runs: loose
    assert row["delay"] > 0 and row["river_delay"] > 0
    for key, mean in (("delays", "delay"), ("river_delays", "river_delay")):
        stats = row[key]
        assert set(stats) == {"mean", "median", "p90", "censored"} and stats["mean"] == row[mean]
        assert 0 < stats["median"] <= stats["p90"]
    json.dumps(row)  # a --jsonl row
    bench.print_rows([row, {"detector": "HDDMA", "p": 0.2, "N": 1_000,
                            "refused": "HDDMA cannot reach a false-alarm law with mean 1000 events (...): "
                                       "warm_start at its default: median run 0.33x; use DDM"}], True)
    out = capsys.readouterr().out
    assert "| PageHinkley | 0.2 | 1,000 |" in out and "law not met: warm_start at its default: median run 0.33x" in out


def test_first_alarms_after_a_change_counts_from_the_change():
    from detectors.ddm import DDM

    delays = bench.first_alarms(DDM, 0.05, 20, 5_000, seed=1, change_at=2_000, p_after=0.6)
    assert np.isfinite(delays).all() and (delays >= 0).all() and delays.max() < 2_000
    runs = bench.first_alarms(DDM, 0.05, 20, 5_000, seed=1)
    assert (runs >= 31).all()  # DDM cannot alarm within its warm_start of 30


def test_short_reason():
    assert bench.short_reason("X: every delta in [1, 2] gives false alarms less often than every 1000 events "
                              "on this reference (at best every 9.04e+03); ask for a larger ert") == \
        "out of reach: too few alarms even at the loosest threshold (at best one every 9,040)"
    assert bench.short_reason("X: a reference ...; collect a reference of at least 5 events").startswith(
        "reference too short")
    assert not math.isnan(bench.law(np.array([1.0, 2.0, np.inf]), 1.0, 10)["mean"])


def test_delay_stats_counts_censored_delays_at_the_cap():
    delays = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, np.inf])
    stats = bench.delay_stats(delays, cap=1_000)
    assert stats == {"mean": 145.0, "median": 50.0, "p90": 90.0, "censored": 1}
    assert bench.delay_stats(np.full(3, np.inf), cap=1_000) == {"mean": 1_000.0, "median": 1_000.0,
                                                               "p90": 1_000.0, "censored": 3}


def _row(ours: dict, river: dict) -> dict:
    geometric = {"mean": 1.0, "median": 0.69, "p10": 0.105, "within_n": 0.63, "censored": 0}
    rarely = {"mean": 50.0, "median": 30.0, "p10": 5.0, "within_n": 0.01, "censored": 0}
    return {"detector": "ADWIN", "p": 0.2, "N": 100_000, "law": geometric, "river_law": rarely,
            "delays": ours, "river_delays": river, "delay": ours["mean"], "river_delay": river["mean"]}


def test_delay_verdict_is_on_the_median_not_the_mean():
    # one run in 250 absorbed the change (a false alarm just before it): it makes the mean, not the median
    one_lost_run = {"mean": 1_300.0, "median": 95.0, "p90": 300.0, "censored": 0}
    river = {"mean": 160.0, "median": 159.0, "p90": 250.0, "censored": 0}
    assert bench.verdict(_row(one_lost_run, river)) == "ok, delay ok"
    slower = {"mean": 200.0, "median": 191.0, "p90": 260.0, "censored": 0}  # a better mean, a worse median
    assert bench.verdict(_row(slower, river)) == "ok, DELAY > 1.2x"
    at_limit = {"mean": 200.0, "median": 1.2 * 159.0, "p90": 260.0, "censored": 0}
    assert bench.verdict(_row(at_limit, river)) == "ok, delay ok"
    # a slow tail is said beside the verdict, and does not change it
    slow_tail = {"mean": 2_000.0, "median": 100.0, "p90": 1.2 * 250.0 + 1, "censored": 0}
    assert bench.verdict(_row(slow_tail, river)) == "ok, delay ok, p90 > 1.2x"
    assert bench.verdict(_row(dict(slow_tail, median=200.0), river)) == "ok, DELAY > 1.2x, p90 > 1.2x"
    # River's default alarming more often than requested: no delay target
    often = _row(slower, river)
    often["river_law"] = dict(often["river_law"], within_n=0.9)
    assert bench.verdict(often) == "ok"


def test_rows_of_older_jsonl_files_print_and_are_judged_on_the_mean(capsys):
    old = _row({"mean": 0.0}, {"mean": 0.0})
    del old["delays"], old["river_delays"]
    old.update(delay=759.0, river_delay=150.0)
    assert bench.verdict(old) == "ok, DELAY > 1.2x (mean)"
    new = _row({"mean": 759.0, "median": 95.0, "p90": 280.0, "censored": 0},
               {"mean": 150.0, "median": 159.0, "p90": 240.0, "censored": 0})
    bench.print_rows([old, new], markdown=True)
    out = capsys.readouterr().out
    assert "| 759 | - | - |" in out and "| 150 | - | - | ok, DELAY > 1.2x (mean) |" in out
    assert "| 759 | 95 | 280 |" in out and "| 150 | 159 | 240 | ok, delay ok |" in out
    bench.print_rows([old, new], markdown=False)
    plain = capsys.readouterr().out.splitlines()
    assert len(plain) == 3 and plain[1].endswith("ok, DELAY > 1.2x (mean)") and plain[2].endswith("ok, delay ok")
    assert plain[1].split()[6:9] == ["759", "-", "-"] and plain[2].split()[6:9] == ["759", "95", "280"]
