"""Columns of a micro-batch's inference events, for the data-quality checks and the data-drift buffers:
building them (runs of rows with one key set, transposed in C), and the small helpers the columnar checks use.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import itemgetter, ne
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Iterable, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from stream.quality import Issue


@dataclass(slots=True)
class Row:
    """The part of an event :meth:`DataQualityChecker.check` reads."""

    features: dict[str, Any]


class Columns(dict[str, tuple[Any, ...]]):
    """One segment of a batch that :meth:`DataQualityChecker.check_many` checked column by column: the
    batch's rows ``start..stop-1``, feature -> its values (None for null) in row order, features in the
    segment's first row's key order. ``non_null`` has, for each known feature with a null among them,
    (positions of its non-null values in the column, those values), so that data drift does not filter the
    nulls out again. ``unexpected`` names the features that are not known (then every row is invalid)."""

    __slots__ = ("start", "stop", "non_null", "unexpected")

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start = start
        self.stop = stop
        self.non_null: dict[str, tuple[list[int], list[Any]]] = {}
        self.unexpected: AbstractSet[str] = frozenset()


NONE_TYPE = type(None)
#: the fewest rows worth a segment: below, the columnar path's fixed cost per feature is more than it saves
MIN_SEGMENT = 4
#: found issues by (row, column, check order); see :func:`in_row_key_order`
ISSUE_ORDER = itemgetter(0, 1, 2)


def same_index(j: int) -> int:
    return j


def getter(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    """A row's values of ``keys``, in C (one value, not a 1-tuple, for one key); KeyError if one is missing."""
    return itemgetter(*keys) if keys else no_values


def no_values(row: dict[str, Any]) -> tuple[()]:
    return ()


def transpose(keys: tuple[str, ...], values: Iterable[Any]) -> list[tuple[Any, ...]]:
    """The columns of the rows' values from :func:`getter`."""
    if len(keys) > 1:
        return list(zip(*values))
    return [tuple(values)] if keys else []


def key_runs(rows: list[dict[str, Any]], known: AbstractSet[str], least: int
          ) -> list[tuple[int, int, tuple[str, ...], list[tuple[Any, ...]]]]:
    """The runs of at least ``least`` consecutive rows with one key set that has all the ``known``
    features: (first row, end, that key set in the first row's order, the run's columns)."""
    lens = list(map(len, rows))
    # where the number of features changes, a run ends
    bounds = [0, *compress(range(1, len(rows)), map(ne, lens[1:], lens[:-1])), len(rows)]
    runs = []
    for a, b in zip(bounds, bounds[1:]):
        while b - a >= least:  # rows a..b-1 have as many features: a run ends where the key set changes
            r = rows[a]
            if not known <= r.keys():  # a missing feature: this row goes one by one
                a += 1
                continue
            keys = tuple(r)
            get = getter(keys)
            try:
                values = list(map(get, rows[a:b]))
            except KeyError:  # another key set with as many features (rare): find where
                values = [get(r)]
                for j in range(a + 1, b):
                    try:
                        values.append(get(rows[j]))
                    except KeyError:
                        break
            if len(values) >= least:
                runs.append((a, a + len(values), keys, transpose(keys, values)))
            a += len(values)
    return runs


def in_row_key_order(found: list[tuple[int, int, int, Issue]], rows: list[dict[str, Any]],
                      keys: list[str]) -> None:
    """Re-sort in place, within each row that has several issues, by that row's own key order (as the
    per-event path walks it) where it differs from the column order ``keys`` (found is sorted by
    row, column, check order)."""
    a = 0
    while a < len(found) - 1:
        i, b = found[a][0], a + 1
        while b < len(found) and found[b][0] == i:
            b += 1
        if b - a > 1 and list(rows[i]) != keys:
            pos = {name: j for j, name in enumerate(rows[i])}
            found[a:b] = sorted(found[a:b], key=lambda t: (pos[t[3].feature], t[2]))
        a = b


def within(values: Sequence[Any], lo: float | None, hi: float | None) -> bool:
    """Every value is in [lo, hi] -- exact, and cheaper than finding the ones that are not. A NaN first
    value makes min / max NaN and the answer False (then :func:`out_of_range` decides); a later NaN is
    skipped by min / max, as it is never out of range."""
    return (lo is None or lo <= min(values)) and (hi is None or max(values) <= hi)


def out_of_range(col: Sequence[Any], arr: np.ndarray | None, lo: float | None, hi: float | None) -> list[int]:
    if arr is None:  # ints: compare in Python, exactly
        return [i for i, v in enumerate(col) if (lo is not None and v < lo) or (hi is not None and v > hi)]
    bad = np.zeros(len(col), dtype=bool)
    if lo is not None:
        bad |= arr < lo
    if hi is not None:
        bad |= arr > hi
    return np.flatnonzero(bad).tolist()


def short(v: Any) -> Any:
    return v[:64] if isinstance(v, str) else v
