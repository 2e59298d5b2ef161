"""Calibration controls the run-length law (issue 19): mean on target *and* median / 10th percentile of a sane
law, measured on fresh independent streams; refusals are typed and say what to use instead; every
candidate stays in the detector's valid range; short references and re-calibration."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from detectors import detector_class
from detectors.calibrate import (
    TUNABLE,
    Calibration,
    CalibrationError,
    ReferenceTooShort,
    Tunable,
    calibrate,
    recalibrate,
)
from detectors.ddm import DDM
from detectors.eddm import EDDM
from detectors.page_hinkley import PageHinkley

N_CHECK = 1_000  # fresh runs per check: the mean's relative error is ~ CV / 32, 3-7% here


def exact_reference(p: float, size: int = 200_000, seed: int = 1) -> np.ndarray:
    ref = np.zeros(size)
    ref[: int(round(p * size))] = 1.0
    return np.random.default_rng(seed).permutation(ref)


def fresh_runs(new, p: float, n_runs: int, cap: int, seed: int = 4242) -> np.ndarray:
    """Events to the first alarm of a fresh detector on independent Bernoulli(p) streams (inf: none by cap)."""
    out = np.full(n_runs, math.inf)
    for run in range(n_runs):
        rng = np.random.default_rng([seed, run])
        det, seen, size = new(), 0, 512
        while seen < cap:
            size = min(size, cap - seen)
            alarms = det.update_many((rng.random(size) < p).astype(np.float64))
            if alarms.size:
                out[run] = seen + int(alarms[0]) + 1
                break
            seen += size
            size *= 2
    return out


def law(lengths: np.ndarray, n: float, cap: int) -> tuple[float, float, float]:
    alarms = np.isfinite(lengths).sum()
    mean = np.minimum(lengths, cap).sum() / alarms
    q = lambda x: float(np.quantile(lengths, x, method="inverted_cdf"))  # noqa: E731
    return mean / n, q(0.5) / n, q(0.1) / n


@pytest.mark.parametrize(("name", "p", "ert"), [
    ("DDM", 0.05, 1_000),  # needs its warm-up calibrated (River's 30 gives a median of ~0.02 N)
    ("DDM", 0.2, 2_000),
    ("PageHinkley", 0.05, 1_000),
    ("HDDMW", 0.2, 1_000),
])
def test_calibrated_law_on_fresh_streams(name, p, ert):
    cal = calibrate(detector_class(name), exact_reference(p), ert, seed=3, n_runs=200)
    mean, median, p10 = law(fresh_runs(cal.new, p, N_CHECK, 20 * ert), ert, 20 * ert)
    print(f"{cal}: measured mean {mean:.2f} N, median {median:.2f} N, p10 {p10:.3f} N")
    assert 0.8 <= mean <= 1.2
    assert median >= 0.4
    assert p10 >= 0.04
    assert cal.median_run >= 0.5 * ert and cal.p10_run >= 0.05 * ert  # what calibrate itself checked


def test_eddm_is_refused_where_its_mean_would_be_set_by_the_horizon():
    # EDDM's statistic accumulates over the whole run: at every warm-up tried, a few percent of its runs
    # never alarm within 20 N (a geometric law: ~2e-9), so a mean "on target" was where the horizon cut them
    # (measured at p = 0.2, N = 100,000: 1.2x at 20 N, 2.9x at 100 N). It used to be accepted here at
    # warm_start = 120 with 1.2% of the runs censored; now refused, naming the reason and what to use instead
    with pytest.raises(CalibrationError) as info:
        calibrate(EDDM, exact_reference(0.2), 1_000, seed=3, n_runs=200)
    msg = str(info.value)
    assert info.value.detector == "EDDM" and "without an alarm at the horizon" in msg
    assert "DDM" in (info.value.suggestion or "")
    # ... and that is what fresh streams show at the parameters it would have taken
    det = lambda: EDDM(warm_start=120, beta=0.93, alpha=0.95)  # noqa: E731
    runs = fresh_runs(det, 0.2, 400, 20_000)
    assert np.isinf(runs).mean() > 0.0  # some runs of 20 N never alarm


def test_the_law_verdict_counts_runs_censored_at_the_horizon():
    from detectors.calibrate import _Found, _law_verdict, max_censored

    assert max_censored(20_000, 1_000) == pytest.approx(0.005)  # they may add at most 10% to the mean

    def found(censored: float) -> _Found:
        return _Found(value=1.0, warm_up=None, ert=1000.0, median=700.0, p10=100.0, t=0.0, runs=1000,
                      censored=censored)

    assert _law_verdict(found(0.004), 1000.0, 20_000) is None
    assert "without an alarm at the horizon" in _law_verdict(found(0.006), 1000.0, 20_000)
    assert _law_verdict(found(0.006), 1000.0, 10_000) is None  # each cut run counts for less at a shorter horizon


def test_ddm_warm_up_is_what_fixes_its_law():
    """At River's warm-up of 30, a DDM whose mean run is on target alarms within a few percent of N in most
    runs; calibration therefore calibrates the warm-up, and refuses if told not to."""
    ref = exact_reference(0.05)
    with pytest.raises(CalibrationError) as info:
        calibrate(DDM, ref, 1_000, seed=3, warm_up=False, n_runs=100)
    assert info.value.detector == "DDM" and "median run" in str(info.value)
    cal = calibrate(DDM, ref, 1_000, seed=3, n_runs=100)
    assert cal.warm_up is not None and cal.warm_up[0] == "warm_start" and cal.warm_up[1] > 30
    det = cal.new()
    assert det.warm_start == cal.warm_up[1] and det.drift_threshold == cal.value
    assert cal.params == {"drift_threshold": cal.value, "warm_start": cal.warm_up[1]}


def test_refusal_is_typed_and_names_detector_setting_and_alternative():
    with pytest.raises(CalibrationError) as info:
        calibrate(detector_class("HDDMA"), exact_reference(0.2), 1_000, seed=0)
    err = info.value
    assert isinstance(err, ValueError)  # callers that catch ValueError keep working
    assert err.detector == "HDDMA"
    assert err.setting["ert"] == 1_000 and err.setting["reference_rate"] == pytest.approx(0.2)
    assert err.suggestion and "HDDM_W" in err.suggestion
    assert "HDDMA" in str(err) and "1000" in str(err) and "0.2" in str(err)


def test_eddm_high_error_rate_no_longer_crashes_and_stays_in_range():
    """Issue 19's crash: EDDM, false_alarm_every=20000, error rate ~0.4: the widening step tried beta > alpha
    and the constructor raised a bare ValueError. Every candidate must now be a valid EDDM."""
    built: list[dict] = []

    def factory(**kw):
        built.append(kw)
        return EDDM(**kw)  # raises ValueError if alpha < beta

    try:
        cal = calibrate(factory, exact_reference(0.4), 20_000, seed=0, n_runs=20, horizon=60_000,
                        reference_check=False)
    except CalibrationError as exc:  # a refusal is fine, a crash is not
        assert exc.detector == "EDDM"
    else:
        assert cal.new().alpha >= cal.new().beta
    for kw in built[1:]:  # the first call is the probe with the defaults
        assert 1e-3 <= kw["beta"] <= 1.0 and kw.get("alpha", 0.95) >= kw["beta"]


@pytest.mark.parametrize("name", ["PageHinkley", "DDM", "HDDMW", "EDDM"])
def test_every_candidate_is_inside_the_tunable_bounds(name):
    cls, tunable = detector_class(name), TUNABLE[name]
    seen: list[float] = []

    def factory(**kw):
        if tunable.name in kw:
            seen.append(kw[tunable.name])
        return cls(**kw)

    try:
        calibrate(factory, exact_reference(0.1, 20_000), 500, seed=1, n_runs=40, reference_check=False)
    except CalibrationError:
        pass
    assert seen and all(tunable.low <= v <= tunable.high for v in seen)


def test_constructor_failure_becomes_calibration_error():
    def picky(**kw):
        if kw.get("threshold", 50.0) < 20.0:
            raise RuntimeError("no thresholds under 20 here")
        return PageHinkley(**kw)

    with pytest.raises(CalibrationError, match="refused") as info:
        calibrate(picky, np.random.default_rng(0).standard_normal(2_000), 500, n_runs=20)
    assert isinstance(info.value.__cause__, RuntimeError)

    def broken(**kw):
        raise TypeError("cannot build")

    with pytest.raises(CalibrationError, match="cannot build"):
        calibrate(broken, np.zeros(100), 500)


@pytest.mark.parametrize("bad", [
    dict(reference=[], ert=100), dict(reference=[0.0, float("nan")], ert=100), dict(reference=np.zeros(10), ert=-1),
    dict(reference=np.zeros(10), ert="x"), dict(reference=np.zeros((2, 2)), ert=100),
])
def test_bad_inputs_raise_only_calibration_error(bad):
    with pytest.raises(CalibrationError):
        calibrate(DDM, bad["reference"], bad["ert"])


def test_unreachable_targets_are_calibration_errors():
    # ADWIN checks every 32 events at least 10 in: even delta=1 alarms less often than every 100 events
    with pytest.raises(CalibrationError, match="larger ert") as info:
        calibrate(detector_class("ADWIN"), exact_reference(0.2, 20_000), 100, n_runs=20, reference_check=False)
    assert info.value.suggestion == "ask for a larger ert"


def test_short_reference_is_refused_with_the_length_it_needs():
    """The service's first 2,000 joined events at p=0.05 pin the rate within +-23% (98%); that moves a
    PageHinkley threshold's ERT by more than 25%: refuse, and say how long the reference must be."""
    rng = np.random.default_rng(7)
    short = (rng.random(300) < 0.05).astype(float)
    with pytest.raises(ReferenceTooShort) as info:
        calibrate(PageHinkley, short, 2_000, seed=0)
    err = info.value
    assert isinstance(err, CalibrationError) and err.detector == "PageHinkley"
    assert err.needed_reference > short.size and str(err.needed_reference) in str(err)
    # the service extends its window to the length asked for (the new reference's own rate can ask for a
    # little more): it converges in a round or two
    sizes = [short.size]
    for _ in range(3):
        sizes.append(err.needed_reference)
        longer = (rng.random(err.needed_reference) < 0.05).astype(float)
        try:
            cal = calibrate(PageHinkley, longer, 2_000, seed=0)
            break
        except ReferenceTooShort as again:
            err = again
    else:
        pytest.fail(f"still too short after extending to {sizes}")
    assert cal.reference_size == sizes[-1] and sizes == sorted(sizes) and len(sizes) <= 3
    # and the check can be turned off (the caller then owns the risk)
    assert isinstance(calibrate(PageHinkley, short, 2_000, seed=0, reference_check=False), Calibration)


