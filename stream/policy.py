"""The retrain policy: decides when retraining is worth it, and on which data.

Triggers (each optional, combinable, per model): concept drift; data drift sustained for a period;
performance below a threshold over a window; a schedule (every T seconds of event time, or every N labels);
on demand (a command on the control topic); a schema change. One incident gives one retrain event: after
an event the policy is in cooldown (event time) and only collects evidence; triggers that stay true
(performance, sustained drift) re-arm only after they have become false again.

For concept drift the recommended training window starts at the change point estimate: the first warning
of the warning episode that led to the alarm (binary detectors warn before they alarm; a warning more than
``WARNING_GAP`` labels before the alarm is another, false episode), else the alarm itself, expressed as
input offsets of this partition and an event timestamp. For the other triggers (schedule, new labels, on
demand, performance, sustained data drift) the configured fixed window (``fallback_window_seconds`` before
the trigger) is recommended.

Event time, never wall-clock time, drives every decision, so a replay decides exactly the same.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from stream.config import RetrainPolicyConfig

__all__ = ["Decision", "Position", "RetrainPolicy", "RetrainPolicyConfig"]


@dataclass
class Position:
    inference_offset: int | None
    labels_offset: int | None
    ts: float

    def to_json(self) -> dict[str, Any]:
        return {"inference_offset": self.inference_offset, "labels_offset": self.labels_offset, "ts": self.ts}


@dataclass
class Decision:
    reasons: list[str]
    evidence: list[str]
    window_from: dict[str, Any]
    window_source: str


@dataclass
class RetrainPolicy:
    cfg: RetrainPolicyConfig
    last_retrain_ts: float | None = None
    labels_since: int = 0
    first_seen_ts: float | None = None
    evidence: list[str] = field(default_factory=list)
    change_point: dict[str, Any] | None = None
    #: data-drift signals currently in drift -> event time they entered it
    data_drift_active: dict = field(default_factory=dict)
    performance_armed: bool = True
    sustained_armed: bool = True
    recent_errors: deque = field(default_factory=deque)
    #: running sum of ``recent_errors`` (in the state; recomputed every ``performance_window`` labels)
    recent_errors_sum: float = 0.0
    pending_reasons: list[str] = field(default_factory=list)
    labels_total: int = 0
    last_warning_at: int | None = None
    #: the open degradation episode (one incident): its change point, the served error after it and whether
    #: it already gave a retrain event; None when no incident is open
    episode: dict[str, Any] | None = None

    MAX_EVIDENCE = 50
    #: a warning more than this many labels before the alarm belongs to another (false) episode
    WARNING_GAP = 200

    # -- inputs -----------------------------------------------------------------------------------
    def observe_label(self, ts: float, served_error: float) -> None:
        if self.first_seen_ts is None:
            self.first_seen_ts = ts
        self.labels_since += 1
        self.labels_total += 1
        if self.cfg.performance_threshold > 0:
            window = self.cfg.performance_window
            self.recent_errors.append(served_error)
            self.recent_errors_sum += served_error
            while len(self.recent_errors) > window:
                self.recent_errors_sum -= self.recent_errors.popleft()
            if self.labels_total % window == 0:  # no drift of the running sum over a long life
                self.recent_errors_sum = sum(self.recent_errors)

    def _warning_is_recent(self) -> bool:
        return self.last_warning_at is not None and self.labels_total - self.last_warning_at <= self.WARNING_GAP

    def observe_warning(self, position: Position) -> None:
        if self.change_point is None or not self._warning_is_recent():
            self.change_point = position.to_json()  # a new warning episode starts here
        self.last_warning_at = self.labels_total

    def observe_concept_drift(self, event_id: str, position: Position, direction: str = "degradation",
                              error_before: float | None = None, error_after: float | None = None) -> None:
        """A confirmed change of the served error. An improvement (the error fell) closes the open episode and
        only triggers a retrain with ``retrain_on_improvement``. A degradation opens an episode; while it is
        open, further degradations are the same incident (evidence only, with ``one_retrain_per_episode``)
        unless the error rises clearly beyond the episode's level (see :meth:`_escalates`)."""
        if direction == "improvement":
            self.episode = None
            if not self.cfg.retrain_on_improvement:
                return
        ep = self.episode
        new_episode = direction == "degradation" and (ep is None or self._escalates(ep, error_after))
        if direction == "degradation" and not new_episode and ep["retrained"] and self.cfg.one_retrain_per_episode:
            return  # the incident already has its retrain event: not even evidence for a later one
        self._evidence(event_id)
        if self.change_point is None or not self._warning_is_recent():
            self.change_point = position.to_json()
        if new_episode:
            self.episode = {"change_point": dict(self.change_point), "error_after": error_after, "retrained": False}
        if self.cfg.on_concept_drift:
            self._want("concept_drift")

    @staticmethod
    def _escalates(ep: dict[str, Any], error_after: float | None) -> bool:
        """A degradation inside an open episode is a new incident when the error after it is clearly above the
        episode's (25% relative and 0.01 absolute)."""
        level = ep.get("error_after")
        return error_after is not None and level is not None and error_after > 1.25 * level + 0.01

    def observe_data_drift(self, signal: str, event_id: str | None, ts: float, active: bool) -> None:
        if active:
            if event_id is not None:
                self._evidence(event_id)
            self.data_drift_active.setdefault(signal, ts)
        else:
            self.data_drift_active.pop(signal, None)
            if not self.data_drift_active:
                self.sustained_armed = True

    def observe_schema_change(self, event_id: str) -> None:
        self._evidence(event_id)
        if self.cfg.on_schema_change:
            self._want("schema_change")

    def request(self, reason: str = "on_demand") -> None:
        self._want(reason)

    def _want(self, reason: str) -> None:
        if reason not in self.pending_reasons:
            self.pending_reasons.append(reason)

    def _evidence(self, event_id: str) -> None:
        if event_id not in self.evidence:
            self.evidence.append(event_id)
            del self.evidence[: -self.MAX_EVIDENCE]

    # -- decision ---------------------------------------------------------------------------------
    def decide_at(self, ts: float) -> Decision | None:
        """:meth:`decide` at event time ``ts`` (the only part of the position a decision depends on)."""
        c = self.cfg
        if not c.enabled:
            self.pending_reasons.clear()
            return None
        active = self.data_drift_active
        if c.data_drift_sustained_seconds > 0 and active and self.sustained_armed \
                and ts - min(active.values()) >= c.data_drift_sustained_seconds:
            self.sustained_armed = False
            self._want("data_drift_sustained")
        if c.performance_threshold > 0 and len(self.recent_errors) >= c.performance_window:
            rate = self.recent_errors_sum / len(self.recent_errors)
            if rate > c.performance_threshold and self.performance_armed:
                self.performance_armed = False
                self._want("performance")
            elif rate <= c.performance_threshold:
                self.performance_armed = True
        since = self.last_retrain_ts if self.last_retrain_ts is not None else self.first_seen_ts
        if c.every_seconds > 0 and since is not None and ts - since >= c.every_seconds:
            self._want("schedule")
        if c.every_labels > 0 and self.labels_since >= c.every_labels:
            self._want("new_labels")
        if not self.pending_reasons:
            return None
        on_demand = "on_demand" in self.pending_reasons
        if not on_demand and self.last_retrain_ts is not None and ts - self.last_retrain_ts < c.cooldown_seconds:
            # cooldown: these alarms belong to the incident already reported; they must not become the
            # evidence or the change point of the next one
            self.pending_reasons.clear()
            self.evidence.clear()
            self.change_point = None
            return None
        ep = self.episode
        if ep is not None and ("concept_drift" in self.pending_reasons or "performance" in self.pending_reasons):
            # a retrain for an open incident trains from the incident's change point
            window_from, source = dict(ep["change_point"]), "change_point"
            ep["retrained"] = True
        elif self.change_point is not None and "concept_drift" in self.pending_reasons:
            window_from, source = dict(self.change_point), "change_point"
        else:
            window_from, source = {"inference_offset": None, "labels_offset": None,
                                   "ts": ts - c.fallback_window_seconds}, "fallback"
        decision = Decision(list(self.pending_reasons), list(self.evidence), window_from, source)
        self.pending_reasons.clear()
        self.evidence.clear()
        self.change_point = None
        self.last_warning_at = None
        self.last_retrain_ts = ts
        self.labels_since = 0
        return decision

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "last_retrain_ts": self.last_retrain_ts, "labels_since": self.labels_since,
            "first_seen_ts": self.first_seen_ts, "evidence": list(self.evidence),
            "change_point": self.change_point, "data_drift_active": dict(self.data_drift_active),
            "performance_armed": self.performance_armed, "sustained_armed": self.sustained_armed,
            "recent_errors": list(self.recent_errors), "recent_errors_sum": self.recent_errors_sum,
            "pending_reasons": list(self.pending_reasons),
            "labels_total": self.labels_total, "last_warning_at": self.last_warning_at,
            "episode": self.episode,
        }

    def load_state(self, s: dict[str, Any]) -> None:
        self.last_retrain_ts = s["last_retrain_ts"]
        self.labels_since = s["labels_since"]
        self.first_seen_ts = s["first_seen_ts"]
        self.evidence = list(s["evidence"])
        self.change_point = s["change_point"]
        self.data_drift_active = dict(s["data_drift_active"])
        self.performance_armed = s["performance_armed"]
        self.sustained_armed = s["sustained_armed"]
        self.recent_errors = deque(s["recent_errors"])
        self.recent_errors_sum = float(s.get("recent_errors_sum", sum(self.recent_errors)))
        self.pending_reasons = list(s["pending_reasons"])
        self.labels_total = s["labels_total"]
        self.last_warning_at = s["last_warning_at"]
        self.episode = s.get("episode")
