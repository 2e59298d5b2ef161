"""Smoke test of benchmarks/quality.py: scoring on hand-made alarms and one tiny configuration."""

from __future__ import annotations

import io

import numpy as np
import pytest

from benchmarks import quality
from benchmarks.quality_streams import STREAMS, tolerance


def test_score_counts_first_alarm_in_window_as_tp_and_everything_else_as_fp():
    drifts, tol = (100, 500), 50
    s = quality.score([10, 120, 130, 560, 700], drifts, tol)
    assert (s.tp, s.fp, s.fn, s.delays) == (1, 4, 1, [20])
    # the window is [drift, drift + tol): an alarm on the drift counts, one at drift + tol does not
    s = quality.score([500, 150], drifts, tol)
    assert (s.tp, s.fp, s.fn, s.delays) == (1, 1, 1, [0])
    s = quality.score([], drifts, tol)
    assert (s.tp, s.fp, s.fn) == (0, 0, 2) and np.isnan(s.mean_delay)
    # one alarm cannot detect two drifts whose windows overlap
    s = quality.score([105], (100, 104), 50)
    assert (s.tp, s.fp, s.fn, s.delays) == (1, 0, 1, [5])


def test_scores_add_up_over_runs():
    total = quality.Score()
    total.add(quality.score([120], (100,), 50))
    total.add(quality.score([140, 900], (100,), 50))
    assert (total.tp, total.fp, total.fn) == (2, 1, 0)
    assert total.mean_delay == pytest.approx(30.0)


def test_streams_are_seeded_and_drift_where_they_say():
    a, b = STREAMS["Sine1"](5_000, 3), STREAMS["Sine1"](5_000, 3)
    assert a.ys == b.ys and a.xs == b.xs and a.drifts == (1_000, 2_000, 3_000, 4_000)
    assert STREAMS["Sine1"](5_000, 4).ys != a.ys
    assert tolerance(a) == 250
    c = STREAMS["Circles"](5_000, 3)
    assert c.kind == "gradual" and tolerance(c) == c.width + 250 == 750
    assert c.drifts == tuple(d - 250 for d in (1_000, 2_000, 3_000, 4_000))


def test_tiny_run_ours_equals_river_and_error_stream_is_cached():
    cache = quality.ErrorStreams("nb")
    result = quality.run_one("Sine1", 0, 5_000, ["ADWIN", "DDM"], "nb", None, cache=cache)
    _, errors = cache.get("Sine1", 5_000, 0)
    assert cache.get("Sine1", 5_000, 0)[1] is errors  # computed once
    assert set(np.unique(errors)) <= {0.0, 1.0} and 0.05 < errors.mean() < 0.95
    for name in ("ADWIN", "DDM"):
        ours, river = result.alarms[name]
        np.testing.assert_array_equal(ours, river)
    # the reversal at 1000 sends the error rate up: ADWIN sees it
    rows = quality.summarize([result], ["ADWIN", "DDM"])
    adwin = next(r for r in rows if r.detector == "ADWIN")
    assert adwin.same and adwin.ours.tp >= 1 and adwin.runs == 1
    header, body = quality.table(rows, None)
    assert len(body) == 2 and body[0][-1] == "yes" and len(body[0]) == len(header)


