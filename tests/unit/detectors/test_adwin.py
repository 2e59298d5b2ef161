"""ADWIN-specific tests: window statistics bit-identical to River, parameters River cannot run, doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation) is in
test_contract.py.
"""

from __future__ import annotations

import doctest

import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from river import drift
from test_contract import ADWIN_PARAMS

import detectors.adwin as adwin_module
from detectors.adwin import ADWIN

N = 4000


@pytest.mark.parametrize("params", ADWIN_PARAMS[:3])
def test_window_statistics_are_bit_identical_to_river(params):
    for family in streams.MIXED_FAMILIES:
        xs = streams.mixed_stream(family, 7, N)
        ours, theirs = ADWIN(**params), drift.ADWIN(**params)
        for lo in range(0, len(xs), 997):
            ours.update_many(xs[lo : lo + 997])
            for x in xs[lo : lo + 997].tolist():
                theirs.update(x)
            assert ours.width == theirs.width
            assert ours.total == theirs.total
            assert ours.variance == theirs.variance
            assert ours.estimation == theirs.estimation
            assert ours.n_detections == theirs.n_detections
            assert ours.drift_detected == theirs.drift_detected


@pytest.mark.parametrize("params", [{"clock": 0}, {"max_buckets": 0}])
def test_parameters_river_cannot_run_are_rejected(params):
    with pytest.raises(ValueError):
        ADWIN(**params)


def test_doctest():
    result = doctest.testmod(adwin_module)
    assert result.attempted > 0 and result.failed == 0
