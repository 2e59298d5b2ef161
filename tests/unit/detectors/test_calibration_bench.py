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
