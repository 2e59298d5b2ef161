"""Stage 3b, data quality: check each validated inference event against its model's declared features.

One :class:`DataQualityChecker` per (partition, model). Checks, in the order they run on an event:

* ``model_undeclared`` -- the model has no declared features: types are inferred from its first event
  (later nulls-only features get their type from their first non-null value); reported once.
* ``missing_feature`` / ``unexpected_feature`` / ``wrong_type`` -- schema violations. Such a row is
  *invalid*: it is still joined (its label feeds concept drift) but it does not feed feature drift.
* ``null_value`` (null in a non-nullable feature), ``out_of_range`` (numeric outside [min, max]),
  ``unseen_category`` (categorical value not among the declared categories).
* ``constant_feature`` -- the last ``constant_window`` non-null values of a numeric or categorical
  feature are all equal; reported once per episode (a new episode starts when the value changes).

Flood control is deterministic: at most one event per (check, feature) per ``rate_limit_events``
inference events of the model in the partition; the number of issues suppressed since the last event is
carried in the next event's evidence. Everything here is a pure function of the input sequence, so a
replay from a checkpoint produces the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from operator import countOf, ne
from typing import Any, Sequence

import numpy as np

from stream.columns import (ISSUE_ORDER, MIN_SEGMENT, NONE_TYPE, Columns, Row, getter, in_row_key_order, out_of_range,
                            key_runs, same_index, short, transpose, within)
from stream.config import DataQualityConfig, FeatureSpec
from stream.events import InferenceEvent

SCHEMA_CHECKS = frozenset({"missing_feature", "unexpected_feature", "wrong_type"})
SEVERITY = {
    "missing_feature": "error",
    "unexpected_feature": "warning",
    "wrong_type": "error",
    "null_value": "warning",
    "out_of_range": "warning",
    "unseen_category": "warning",
    "constant_feature": "warning",
    "model_undeclared": "info",
}
#: the ``feature`` of checks that concern the whole model
MODEL_WIDE = "*"
#: the one Python type a column must have for the columnar path, per feature type
_COLUMN_TYPES = {"numeric": (float, int), "categorical": (str,), "boolean": (bool,)}


def value_type(v: Any) -> str | None:
    """The feature type of a JSON value (``None`` for null)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "numeric"
    return "categorical"


@dataclass(slots=True)
class Issue:
    check: str
    feature: str
    evidence: dict[str, Any]


