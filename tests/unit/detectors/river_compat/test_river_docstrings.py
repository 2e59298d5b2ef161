"""River 0.26.1's docstring examples of its drift detectors, run against ours.

Each file in ``docstrings/`` is the "Examples" section of one River class docstring (the path in the River
package is in the file's first lines), copied verbatim except for the import line, which takes ``drift``
from :mod:`ours_as_river` instead of ``river``. A River user's loop (``update`` returning None, the
``drift_detected`` / ``warning_detected`` flags) must print exactly what River prints.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOCSTRINGS = sorted((Path(__file__).parent / "docstrings").glob("*.txt"))


def test_every_river_drift_detector_has_its_example_here():
    assert [p.stem for p in DOCSTRINGS] == sorted(
        ["ADWIN", "KSWIN", "PageHinkley", "DDM", "EDDM", "FHDDM", "HDDMA", "HDDMW"])


@pytest.mark.parametrize("path", DOCSTRINGS, ids=[p.stem for p in DOCSTRINGS])
def test_river_docstring_example(path: Path):
    text = path.read_text()
    assert text.count("from ours_as_river import drift") == 1 and ">>> from river" not in text
    result = doctest.testfile(str(path), module_relative=False, verbose=False, report=True,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 5
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {path.name} fail"


@pytest.mark.parametrize("path", DOCSTRINGS, ids=[p.stem for p in DOCSTRINGS])
def test_the_same_example_passes_with_river_itself(path: Path):
    """The copies are River's examples as they are: with the original import they pass against River."""
    pytest.importorskip("river")
    text = path.read_text().replace("from ours_as_river import drift", "from river import drift")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, path.stem, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0
