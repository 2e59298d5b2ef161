"""Base classes shared by every detector in :mod:`detectors`.

The API follows River's ``river.base.DriftDetector`` / ``BinaryDriftDetector`` so that users can swap
one for the other: constructor parameters are public attributes with the same names, running state is
private and built by ``_reset()``, ``update(x)`` changes state and ``drift_detected`` (plus
``warning_detected`` for binary detectors) reports it.

On top of River's API every detector has

* ``update_many(xs)``: the fast path for micro-batches. It returns the positions (indices into ``xs``)
  at which drift was detected, exactly those that calling ``update`` element by element would give.
  Binary detectors accept ``warnings=True`` and then return ``(drift_positions, warning_positions)``.
* ``to_state()`` / ``from_state(state)``: plain data (numbers, lists, numpy arrays; never pickle) that
  rebuilds a detector which continues exactly as the original would have.
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import numpy as np

STATE_VERSION = 1


class InvalidInput(ValueError):
    """A value a detector cannot take (NaN, infinity, or outside [0, 1] for a binary detector)."""


def as_float_array(xs: Any) -> np.ndarray:
    """Return ``xs`` as a 1-D float64 array, raising :class:`InvalidInput` on NaN/inf or wrong shape."""
    arr = as_float_vector(xs)
    # count_nonzero instead of .all(): the same answer at half the cost on the small batches of a stream
    if np.count_nonzero(np.isfinite(arr)) != arr.shape[0]:
        raise non_finite_error(arr)
    return arr


def as_float_vector(xs: Any) -> np.ndarray:
    """:func:`as_float_array` without the finite check, for callers that check inside a compiled kernel and
    then raise :func:`non_finite_error`."""
    arr = np.asarray(xs, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidInput(f"update_many expects a 1-D array, got shape {arr.shape}")
    return arr


def non_finite_error(arr: np.ndarray) -> InvalidInput:
    """The error of :func:`as_float_array` for a 1-D array that holds a NaN or an infinity."""
    bad = int(np.flatnonzero(~np.isfinite(arr))[0])
    return InvalidInput(f"non-finite value {arr[bad]!r} at position {bad}")


def kernel_module(name: str) -> Any:
    """The numba kernel module ``name`` (e.g. ``"detectors._ks_kernel"``), imported on first use since importing
    it imports numba. Hot paths call this a few times per batch: a dict lookup, where a function-level import
    statement costs ~0.3 us."""
    module = sys.modules.get(name)
    if module is None:
        module = importlib.import_module(name)
    return module


def check_scalar(x: Any) -> float:
    """Return ``x`` as a float, raising :class:`InvalidInput` on NaN/inf or a non-number."""
    try:
        v = float(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"expected a number, got {x!r}") from exc
    if not math.isfinite(v):
        raise InvalidInput(f"non-finite value {v!r}")
    return v


def check_binary_array(arr: np.ndarray) -> np.ndarray:
    if arr.size and ((arr < 0.0) | (arr > 1.0)).any():
        bad = int(np.flatnonzero((arr < 0.0) | (arr > 1.0))[0])
        raise InvalidInput(f"binary detectors take values in [0, 1]; got {arr[bad]!r} at position {bad}")
    return arr


def check_binary_scalar(x: Any) -> float:
    v = check_scalar(x)
    if v < 0.0 or v > 1.0:
        raise InvalidInput(f"binary detectors take values in [0, 1]; got {v!r}")
    return v


class DriftDetector:
    """A drift detector that watches a stream of real values."""

    #: names of the constructor parameters, in order; used by ``to_state`` and ``from_state``.
    _params: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._drift_detected = False

    @property
    def drift_detected(self) -> bool:
        return self._drift_detected

    def _reset(self) -> None:
        self._drift_detected = False

    def update(self, x: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_many(self, xs: Any) -> np.ndarray:
        """Reference implementation: subclasses override with a fast path giving the same answer."""
        arr = as_float_array(xs)
        out = []
        for i, x in enumerate(arr):
            self.update(float(x))
            if self.drift_detected:
                out.append(i)
        return np.asarray(out, dtype=np.int64)

    # -- checkpoints -----------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._params}

    def _get_running_state(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_running_state(self, state: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "version": STATE_VERSION,
            "params": self.get_params(),
            "state": self._get_running_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "DriftDetector":
        if state.get("type") != cls.__name__:
            raise ValueError(f"state is for {state.get('type')!r}, not {cls.__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {state.get('version')!r}")
        det = cls(**state["params"])
        det._set_running_state(state["state"])
        return det

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class BinaryDriftDetector(DriftDetector):
    """A drift detector that watches a stream of 0/1 values (e.g. prediction errors)."""

    def __init__(self) -> None:
        super().__init__()
        self._warning_detected = False

    @property
    def warning_detected(self) -> bool:
        return self._warning_detected

    def _reset(self) -> None:
        super()._reset()
        self._warning_detected = False

    def update_many(self, xs: Any, *, warnings: bool = False):  # type: ignore[override]
        arr = check_binary_array(as_float_array(xs))
        drifts, warns = [], []
        for i, x in enumerate(arr):
            self.update(float(x))
            if self.drift_detected:
                drifts.append(i)
            if self.warning_detected:
                warns.append(i)
        d = np.asarray(drifts, dtype=np.int64)
        if warnings:
            return d, np.asarray(warns, dtype=np.int64)
        return d