class DataQualityChecker:
    """Data-quality checks for one model in one partition (see the module docstring)."""

    def __init__(self, model: str, features: dict[str, FeatureSpec], cfg: DataQualityConfig) -> None:
        self.model = model
        self.cfg = cfg
        self.declared = bool(features)
        #: feature -> type ("numeric" | "categorical" | "boolean"); None = inferred, type not known yet
        self.types: dict[str, str | None] = {k: f.type for k, f in features.items()}
        self._specs = dict(features)
        self._categories = {k: frozenset(f.categories) for k, f in features.items() if f.categories}
        self._reset()

    def _reset(self) -> None:
        self.events_seen = 0
        self.inferred = self.declared
        #: (check, feature) -> [events_seen at the last emitted event, suppressed since]
        self._limits: dict[tuple[str, str], list[int]] = {}
        #: feature -> [last non-null value, run length, reported in this episode]
        self._runs: dict[str, list[Any]] = {}

    # -- per event ----------------------------------------------------------------------------------
    def check(self, ev: InferenceEvent) -> tuple[bool, list[Issue]]:
        """Return (row is valid for feature drift, issues to report after rate limiting).

        Each issue passes the rate limit (:meth:`_admit`) where it is found, and only one that passes is
        built: under flood control most are suppressed. An event has at most one issue per (check,
        feature), so this is the same as limiting the event's issues in order afterwards."""
        self.events_seen += 1
        issues: list[Issue] = []
        admit = self._admit
        if not self.inferred:
            self.inferred = True
            self.types = {k: value_type(v) for k, v in ev.features.items()}
            if (sup := admit("model_undeclared", MODEL_WIDE)) is not None:
                issues.append(Issue("model_undeclared", MODEL_WIDE, {
                    "inferred_types": dict(self.types), "note": "types inferred from this event",
                    "suppressed_since_last": sup}))
        valid = True
        features = ev.features
        for name, tp in self.types.items():
            if name not in features:
                valid = False
                if (sup := admit("missing_feature", name)) is not None:
                    issues.append(Issue("missing_feature", name, {"expected_type": tp, "suppressed_since_last": sup}))
        for name, v in features.items():
            if name not in self.types:
                valid = False
                if (sup := admit("unexpected_feature", name)) is not None:
                    issues.append(Issue("unexpected_feature", name, {"value_type": value_type(v),
                                                                     "suppressed_since_last": sup}))
                continue
            vt = value_type(v)
            tp = self.types[name]
            if vt is None:
                spec = self._specs.get(name)
                if spec is not None and not spec.nullable and (sup := admit("null_value", name)) is not None:
                    issues.append(Issue("null_value", name, {"suppressed_since_last": sup}))
                continue
            if tp is None:  # inferred schema, first non-null value fixes the type
                tp = self.types[name] = vt
            if vt != tp:
                valid = False
                if (sup := admit("wrong_type", name)) is not None:
                    issues.append(Issue("wrong_type", name, {"expected_type": tp, "value_type": vt, "value": short(v),
                                                             "suppressed_since_last": sup}))
                continue
            spec = self._specs.get(name)
            if spec is not None:
                if tp == "numeric" and ((spec.min is not None and v < spec.min)
                                        or (spec.max is not None and v > spec.max)):
                    if (sup := admit("out_of_range", name)) is not None:
                        issues.append(Issue("out_of_range", name, {"value": v, "min": spec.min, "max": spec.max,
                                                                   "suppressed_since_last": sup}))
                elif tp == "categorical" and spec.categories and v not in spec.categories:
                    if (sup := admit("unseen_category", name)) is not None:
                        issues.append(Issue("unseen_category", name, {"value": short(v),
                                                                      "suppressed_since_last": sup}))
            if tp != "boolean":
                run = self._runs.get(name)
                if run is None or run[0] != v or type(run[0]) is not type(v):
                    self._runs[name] = run = [v, 0, False]
                run[1] += 1
                if run[1] >= self.cfg.constant_window and not run[2]:
                    run[2] = True
                    if (sup := admit("constant_feature", name)) is not None:
                        issues.append(Issue("constant_feature", name, {"value": short(v), "run_length": run[1],
                                                                       "suppressed_since_last": sup}))
        return valid, issues

    # -- per micro-batch ------------------------------------------------------------------------------
    def check_many(self, rows: list[dict[str, Any]]
                   ) -> tuple[list[bool], list[tuple[int, Issue]], list[Columns], int]:
        """:meth:`check` for the feature dicts of consecutive events, with identical results.

        Returns (valid per row, (row, issue) pairs in event order after rate limiting, segments, first).
        A *segment* is a run of rows checked column by column (see :class:`Columns`): rows that have the
        same features, all the known ones (the normal case) or all of them and the same unexpected ones
        (then every row is invalid), where each known feature's column holds values of one Python type
        that matches its feature type, or nulls. The other rows -- an undeclared model's first events,
        which fix its types, and irregular rows (a missing feature, another key set, a value of another
        Python type) -- go through :meth:`check` one by one, in event order between the segments, so
        the rate limits, constant runs and the order of state keys evolve exactly as event by event.
        ``first`` is the first row of the first segment (``len(rows)`` if there is none).
        """
        valid: list[bool] = []
        issues: list[tuple[int, Issue]] = []
        first = 0
        while first < len(rows) and not self._typed():
            self._check_one(rows, first, valid, issues)
            first += 1
        segments = self._segments(rows, first)
        done = first  # rows before this one are checked
        for seg in segments:
            for i in range(done, seg.start):
                self._check_one(rows, i, valid, issues)
            self._check_columns(rows, seg, valid, issues)
            done = seg.stop
        for i in range(done, len(rows)):
            self._check_one(rows, i, valid, issues)
        return valid, issues, segments, segments[0].start if segments else len(rows)

    def _check_columns(self, rows: list[dict[str, Any]], columns: Columns, valid: list[bool],
                       issues: list[tuple[int, Issue]]) -> None:
        """:meth:`check` for the rows of one segment, column by column."""
        first = columns.start
        found: list[tuple[int, int, int, Issue]] = []  # (row, column, check order, issue)
        new_runs: list[tuple[int, str]] = []  # (row of the first value, feature) whose run state starts here
        tails: list[tuple[str, int]] = []  # (unexpected feature, its issues suppressed after the last reported)
        for k, (name, col) in enumerate(columns.items()):
            if name in columns.unexpected:
                tails.append((name, self._unexpected_every_row(name, col, k, first, found)))
                continue
            tp = self.types[name]
            spec = self._specs.get(name)
            kept = columns.non_null.get(name)
            if kept is None:
                rows_of, values = same_index, col
            else:
                rows_of, values = kept[0].__getitem__, kept[1]
                if spec is not None and not spec.nullable:
                    found.extend((first + i, k, 0, Issue("null_value", name, {}))
                                 for i, v in enumerate(col) if v is None)
            if not values:
                continue
            if spec is not None:
                if tp == "numeric" and not within(values, spec.min, spec.max):
                    arr = np.asarray(values, dtype=np.float64) if type(values[0]) is float else None
                    for j in out_of_range(values, arr, spec.min, spec.max):
                        found.append((first + rows_of(j), k, 0, Issue(
                            "out_of_range", name, {"value": values[j], "min": spec.min, "max": spec.max})))
                elif tp == "categorical" and name in self._categories \
                        and not self._categories[name].issuperset(values):
                    cats = self._categories[name]
                    found.extend((first + rows_of(j), k, 0, Issue("unseen_category", name, {"value": short(v)}))
                                 for j, v in enumerate(values) if v not in cats)
            if tp != "boolean":
                if name not in self._runs:
                    new_runs.append((first + rows_of(0), name))
                for j, run_length in self._constant_runs(name, values):
                    found.append((first + rows_of(j), k, 1, Issue(
                        "constant_feature", name, {"value": short(values[j]), "run_length": run_length})))
        if len(new_runs) > 1:
            # the state lists runs in the order the per-event path starts them: by row, then key order
            new_runs.sort(key=lambda t: (t[0], list(rows[t[0]]).index(t[1])))
            for _, name in new_runs:
                self._runs[name] = self._runs.pop(name)
        if found:
            found.sort(key=ISSUE_ORDER)
            in_row_key_order(found, rows, list(columns))
            base = self.events_seen
            for i, _, _, issue in found:
                self.events_seen = base + (i - first) + 1  # what the per-event path sees at that row
                if issue.check == "unexpected_feature":  # let through by _unexpected_every_row: record it here,
                    # in event order (the order of new keys in the state)
                    self._limits[(issue.check, issue.feature)] = [self.events_seen, 0]
                    issues.append((i, issue))
                elif self._allow(issue):
                    issues.append((i, issue))
            self.events_seen = base
        for name, suppressed in tails:
            self._limits[("unexpected_feature", name)][1] += suppressed
        n = columns.stop - first
        self.events_seen += n
        valid.extend([not columns.unexpected] * n)

    def _unexpected_every_row(self, name: str, col: Sequence[Any], k: int, first: int,
                              found: list[tuple[int, int, int, Issue]]) -> int:
        """The ``unexpected_feature`` issues of column ``k``, which is not a known feature: add to ``found``
        the rows where the rate limit lets one through, decided here in one step since every row has one
        (``check_many`` records them in the limit's state); return how many are suppressed after the last
        of them (all rows if none)."""
        lim = self._limits.get(("unexpected_feature", name))
        rate = self.cfg.rate_limit_events
        step = max(rate, 1)  # rows from one reported issue to the next
        # row j is seen at events_seen + j + 1; the first one past the limit of the last reported issue
        start = 0 if lim is None else max(lim[0] + rate - self.events_seen - 1, 0)
        reported = range(start, len(col), step)
        suppressed = 0 if lim is None else lim[1] + start  # before the first one reported here
        for j in reported:
            found.append((first + j, k, 0, Issue("unexpected_feature", name, {
                "value_type": value_type(col[j]), "suppressed_since_last": suppressed})))
            suppressed = step - 1
        return len(col) - 1 - reported[-1] if reported else len(col)

    def _check_one(self, rows: list[dict[str, Any]], i: int, valid: list[bool],
                   issues: list[tuple[int, Issue]]) -> None:
        ok, found = self.check(Row(rows[i]))
        valid.append(ok)
        issues.extend((i, issue) for issue in found)

    def _typed(self) -> bool:
        """Every feature's type is known (declared, or inferred from a non-null value)."""
        return self.inferred and None not in self.types.values()

    def _segments(self, rows: list[dict[str, Any]], first: int) -> list[Columns]:
        """The segments of rows ``first..`` (see :meth:`check_many`), in row order: usually one, all of
        them. Rows are grouped in runs of one key set (all the known features, maybe more), cut at the
        rows that hold a value of another Python type than the rest of their column; pieces shorter than
        ``MIN_SEGMENT`` rows are cheaper one by one (a whole batch is a segment whatever its length).
        Every segment passes :meth:`_make_columns`, which alone decides what the columnar path may take;
        this only finds candidates cheaply."""
        m = len(rows) - first
        if m <= 0 or not self._typed():
            return []
        rest = rows[first:] if first else rows
        known = self.types.keys()
        keys = tuple(rest[0])  # the per-event path walks the event's own key order
        runs = None
        # the usual case, all in C: every row has as many features as the first and all of its, so the same
        if countOf(map(len, rest), len(keys)) == m and known <= rest[0].keys():
            try:
                cols = transpose(keys, map(getter(keys), rest))
            except KeyError:
                pass
            else:
                whole = self._make_columns(keys, cols, first, len(rows))
                if whole is not None:
                    return [whole]
                runs = [(0, m, keys, cols)]
        least = min(MIN_SEGMENT, m)
        if runs is None:
            runs = key_runs(rest, known, least)
        segments: list[Columns] = []
        for a, b, keys, cols in runs:
            whole = self._make_columns(keys, cols, first + a, first + b)
            if whole is not None:
                segments.append(whole)
                continue
            start = 0
            for stop in (*self._odd_rows(keys, cols), b - a):
                if stop - start >= least:
                    seg = self._make_columns(keys, [c[start:stop] for c in cols], first + a + start,
                                             first + a + stop)
                    if seg is not None:
                        segments.append(seg)
                start = stop + 1
        return segments

    def _odd_rows(self, keys: tuple[str, ...], cols: Sequence[Sequence[Any]]) -> list[int]:
        """Rows (ascending) where a known feature's value is neither null nor of the Python type most
        of its column has among those its feature type allows."""
        odd: set[int] = set()
        for name, col in zip(keys, cols):
            tp = self.types.get(name)
            if tp is None:  # not a known feature: any value
                continue
            allowed = _COLUMN_TYPES[tp]
            kind = type(col[0])
            if kind in allowed and countOf(map(type, col), kind) == len(col):
                continue
            kinds = list(map(type, col))
            kind = max(allowed, key=kinds.count)
            odd.update(j for j, t in enumerate(kinds) if t is not kind and t is not NONE_TYPE)
        return sorted(odd)

    def _make_columns(self, keys: tuple[str, ...], cols: Sequence[tuple[Any, ...]], start: int,
                      stop: int) -> Columns | None:
        """The segment of rows ``start..stop-1``, whose values (one tuple per feature of ``keys``, which
        every one of those rows has, in row order) are ``cols``, if it qualifies for the columnar path
        (see :meth:`check_many`)."""
        columns = Columns(start, stop)
        if len(keys) > len(self.types):
            columns.unexpected = {name for name in keys if name not in self.types}
        for name, col in zip(keys, cols):
            if name in columns.unexpected:  # any values: they are only reported
                columns[name] = col
                continue
            allowed = _COLUMN_TYPES[self.types[name]]
            kind = type(col[0])
            # the usual column: every value of its first value's type, counted by identity in C, cheaper
            # than collecting the set of types
            if kind in allowed and countOf(map(type, col), kind) == len(col):
                columns[name] = col
                continue
            kinds = set(map(type, col))
            if NONE_TYPE in kinds:
                kinds.discard(NONE_TYPE)
                kept = [i for i, v in enumerate(col) if v is not None]
                columns.non_null[name] = (kept, [col[i] for i in kept])
            if len(kinds) > 1 or (kinds and next(iter(kinds)) not in allowed):
                return None
            columns[name] = col
        return columns

    def _constant_runs(self, name: str, col: Sequence[Any]) -> list[tuple[int, int]]:
        """Rows where a run of equal values reaches ``constant_window`` (first time in its episode), with
        the run length there; updates the feature's run state as the per-event path would. ``col`` holds
        non-null values of one Python type (float, int or str): ``==`` is the exact opposite of the
        per-event path's ``!=`` (a NaN equals nothing, itself included), and plain Python is cheaper
        than numpy on a batch."""
        n, window = len(col), self.cfg.constant_window
        out: list[tuple[int, int]] = []
        run = self._runs.get(name)
        p = 0  # rows 0..p-1 continue the run carried over from the previous batch
        if run is not None and type(run[0]) is type(col[0]) and run[0] == col[0]:
            p = 1
            while p < n and col[p] == col[p - 1]:
                p += 1
            if not run[2]:  # the first row at or past the window
                i = max(window - run[1] - 1, 0)
                if i < p:
                    out.append((i, run[1] + i + 1))
            if p == n:
                length = run[1] + n
                self._runs[name] = [run[0], length, run[2] or length >= window]
                return out
        # runs that start in this batch
        if n - p < window:  # none reaches the window (the usual case): only where the last one starts matters
            last = n - 1
            while last > p and col[last - 1] == col[last]:
                last -= 1
        else:
            starts = [p, *compress(range(p + 1, n), map(ne, col[p + 1:], col[p:-1]))]
            ends = starts[1:]
            ends.append(n)
            out.extend((s + window - 1, window) for s, e in zip(starts, ends) if e - s >= window)
            last = starts[-1]
        length = n - last
        self._runs[name] = [col[last], length, length >= window]
        return out

    def _allow(self, issue: Issue) -> bool:
        sup = self._admit(issue.check, issue.feature)
        if sup is None:
            return False
        issue.evidence["suppressed_since_last"] = sup
        return True

    def _admit(self, check: str, feature: str) -> int | None:
        """Rate limit one issue of (check, feature) at ``events_seen``: None if it is suppressed, else the
        number suppressed since the last one reported (for its evidence)."""
        key = (check, feature)
        lim = self._limits.get(key)
        if lim is not None and self.events_seen - lim[0] < self.cfg.rate_limit_events:
            lim[1] += 1
            return None
        self._limits[key] = [self.events_seen, 0]
        return 0 if lim is None else lim[1]

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "events_seen": self.events_seen,
            "inferred": self.inferred,
            "types": None if self.declared else dict(self.types),
            "limits": [[c, f, last, sup] for (c, f), (last, sup) in self._limits.items()],
            "runs": [[f, v, n, done] for f, (v, n, done) in self._runs.items()],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.events_seen = int(state["events_seen"])
        self.inferred = bool(state["inferred"])
        if not self.declared and state["types"] is not None:
            self.types = dict(state["types"])
        self._limits = {(c, f): [int(last), int(sup)] for c, f, last, sup in state["limits"]}
        self._runs = {f: [v, int(n), bool(done)] for f, v, n, done in state["runs"]}
