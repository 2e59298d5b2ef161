"""HDDM_A-specific tests: doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation, the
two-sided test shared with HDDM_W) is in test_contract.py.
"""

from __future__ import annotations

import doctest

import detectors.hddm_a as module


def test_doctests_pass():
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
