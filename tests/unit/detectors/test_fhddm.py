"""FHDDM-specific tests: its River quirks, parameter validation and doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation) is in
test_contract.py.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from river.drift import binary as river_binary

import detectors.fhddm as module
from detectors.fhddm import FHDDM

OURS, RIVER = FHDDM, river_binary.FHDDM
N = 3000


def test_never_warns_and_exposes_n_one_like_river():
    xs = streams.bernoulli_stream("abrupt_fall", N, 9)
    ours, river = OURS(short_window_size=20), RIVER(short_window_size=20)
    drifts, warns = streams.positions_by_update(ours, xs.astype(np.int64).tolist())
    assert (drifts, warns) == streams.positions_by_update(river, xs.astype(np.int64).tolist())
    assert drifts and not warns
    assert ours.n_one == river.n_one
    assert OURS().update_many(xs, warnings=True)[1].size == 0


@pytest.mark.parametrize("short", [0, 101])
def test_short_window_must_fit_in_the_sliding_window(short):
    with pytest.raises(ValueError):
        OURS(sliding_window_size=100, short_window_size=short)


def test_state_keeps_the_sliding_window_in_order():
    det = OURS(sliding_window_size=5)
    det.update_many(np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]))
    assert [float(v) for v in det.to_state()["state"]["window"]] == [1.0, 0.0, 0.0, 1.0]


def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
