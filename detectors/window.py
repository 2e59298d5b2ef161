"""Shared machinery of the windowed two-sample drift tests (:mod:`detectors.ks_test`, :mod:`detectors.psi`,
:mod:`detectors.chi2_test`, :mod:`detectors.js_distance`).

A windowed test compares a **reference** sample with a **current window** of recent values, the classic
set-up for monitoring feature, prediction and label drift (Rabanser, Guennemann & Lipton, "Failing loudly:
an empirical study of methods for detecting dataset shift", NeurIPS 2019; Webb et al., "Characterizing
concept drift", 2016).

* **Reference** -- the first ``reference_size`` values of the stream, or a user-supplied ``reference``
  sequence (then every stream value goes to the current window and ``reference_size`` is not used). A given
  reference is stored as plain data for checkpoints: a contiguous float64 array for numeric tests, a list
  for categorical ones.
  Each test keeps it in bounded form: KS a sorted sample, PSI bin edges + bin counts, chi-squared and JS
  category counts.
* **Current window** -- a ring buffer of the last ``window_size`` values after the reference. Tests on counts
  (chi-squared, JS, PSI) count the window once, at the first test, and then keep the counts up to date as
  values enter and leave it; such derived data is never checkpointed and is rebuilt after a restore.
* **Schedule** -- a test runs once the window is full and then every ``step`` values. ``mode="sliding"``
  defaults to ``step=1`` (a test after every value once full); ``mode="tumbling"`` means
  ``step=window_size``: non-overlapping windows, each test sees ``window_size`` fresh values.
* **Positions** -- :attr:`DriftTestResult.position` is the number of values the detector had seen (reference
  values included, user-supplied reference values not) when the test ran, i.e. the 1-based stream index of
  the value that triggered it. If a detector had seen ``n0`` values before ``update_many(xs)``, result ``r``
  was triggered by ``xs[r.position - n0 - 1]``.

API, as River plus :mod:`detectors.base`:

* ``update(x)`` returns the detector; ``drift_detected`` is true exactly after an ``update`` whose test
  flagged drift; ``last_result`` is the most recent :class:`DriftTestResult` (or ``None``).
* ``update_many(xs)`` returns the list of :class:`DriftTestResult` for the tests run in that batch (drift or
  not) -- unlike the position arrays of :meth:`detectors.base.DriftDetector.update_many`, since a data-drift
  test has more to report than "drift here". It is exactly equivalent to calling ``update`` on each element,
  except that it validates the whole batch first: on :class:`~detectors.base.InvalidInput` nothing changes.
  Drift positions are ``[r.position for r in results if r.drift]``.
* ``to_state()`` / ``from_state()`` as every detector.

>>> from detectors.ks_test import KSDrift
>>> d = KSDrift(reference_size=3, window_size=2, mode="tumbling")
>>> [r.position for r in d.update_many([0.0, 1.0, 2.0, 0.5, 1.5, 0.2, 0.3, 0.4])]
[5, 7]
>>> d.drift_detected, d.n_seen
(False, 8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from detectors.base import DriftDetector, InvalidInput, kernel_module

#: bucket that pools the categories beyond ``max_categories`` (and the literal input ``"__other__"``).
OTHER = "__other__"

_MODES = ("sliding", "tumbling")


@dataclass(frozen=True)
class DriftTestResult:
    """Outcome of one two-sample test.

    ``test`` is ``"ks"``, ``"psi"``, ``"chi2"`` or ``"js"``; ``statistic`` the test statistic (KS D, PSI,
    Pearson chi-squared, JS distance); ``p_value`` ``None`` for PSI and JS; ``distance`` an effect size
    (KS D, PSI, Cramer's V, JS distance); ``drift`` the decision; ``threshold`` what was compared against
    (``alpha`` for p-value tests: drift iff ``p_value < alpha``; otherwise drift iff
    ``statistic >= threshold``); ``reference_size`` / ``current_size`` the sample sizes; ``position`` the
    number of stream values seen when the test ran; ``dof`` the degrees of freedom (chi-squared only).
    """

    test: str
    statistic: float
    p_value: float | None
    distance: float | None
    drift: bool
    threshold: float
    reference_size: int
    current_size: int
    position: int
    dof: int | None = None

    def to_dict(self) -> dict[str, Any]:
        # the fields are numbers, bools, str or None: a copy of the instance dict (fields in declaration
        # order, however the result was built) is what dataclasses.asdict returns, without its deep copies
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DriftTestResult":
        return cls(**d)


def _new_result(test: str, statistic: float, p_value: float | None, distance: float | None, drift: bool,
                threshold: float, reference_size: int, current_size: int, position: int,
                dof: int | None) -> DriftTestResult:
    """``DriftTestResult(...)`` of already-converted fields, in a quarter of the time: the generated ``__init__``
    of a frozen dataclass sets each field through ``object.__setattr__``; this sets the instance dict at once
    (same dict, same object; tested). A test runs every ``step`` values, so this is on the hot path."""
    result = object.__new__(DriftTestResult)
    object.__setattr__(result, "__dict__", {
        "test": test, "statistic": statistic, "p_value": p_value, "distance": distance, "drift": drift,
        "threshold": threshold, "reference_size": reference_size, "current_size": current_size,
        "position": position, "dof": dof,
    })
    return result


def check_category(x: Any) -> Any:
    """Return ``x`` as a category that survives a JSON round trip, or raise :class:`InvalidInput`.

    Categories are ``str``, ``int`` (64-bit), ``bool``, finite ``float`` or ``None``; numpy scalars are
    converted. Note that ``1``, ``1.0`` and ``True`` compare equal and so are one category.
    """
    if isinstance(x, np.generic):
        x = x.item()
    if x is None or isinstance(x, (str, bool)):
        return x
    if isinstance(x, int):
        if -(2**63) <= x < 2**63:
            return x
        raise InvalidInput(f"integer category {x!r} does not fit in 64 bits")
    if isinstance(x, float):
        if math.isfinite(x):
            return x
        raise InvalidInput(f"non-finite value {x!r}")
    raise InvalidInput(f"categories must be str, int, bool, finite float or None; got {type(x).__name__}")


class WindowedDriftTest(DriftDetector):
    """Base of the windowed two-sample tests: reference + ring-buffer window + test schedule.

    Subclasses set ``_test_name`` (the name in results and in config), ``event_name`` and ``_window_dtype``
    and implement the hooks ``_encode_one``, ``_encode_many``, ``_reset_reference``, ``_add_reference``,
    ``_finish_reference``, ``_to_window``, ``_evaluate``, ``_get_test_state`` and ``_set_test_state``.
    """

    _test_name = ""
    #: the short name of the test in drift events, ids and metrics ("KS", "PSI", "chi2", "JS")
    event_name = ""
    _window_dtype: Any = np.float64

    def __init__(
        self,
        reference_size: int,
        window_size: int,
        step: int | None,
        mode: str,
        reference: Any,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if int(window_size) != window_size or window_size < 1:
            raise ValueError(f"window_size must be a positive integer, got {window_size!r}")
        if reference is None and (int(reference_size) != reference_size or reference_size < 1):
            raise ValueError(f"reference_size must be a positive integer, got {reference_size!r}")
        if step is not None and (int(step) != step or step < 1):
            raise ValueError(f"step must be a positive integer, got {step!r}")
        if mode == "tumbling" and step is not None and step != window_size:
            raise ValueError("a tumbling window tests every window_size values; leave step unset")
        if reference is not None:
            reference = self._normalize_reference(reference)
            if len(reference) == 0:
                raise ValueError("reference must not be empty")
        self.reference_size = reference_size
        self.window_size = window_size
        self.step = step
        self.mode = mode
        self.reference = reference

    # -- public read-only views -------------------------------------------------------------------
    @property
    def last_result(self) -> DriftTestResult | None:
        return self._last_result

    @property
    def n_seen(self) -> int:
        """Number of stream values seen (reference values from the stream included)."""
        return self._n_seen

    @property
    def reference_ready(self) -> bool:
        return self._ref_ready

    @property
    def _step(self) -> int:
        if self.mode == "tumbling":
            return int(self.window_size)
        return 1 if self.step is None else int(self.step)

    # -- running state ----------------------------------------------------------------------------
    def _reset(self) -> None:
        super()._reset()
        self._n_seen = 0
        self._n_ref = 0
        self._ref_ready = False
        self._pos = 0  # next write index of the ring buffer
        self._until_test = int(self.window_size)
        self._window = np.zeros(int(self.window_size), dtype=self._window_dtype)
        self._win_counts: np.ndarray | None = None
        self._last_result: DriftTestResult | None = None
        self._reset_reference()
        if self.reference is not None:
            arr = self._encode_many(self.reference)
            self._add_reference(arr)
            self._n_ref = int(arr.shape[0])
            self._finish_reference()
            self._ref_ready = True

    # -- updates ----------------------------------------------------------------------------------
    def update(self, x: Any) -> None:
        """Add one value; ``drift_detected`` then says whether a test ran on it and flagged drift."""
        self._ingest(self._encode_one(x))

    def update_many(self, xs: Any) -> list[DriftTestResult]:  # type: ignore[override]
        """Add a batch; return the results of the tests run in it (see the module docstring)."""
        return self._ingest(self._encode_many(xs))

    def _ingest(self, arr: np.ndarray) -> list[DriftTestResult]:
        n = arr.shape[0]
        if n == 0:
            return []
        start = 0
        if not self._ref_ready:
            start = min(n, int(self.reference_size) - self._n_ref)
            self._add_reference(arr[:start])
            self._n_ref += start
            self._n_seen += start
            if self._n_ref == self.reference_size:
                self._finish_reference()
                self._ref_ready = True
            if start == n:
                self._drift_detected = False
                return []
        rest = self._to_window(arr[start:] if start else arr)
        m = rest.shape[0]
        until = self._until_test
        if m < until:  # the common case on small batches: no test in this one
            self._push(rest)
            self._n_seen += m
            self._until_test = until - m
            self._drift_detected = False
            return []
        results: list[DriftTestResult] = []
        step = self._step
        j = 0
        while j < m:
            take = min(until, m - j)
            self._push(rest if take == m else rest[j : j + take])
            j += take
            self._n_seen += take
            until -= take
            if until == 0:
                self._until_test = 0
                results.append(self._run_test())
                until = step
        self._until_test = until
        last = results[-1]
        self._drift_detected = last.position == self._n_seen and last.drift
        return results

    def _push(self, chunk: np.ndarray) -> None:
        if self._win_counts is not None:
            kernel = kernel_module("detectors._window_kernel")
            self._pos = kernel.push_counted(self._window, self._win_counts, self._pos, chunk)
            return
        window = self._window
        w = window.shape[0]
        size = chunk.shape[0]
        start = self._pos
        if size > w:  # only the last w values survive
            start = (start + size - w) % w
            chunk = chunk[size - w :]
        end = start + chunk.shape[0]
        if end <= w:
            window[start:end] = chunk
        else:  # wraps around: two slices
            window[start:] = chunk[: w - start]
            window[: end - w] = chunk[w - start :]
        self._pos = (self._pos + size) % w

    def _window_counts(self, window: np.ndarray, n_values: int) -> np.ndarray:
        """``np.bincount(window, minlength=n_values)`` for a full window of ints in ``[0, n_values)``: counted
        at the first test, then kept up to date by ``_push`` (not checkpointed). Read-only."""
        if self._win_counts is None:
            self._win_counts = np.bincount(window, minlength=n_values).astype(np.int64)
        return self._win_counts

    def _run_test(self) -> DriftTestResult:
        return self._record(*self._evaluate(self._window), self._n_seen)

    def _record(self, statistic: Any, p_value: Any, distance: Any, drift: Any, threshold: Any, dof: int | None,
                position: int) -> DriftTestResult:
        """The result of a test (the fields of ``_evaluate`` and the position), kept as ``last_result``."""
        result = _new_result(
            self._test_name,
            float(statistic),
            None if p_value is None else float(p_value),
            None if distance is None else float(distance),
            bool(drift),
            float(threshold),
            int(self._n_ref),
            int(self.window_size),
            int(position),
            dof,
        )
        self._last_result = result
        return result

    # -- checkpoints ------------------------------------------------------------------------------
    def _get_running_state(self) -> dict[str, Any]:
        return {
            "n_seen": self._n_seen,
            "n_ref": self._n_ref,
            "ref_ready": self._ref_ready,
            "pos": self._pos,
            "until_test": self._until_test,
            "window": self._window.copy(),
            "drift_detected": self._drift_detected,
            "last_result": None if self._last_result is None else self._last_result.to_dict(),
            "test": self._get_test_state(),
        }

    def _set_running_state(self, state: dict[str, Any]) -> None:
        self._n_seen = int(state["n_seen"])
        self._n_ref = int(state["n_ref"])
        self._ref_ready = bool(state["ref_ready"])
        self._pos = int(state["pos"])
        self._until_test = int(state["until_test"])
        self._window = np.asarray(state["window"], dtype=self._window_dtype).copy()
        self._win_counts = None
        self._drift_detected = bool(state["drift_detected"])
        last = state["last_result"]
        self._last_result = None if last is None else DriftTestResult.from_dict(last)
        self._set_test_state(state["test"])

    # -- hooks ------------------------------------------------------------------------------------
    def _normalize_reference(self, reference: Any) -> Any:
        """Store a user-supplied reference as plain data that ``to_state`` can serialize."""
        return np.ascontiguousarray(reference, dtype=np.float64)

    def _encode_one(self, x: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_many(self, xs: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset_reference(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _add_reference(self, arr: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish_reference(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _to_window(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def _evaluate(self, window: np.ndarray) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_test_state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_test_state(self, state: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class CategoricalWindowedTest(WindowedDriftTest):
    """Windowed test over category counts with at most ``max_categories`` named buckets.

    Categories get bucket ids in order of first appearance (reference first); once ``max_categories`` are
    named, new categories share the :data:`OTHER` bucket. Buckets are never reassigned, so a category keeps
    its bucket for the life of the detector and reference and current counts always line up. The window
    stores bucket ids, so memory is ``O(window_size + max_categories)``.
    """

    _window_dtype = np.int64

    def __init__(
        self,
        reference_size: int,
        window_size: int,
        step: int | None,
        mode: str,
        max_categories: int,
        reference: Any,
    ) -> None:
        if int(max_categories) != max_categories or max_categories < 1:
            raise ValueError(f"max_categories must be a positive integer, got {max_categories!r}")
        self.max_categories = max_categories
        super().__init__(reference_size, window_size, step, mode, reference)

    def _normalize_reference(self, reference: Any) -> Any:
        if isinstance(reference, (str, bytes)):
            raise ValueError("reference must be a sequence of categories, not a string")
        return reference.tolist() if isinstance(reference, np.ndarray) else list(reference)

    @property
    def categories(self) -> list[Any]:
        """Named categories in bucket order (the :data:`OTHER` bucket comes after them)."""
        return list(self._categories)

    def _bucket(self, c: Any) -> int:
        i = self._index.get(c)
        if i is not None:
            return i
        if isinstance(c, str) and c == OTHER:
            return int(self.max_categories)
        if len(self._categories) < self.max_categories:
            i = len(self._categories)
            self._categories.append(c)
            self._index[c] = i
            return i
        return int(self.max_categories)

    def _encode_one(self, x: Any) -> np.ndarray:
        return np.array([self._bucket(check_category(x))], dtype=np.int64)

    def _encode_many(self, xs: Any) -> np.ndarray:
        if isinstance(xs, (str, bytes)):
            raise InvalidInput("update_many expects a sequence of categories, not a string")
        if type(xs) is list:
            # hot path: strings are valid categories as they are (a str subclass is looked up as itself by the
            # slow path too); if all of them already have a bucket, that is the encoding
            try:
                "".join(xs)  # only to check that every item is a str: ~4x cheaper than set(map(type, xs))
                if len(self._categories) >= self.max_categories:  # full for good: any other string is pooled
                    other = repeat(int(self.max_categories))
                    return np.fromiter(map(self._index.get, xs, other), dtype=np.int64, count=len(xs))
                if len(xs) > 1 and self.max_categories < 256:
                    # a third of the cost: itemgetter looks all of them up in one C call (KeyError as above; of
                    # one key it returns no tuple), bytearray packs the buckets (< 256 here) in another
                    return np.frombuffer(bytearray(itemgetter(*xs)(self._index)), dtype=np.uint8)
                return np.fromiter(map(self._index.__getitem__, xs), dtype=np.int64, count=len(xs))
            except (TypeError, KeyError):
                pass
        if isinstance(xs, np.ndarray) and xs.ndim != 1:
            raise InvalidInput(f"update_many expects a 1-D array, got shape {xs.shape}")
        checked = []
        for i, x in enumerate(xs):
            try:
                checked.append(check_category(x))
            except InvalidInput as exc:
                raise InvalidInput(f"{exc} at position {i}") from None
        # buckets are assigned only after the whole batch validated, so a bad batch changes nothing
        return np.fromiter((self._bucket(c) for c in checked), dtype=np.int64, count=len(checked))

    def _reset_reference(self) -> None:
        self._categories: list[Any] = []
        self._index: dict[Any, int] = {}
        self._ref_counts = np.zeros(int(self.max_categories) + 1, dtype=np.int64)

    def _add_reference(self, arr: np.ndarray) -> None:
        self._ref_counts += np.bincount(arr, minlength=int(self.max_categories) + 1)

    def _finish_reference(self) -> None:
        pass

    def _current_counts(self, window: np.ndarray) -> np.ndarray:
        return self._window_counts(window, int(self.max_categories) + 1)

    def _get_test_state(self) -> dict[str, Any]:
        return {"categories": list(self._categories), "ref_counts": self._ref_counts.copy()}

    def _set_test_state(self, state: dict[str, Any]) -> None:
        self._categories = list(state["categories"])
        self._index = {c: i for i, c in enumerate(self._categories)}
        self._ref_counts = np.asarray(state["ref_counts"], dtype=np.int64).copy()
