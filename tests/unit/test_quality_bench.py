"""Smoke test of benchmarks/quality.py: scoring on hand-made alarms and one tiny configuration."""

from __future__ import annotations

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
