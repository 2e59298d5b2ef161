"""DDM-specific tests: its River quirks, parameter validation and doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation) is in
test_contract.py.
"""

from __future__ import annotations

import doctest

import numpy as np
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from river.drift import binary as river_binary

import detectors.ddm as module
from detectors.ddm import DDM

OURS, RIVER = DDM, river_binary.DDM


def test_clean_warm_start_alarms_on_first_error_like_river():
    xs = [0] * 40 + [1]
    ours, river = OURS(), RIVER()
    assert streams.positions_by_update(ours, xs) == streams.positions_by_update(river, xs)
    assert ours.drift_detected and river.drift_detected
    assert OURS().update_many(np.array(xs)).tolist() == [40]


def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
