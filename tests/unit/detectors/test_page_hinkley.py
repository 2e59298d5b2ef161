"""PageHinkley-specific tests: running sums bit-identical to River, infinities in checkpoints, doctests.

The shared contract (River-exact positions, fast path equivalence, checkpoints, input validation) is in
test_contract.py.
"""

from __future__ import annotations

import doctest

import numpy as np
import orjson
import pytest
import streams  # tests/unit/detectors is on sys.path (pytest's default "prepend" import mode)
from river import drift

import detectors.page_hinkley as ph_module
from detectors.page_hinkley import PageHinkley

N = 3000


def test_running_sums_are_bit_identical_to_river():
    xs = streams.mixed_stream("gauss_mean", 3, N)
    ours, theirs = PageHinkley(), drift.PageHinkley()
    ours.update_many(xs)
    for x in xs.tolist():
        theirs.update(x)
    assert ours._sum_increase == theirs._sum_increase
    assert ours._sum_decrease == theirs._sum_decrease
    assert ours._min_increase == theirs._min_increase
    assert ours._max_decrease == theirs._max_decrease
    assert ours._mean == theirs._x_mean.get()
    assert ours.drift_detected == theirs.drift_detected


def test_fresh_state_has_infinity_and_survives_json():
    state = orjson.loads(orjson.dumps(PageHinkley().to_state()))
    det = PageHinkley.from_state(state)
    assert det._min_increase == float("inf")
    assert det.update_many(np.zeros(40)).tolist() == PageHinkley().update_many(np.zeros(40)).tolist()


def test_invalid_mode():
    with pytest.raises(ValueError):
        PageHinkley(mode="sideways")


def test_doctest():
    result = doctest.testmod(ph_module)
    assert result.attempted > 0 and result.failed == 0