def test_self_normalising_ddm_accepts_the_services_2000_event_reference_and_holds_its_law():
    """DDM's test is in units of its own standard deviation: the rate's estimation error barely moves its
    ERT, so a 2,000-event reference at p=0.05 is enough. Checked on several such references."""
    ert, p = 2_000, 0.05
    means = []
    for seed in range(2):
        ref = (np.random.default_rng([99, seed]).random(2_000) < p).astype(float)
        cal = calibrate(DDM, ref, ert, seed=seed, n_runs=200)
        mean, median, _ = law(fresh_runs(cal.new, p, 600, 20 * ert, seed=seed), ert, 20 * ert)
        means.append(mean)
        assert median >= 0.4
    print("measured mean / requested on 2,000-event references:", [round(m, 2) for m in means])
    assert all(0.75 <= m <= 1.25 for m in means)


def test_zero_error_reference_is_too_short():
    with pytest.raises(ReferenceTooShort) as info:
        calibrate(PageHinkley, np.zeros(500), 1_000, n_runs=20)
    assert info.value.needed_reference == 1_000


def test_recalibrate_after_a_change_uses_the_new_concept_and_keeps_the_request():
    factory = functools.partial(PageHinkley, min_instances=40)
    before = calibrate(factory, exact_reference(0.05, 50_000), 1_000, seed=2, n_runs=200)
    after = recalibrate(before, exact_reference(0.3, 50_000))
    assert (after.target_ert, after.seed, after.param) == (before.target_ert, before.seed, before.param)
    assert after.reference_rate == pytest.approx(0.3) and after.value > before.value  # more variance
    det = after.new()
    assert det.min_instances == 40 and det.threshold == after.value
    mean, median, _ = law(fresh_runs(after.new, 0.3, 600, 20_000), 1_000, 20_000)
    assert 0.8 <= mean <= 1.2 and median >= 0.4
    assert recalibrate(before, exact_reference(0.3, 50_000), ert=2_000).target_ert == 2_000


def test_as_dict_is_plain_data_and_deterministic():
    cal = calibrate(DDM, exact_reference(0.2, 50_000), 1_000, seed=5, n_runs=100)
    d = cal.as_dict()
    assert d["params"] == cal.params and d["warm_up"] == list(cal.warm_up)
    import json

    assert json.loads(json.dumps(d)) == d
    assert calibrate(DDM, exact_reference(0.2, 50_000), 1_000, seed=5, n_runs=100) == cal


def test_tunable_validation():
    with pytest.raises(ValueError):
        Tunable("x", "larger", 1.0, 1.0)
    with pytest.raises(ValueError):
        Tunable("x", "larger", 0.1, 1.0, warm_up_counts="minutes")


def test_a_law_that_fails_is_never_returned_when_a_longer_warm_up_is_out_of_reach():
    """Regression: the warm-up search stopped at the first warm-up that was out of reach (too few alarms)
    and returned the previous, failing candidate instead of refusing."""
    ref = exact_reference(0.5)
    try:
        cal = calibrate(detector_class("HDDMA"), ref, 1_000, seed=0, n_runs=100)
    except CalibrationError:
        return
    assert cal.median_run >= 0.5 * 1_000 and cal.p10_run >= 0.05 * 1_000
