"""Data-quality checks over time rather than over one event: label delay growth, volume drop, no data.

* **label delay growth** (per model, event time): the mean prediction-to-label delay of the last
  ``label_delay_window`` joins exceeds ``label_delay_growth_factor`` times the mean of the first window
  (the reference). Reported on entering that state, re-armed when it ends.
* **volume drop** (per model, event time): tumbling windows of ``volume_window_seconds``; a window whose
  inference count is below ``volume_drop_ratio`` times the first full window's count is reported.
* **no data** (per partition, wall clock): nothing arrived for ``no_data_seconds``. This one cannot be in
  event time (no event arrives); it is published with an id derived from the partition's position, so a
  replay does not multiply it.

The first two are plain data in the partition checkpoint and decided record by record, so a replay after a
crash reports exactly the same.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from stream.config import DataQualityConfig


class LabelDelayWatch:
    def __init__(self, cfg: DataQualityConfig) -> None:
        self.cfg = cfg
        self.reference: list[float] = []
        self.recent: deque[float] = deque(maxlen=max(cfg.label_delay_window, 1))
        #: running sums (part of the state, so that a replay continues with the very same floats)
        self.reference_sum = 0.0
        self.recent_sum = 0.0
        self.growing = False

    def observe(self, delay: float) -> dict[str, Any] | None:
        """Returns evidence when the delay starts to grow, else None."""
        got = self.observe_many([delay])
        return got[0][1] if got else None

    def observe_many(self, delays: list[float]) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`observe` for each delay in order; returns (index, evidence) for each that reported."""
        if self.cfg.label_delay_growth_factor <= 0:
            return []
        out: list[tuple[int, dict[str, Any]]] = []
        reference, window = self.reference, self.cfg.label_delay_window
        k, n = 0, len(delays)
        while k < n and len(reference) < window:  # the reference fills first: nothing to report
            d = delays[k]
            if d < 0.0:
                d = 0.0
            reference.append(d)
            self.reference_sum += d
            k += 1
        if k == n:
            return out
        # the reference is full: its mean is fixed from here on
        factor = self.cfg.label_delay_growth_factor
        ref = self.reference_sum / len(reference)
        limit = factor * ref
        recent = self.recent
        maxlen = recent.maxlen
        rs, growing = self.recent_sum, self.growing
        for i in range(k, n):
            d = delays[i]
            if d < 0.0:
                d = 0.0
            m = len(recent)
            if m == maxlen:
                rs -= recent[0]
            else:
                m += 1
            recent.append(d)
            rs += d
            if m < window:
                continue
            cur = (rs if rs > 0.0 else 0.0) / m
            grown = cur > limit if ref > 0 else cur > 0
            if grown and not growing:
                growing = True
                out.append((i, {"reference_mean_seconds": ref, "recent_mean_seconds": cur, "factor": factor,
                                "window": window}))
            elif not grown:
                growing = False
        self.recent_sum, self.growing = rs, growing
        return out

    def to_state(self) -> dict[str, Any]:
        return {"reference": self.reference, "recent": list(self.recent), "growing": self.growing,
                "reference_sum": self.reference_sum, "recent_sum": self.recent_sum}

    def load_state(self, s: dict[str, Any]) -> None:
        self.reference = list(s["reference"])
        self.recent = deque(s["recent"], maxlen=max(self.cfg.label_delay_window, 1))
        self.growing = bool(s["growing"])
        self.reference_sum = float(s.get("reference_sum", sum(self.reference)))
        self.recent_sum = float(s.get("recent_sum", sum(self.recent)))


class VolumeWatch:
    def __init__(self, cfg: DataQualityConfig) -> None:
        self.cfg = cfg
        self.window_start: float | None = None
        self.count = 0
        self.reference: int | None = None

    def observe(self, ts: float) -> dict[str, Any] | None:
        """Count one inference event at event time ``ts``; returns evidence when a finished window dropped."""
        c = self.cfg
        if c.volume_drop_ratio <= 0 or c.volume_window_seconds <= 0:
            return None
        if self.window_start is None:
            self.window_start = ts
        out = None
        if ts >= self.window_start + c.volume_window_seconds:
            finished = self.count
            if self.reference is None:
                self.reference = finished
            elif finished < c.volume_drop_ratio * self.reference:
                out = {"window_start": self.window_start, "window_seconds": c.volume_window_seconds,
                       "count": finished, "reference_count": self.reference, "ratio": c.volume_drop_ratio}
            # windows with no events at all are empty windows too
            skipped = int((ts - self.window_start) // c.volume_window_seconds)
            if out is None and skipped > 1 and self.reference:
                out = {"window_start": self.window_start + c.volume_window_seconds,
                       "window_seconds": c.volume_window_seconds, "count": 0, "reference_count": self.reference,
                       "ratio": c.volume_drop_ratio, "empty_windows": skipped - 1}
            self.window_start += skipped * c.volume_window_seconds
            self.count = 0
        self.count += 1
        return out

    def observe_many(self, ts: list[float]) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`observe` for each event time in order; returns (index, evidence) for each that reported."""
        c = self.cfg
        if c.volume_drop_ratio <= 0 or c.volume_window_seconds <= 0 or not ts:
            return []
        if self.window_start is None:
            self.window_start = ts[0]
        out = []
        observe = self.observe
        end = self.window_start + c.volume_window_seconds
        count = self.count
        for i, t in enumerate(ts):
            if t < end:  # inside the current window: just count (the usual case)
                count += 1
                continue
            self.count = count
            got = observe(t)
            if got is not None:
                out.append((i, got))
            end = self.window_start + c.volume_window_seconds
            count = self.count
        self.count = count
        return out

    def to_state(self) -> dict[str, Any]:
        return {"window_start": self.window_start, "count": self.count, "reference": self.reference}

    def load_state(self, s: dict[str, Any]) -> None:
        self.window_start = s["window_start"]
        self.count = int(s["count"])
        self.reference = s["reference"]