def test_disk_cache_resumes_with_the_results_of_an_uncached_run(tmp_path, monkeypatch):
    args = (["Sine1", "Circles"], [0, 1], 3_000, ["ADWIN", "KSWIN", "FHDDM"], "nb", 1_000.0)
    fresh = quality.run_all(*args, jobs=1, cache_dir=None, progress=None)
    # an "interrupted" run: only seed 0 reached the disk
    quality.run_all(args[0], [0], *args[2:], jobs=1, cache_dir=tmp_path, progress=None)
    written = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert len(written) == 2 * (1 + 3 + 2)  # per stream: errors, River x3, calibrated x2 (not KSWIN)
    progress = io.StringIO()
    resumed = quality.run_all(*args, jobs=1, cache_dir=tmp_path, progress=progress)
    assert len(list(tmp_path.glob("*.npz"))) == 2 * len(written)
    assert progress.getvalue().count("tasks done") == 4 and "4/4 tasks done" in progress.getvalue()
    # and a third run computes nothing that is on disk: the learner and River are not called again
    monkeypatch.setattr(quality, "prequential_errors", _must_not_run)
    monkeypatch.setattr(quality, "river_positions", _must_not_run)
    monkeypatch.setattr(quality, "calibrated_positions", _must_not_run)
    again = quality.run_all(*args, jobs=1, cache_dir=tmp_path, progress=None)
    for got in (resumed, again):
        assert [(r.stream, r.seed) for r in got] == [(r.stream, r.seed) for r in fresh]
        for a, b in zip(fresh, got):
            assert (a.drifts, a.tol, a.error_rate) == (b.drifts, b.tol, b.error_rate)
            for name in args[3]:
                np.testing.assert_array_equal(a.alarms[name][0], b.alarms[name][0])
                np.testing.assert_array_equal(a.alarms[name][1], b.alarms[name][1])
            assert a.calibrated.keys() == b.calibrated.keys()
            for name, cal in a.calibrated.items():
                if cal is None:
                    assert b.calibrated[name] is None
                else:
                    np.testing.assert_array_equal(cal[0], b.calibrated[name][0])
                    assert cal[1:] == b.calibrated[name][1:]
    assert quality.table(quality.summarize(fresh, args[3]), 1_000.0) == \
        quality.table(quality.summarize(again, args[3]), 1_000.0)


def test_cache_keys_change_with_what_the_result_depends_on(tmp_path):
    cache = quality.ResultCache(tmp_path)
    nb, ht = quality.ErrorStreams("nb", cache), quality.ErrorStreams("ht", cache)
    keys = [nb.key("Sine1", 1_000, 0), nb.key("Sine1", 1_000, 1), nb.key("Sine1", 2_000, 0),
            nb.key("Sine2", 1_000, 0), ht.key("Sine1", 1_000, 0)]
    assert len({cache._path(k) for k in keys}) == len(keys)
    assert {"river", "numpy", "scipy", "streams_code", "version"} <= keys[0].keys()
    cache.save(keys[0], {"x": np.arange(3)})
    np.testing.assert_array_equal(cache.load(keys[0])["x"], np.arange(3))
    assert cache.load(keys[1]) is None
    assert (tmp_path / ".gitignore").read_text() == "*\n"
    assert not list(tmp_path.glob("*.tmp"))


def _must_not_run(*args, **kwargs):
    raise AssertionError("recomputed a piece that is on disk")


def test_river_kswin_on_fewer_seeds_is_scored_over_those_runs_only():
    results = quality.run_all(["Sine1"], [0, 1, 2], 3_000, ["KSWIN", "DDM"], "nb", None, jobs=1,
                              progress=None, river_kswin_seeds=1)
    assert [r.alarms["KSWIN"][1] is None for r in results] == [False, True, True]
    assert all(r.alarms["DDM"][1] is not None for r in results)
    rows = {r.detector: r for r in quality.summarize(results, ["KSWIN", "DDM"])}
    assert (rows["KSWIN"].runs, rows["KSWIN"].river_runs) == (3, 1)
    assert (rows["DDM"].runs, rows["DDM"].river_runs) == (3, 3)
    one = quality.summarize(results[:1], ["KSWIN"])[0]
    assert (rows["KSWIN"].river.tp, rows["KSWIN"].river.fp) == (one.river.tp, one.river.fp)
    _, body = quality.table(list(rows.values()), None)
    assert body[0][-1] == "yes (1 of 3 runs)" and body[1][-1] == "yes"


def test_calibration_cache_key_follows_the_detector_source_it_runs():
    code = {name: quality._detector_code(name) for name in quality.DETECTORS}
    assert len(set(code.values())) == len(code)  # each detector's own module is in its hash
    assert code == {name: quality._detector_code(name) for name in quality.DETECTORS}
    # the kernels are imported lazily (inside methods); they still count
    assert quality._fingerprint(*(quality._ROOT / "detectors" / f for f in (
        "_adwin_kernel.py", "adwin.py", "base.py", "calibrate.py"))) == code["ADWIN"]
