"""Calibration to a target false-alarm rate: the calibrated detector's mean run length to a false alarm,
measured on fresh independent stationary streams, is within 20% of the requested ERT."""

from __future__ import annotations

import doctest
import functools
import math
import subprocess
import sys

import numpy as np
import pytest

from detectors import calibrate as calibrate_module
from detectors.calibrate import Calibration, CalibrationError, Tunable, calibrate
from detectors.hddm_w import HDDM_W
from detectors.page_hinkley import PageHinkley

ERT = 2_000
N_CHECK_RUNS = 1_000  # independent runs; the mean's relative standard error is ~1/sqrt(1000) ~ 3%


def gaussian(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def bernoulli_02(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random(n) < 0.2).astype(np.float64)


def mean_run_length(new_detector, draw, n_runs: int, seed: int, ert: float) -> float:
    """Mean number of events until the first alarm of a fresh detector, each run on a fresh stream."""
    lengths = []
    for run in range(n_runs):
        rng = np.random.default_rng([seed, run])
        det, seen = new_detector(), 0
        while True:
            xs = draw(rng, int(10 * ert))
            alarms = det.update_many(xs)
            if alarms.size:
                lengths.append(seen + int(alarms[0]) + 1)
                break
            seen += xs.size
            assert seen < 1_000 * ert, "no alarm in 1000 ERTs: calibration is far off"
    return float(np.mean(lengths))


@pytest.mark.parametrize(
    ("factory", "reference", "draw"),
    [
        (PageHinkley, np.random.default_rng(2024).standard_normal(20_000), gaussian),
        # an error stream at rate 0.2 exactly
        (HDDM_W, np.random.default_rng(2024).permutation(np.arange(5_000) < 1_000).astype(float),
         bernoulli_02),
    ],
    ids=["PageHinkley-gaussian", "HDDM_W-bernoulli"],
)
def test_calibrated_mean_run_length_is_within_20_percent_of_ert(factory, reference, draw):
    # the references have exactly the stream's rate: the short-reference check (test_calibrate_law) is off
    cal = calibrate(factory, reference, ERT, seed=11, n_runs=400, reference_check=False)
    assert cal.estimated_ert == pytest.approx(ERT, rel=0.2)
    measured = mean_run_length(cal.new, draw, N_CHECK_RUNS, seed=90_210, ert=ERT)
    print(f"{cal}: requested ERT {ERT}, measured {measured:.0f} over {N_CHECK_RUNS} runs")
    assert measured == pytest.approx(ERT, rel=0.2)
    # and the default threshold is not already there by chance: calibration moved it
    default = getattr(factory(), cal.param)
    assert not math.isclose(cal.value, default, rel_tol=0.05)


def test_calibration_result_and_factory():
    ref = np.random.default_rng(3).standard_normal(5_000)
    factory = functools.partial(PageHinkley, min_instances=50)
    cal = calibrate(factory, ref, 500, seed=4, n_runs=100)
    assert isinstance(cal, Calibration)
    assert (cal.detector, cal.param, cal.target_ert, cal.seed) == ("PageHinkley", "threshold", 500.0, 4)
    assert 100 <= cal.n_runs <= 800  # at least those asked for, more if the runs are spread
    det = cal.new()
    assert isinstance(det, PageHinkley)
    assert det.threshold == cal.value and det.min_instances == 50
    with pytest.raises(AttributeError):
        cal.value = 1.0  # frozen


def test_larger_ert_gives_a_stricter_threshold():
    ref = np.random.default_rng(3).standard_normal(5_000)
    low = calibrate(PageHinkley, ref, 300, seed=1, n_runs=100)
    high = calibrate(PageHinkley, ref, 3_000, seed=1, n_runs=100)
    assert high.value > low.value
    errors = np.random.default_rng(3).permutation(np.arange(2_000) < 300).astype(float)
    low_w = calibrate(HDDM_W, errors, 300, seed=1, n_runs=100, reference_check=False)
    high_w = calibrate(HDDM_W, errors, 3_000, seed=1, n_runs=100, reference_check=False)
    assert high_w.value < low_w.value  # a significance level: smaller is stricter


def test_same_seed_same_value_and_other_seed_other_simulation():
    ref = np.random.default_rng(8).standard_normal(3_000)
    a = calibrate(PageHinkley, ref, 1_000, seed=5, n_runs=100)
    b = calibrate(PageHinkley, ref, 1_000, seed=5, n_runs=100)
    c = calibrate(PageHinkley, ref, 1_000, seed=6, n_runs=100)
    assert a == b and a.value == b.value and a.estimated_ert == b.estimated_ert
    assert (c.value, c.estimated_ert) != (a.value, a.estimated_ert)


@pytest.mark.parametrize("ert", [0, -5, float("nan"), float("inf"), "many"])
def test_bad_ert(ert):
    with pytest.raises(CalibrationError, match="ert"):
        calibrate(PageHinkley, np.zeros(10), ert)


def test_bad_reference():
    with pytest.raises(CalibrationError, match="empty"):
        calibrate(PageHinkley, [], 1_000)
    with pytest.raises(CalibrationError, match="non-finite"):
        calibrate(PageHinkley, [0.1, float("nan"), 0.3], 1_000)
    with pytest.raises(CalibrationError, match="1-D"):
        calibrate(PageHinkley, np.zeros((3, 3)), 1_000)
    with pytest.raises(CalibrationError, match=r"\[0, 1\]"):
        calibrate(HDDM_W, [0.0, 2.0, 1.0], 1_000)


def test_bad_param_and_unreachable_target():
    ref = np.random.default_rng(0).standard_normal(1_000)
    with pytest.raises(CalibrationError, match="Tunable"):
        calibrate(PageHinkley, ref, 1_000, param="delta")
    with pytest.raises(CalibrationError, match="n_runs"):
        calibrate(PageHinkley, ref, 1_000, n_runs=0)
    with pytest.raises(ValueError):
        Tunable("threshold", "up", 1.0, 2.0)
    # threshold confined to [1e3, 1e4] never alarms within a few hundred events on N(0, 1)
    with pytest.raises(CalibrationError, match="larger ert"):
        calibrate(PageHinkley, ref, 200, param=Tunable("threshold", "smaller", 1e3, 1e4), n_runs=20)
    # an error-free reference: no threshold makes HDDM_W alarm
    with pytest.raises(CalibrationError, match="larger ert"):
        calibrate(HDDM_W, np.zeros(500), 1_000, n_runs=20, reference_check=False)


def test_explicit_tunable_is_used():
    ref = np.random.default_rng(0).standard_normal(2_000)
    cal = calibrate(PageHinkley, ref, 3_000, param=Tunable("delta", "smaller", 1e-4, 10.0), n_runs=100)
    assert cal.param == "delta" and cal.new().delta == cal.value
    assert cal.estimated_ert == pytest.approx(3_000, rel=0.3)


def test_module_imports_numpy_only():
    code = ("import sys, detectors.calibrate; "
            "print(sorted(m for m in ('river', 'scipy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_doctest():
    result = doctest.testmod(calibrate_module)
    assert result.attempted > 0 and result.failed == 0
