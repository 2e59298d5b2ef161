"""HDDM_W-specific tests: parameter validation and doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation, the
two-sided test shared with HDDM_A) is in test_contract.py.
"""

from __future__ import annotations

import doctest

import pytest
from river.drift import binary as river_binary

import detectors.hddm_w as module
from detectors.hddm_w import HDDM_W

OURS, RIVER = HDDM_W, river_binary.HDDMW


@pytest.mark.parametrize("lambda_val", [-0.1, 1.5])
def test_lambda_outside_unit_interval_is_refused_like_river(lambda_val):
    with pytest.raises(ValueError):
        RIVER(lambda_val=lambda_val)
    with pytest.raises(ValueError):
        OURS(lambda_val=lambda_val)


def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
