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
from typing import Any

from stream.config import DataQualityConfig, FeatureSpec
from stream.events import InferenceEvent, output_id

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
        """Return (row is valid for feature drift, issues to report after rate limiting)."""
        self.events_seen += 1
        issues: list[Issue] = []
        if not self.inferred:
            self.inferred = True
            self.types = {k: value_type(v) for k, v in ev.features.items()}
            issues.append(Issue("model_undeclared", MODEL_WIDE,
                                {"inferred_types": dict(self.types), "note": "types inferred from this event"}))
        valid = True
        features = ev.features
        for name, tp in self.types.items():
            if name not in features:
                issues.append(Issue("missing_feature", name, {"expected_type": tp}))
                valid = False
        for name, v in features.items():
            if name not in self.types:
                issues.append(Issue("unexpected_feature", name, {"value_type": value_type(v)}))
                valid = False
                continue
            vt = value_type(v)
            tp = self.types[name]
            if vt is None:
                spec = self._specs.get(name)
                if spec is not None and not spec.nullable:
                    issues.append(Issue("null_value", name, {}))
                continue
            if tp is None:  # inferred schema, first non-null value fixes the type
                tp = self.types[name] = vt
            if vt != tp:
                issues.append(Issue("wrong_type", name, {"expected_type": tp, "value_type": vt,
                                                         "value": _short(v)}))
                valid = False
                continue
            spec = self._specs.get(name)
            if spec is not None:
                if tp == "numeric" and ((spec.min is not None and v < spec.min)
                                        or (spec.max is not None and v > spec.max)):
                    issues.append(Issue("out_of_range", name, {"value": v, "min": spec.min, "max": spec.max}))
                elif tp == "categorical" and spec.categories and v not in spec.categories:
                    issues.append(Issue("unseen_category", name, {"value": _short(v)}))
            if tp != "boolean":
                run = self._runs.get(name)
                if run is None or run[0] != v or type(run[0]) is not type(v):
                    self._runs[name] = run = [v, 0, False]
                run[1] += 1
                if run[1] >= self.cfg.constant_window and not run[2]:
                    run[2] = True
                    issues.append(Issue("constant_feature", name, {"value": _short(v), "run_length": run[1]}))
        return valid, [i for i in issues if self._allow(i)]

    def _allow(self, issue: Issue) -> bool:
        key = (issue.check, issue.feature)
        lim = self._limits.get(key)
        if lim is not None and self.events_seen - lim[0] < self.cfg.rate_limit_events:
            lim[1] += 1
            return False
        issue.evidence["suppressed_since_last"] = 0 if lim is None else lim[1]
        self._limits[key] = [self.events_seen, 0]
        return True

    def event(self, issue: Issue, topic: str, partition: int, offset: int, ts: float,
              event_id: str) -> dict[str, Any]:
        return {
            "id": output_id(topic, partition, offset, f"dq:{issue.check}:{issue.feature}"),
            "type": "data-quality",
            "check": issue.check,
            "feature": issue.feature,
            "model": self.model,
            "partition": partition,
            "offset": offset,
            "ts": ts,
            "event_id": event_id,
            "severity": SEVERITY[issue.check],
            "evidence": issue.evidence,
        }

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


def _short(v: Any) -> Any:
    return v[:64] if isinstance(v, str) else v
