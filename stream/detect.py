"""Stage 4, detect: per model in a partition, the error streams and the online challenger model.

The served model's error on every joined event (0/1 for classification, absolute error for regression)
is buffered during a micro-batch and fed to the configured detectors with ``update_many`` at the end of
the batch; alarm positions map back to the input position that completed the join.

The online River model is prequential: it predicts each inference event before it has seen its label
and learns from it when the label joins. Its error is tracked on exactly the same joined events as the
served model's.
"""

from __future__ import annotations

import numbers
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors import BINARY, DriftDetector, detector_from_state, make_detector
from stream.config import ModelSpec, OnlineModelConfig
from stream.errors import InvalidMessage
from stream.join import Joined

#: window over which rolling accuracies / errors are reported
ROLLING = 1000


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) if isinstance(a, (bool, int, float)) and isinstance(b, (bool, int, float)) else a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


def served_error(task: str, prediction: Any, label: Any) -> float:
    if task == "classification":
        return 0.0 if _same(prediction, label) else 1.0
    if isinstance(prediction, bool) or isinstance(label, bool) or not isinstance(prediction, (int, float)) \
            or not isinstance(label, (int, float)):
        raise InvalidMessage("non_numeric_regression", "regression prediction and label must be numbers")
    return abs(float(prediction) - float(label))


def build_online_model(cfg: OnlineModelConfig, task: str):
    """The default challenger: scaled numeric features + one-hot categoricals into a linear model."""
    from river import compose, linear_model, optim, preprocessing, tree

    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    if cfg.kind == "hoeffding_tree":
        return tree.HoeffdingTreeClassifier() if task == "classification" else tree.HoeffdingTreeRegressor()
    head: Any
    if task == "regression":
        head = linear_model.LinearRegression(optimizer=optim.SGD(cfg.learning_rate))
    else:
        from river import multiclass

        head = multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(cfg.learning_rate)))
    return (numeric + categorical) | head


def _river_x(features: dict[str, Any]) -> dict[str, Any]:
    # booleans are categories to River's one-hot; nulls are left out (missing)
    return {k: (str(v) if isinstance(v, bool) else v) for k, v in features.items() if v is not None}


@dataclass(slots=True)
class Alarm:
    detector: str
    warning: bool
    joined: Joined
    error_index: int
    #: the detector's current estimate, if it has one (ADWIN's mean, DDM's p+s ...)
    estimate: float | None
    served_error_rolling: float
    online_error_rolling: float | None
    joined_count: int


class ModelMonitor:
    """Everything driftstream tracks for one model name in one partition."""

    def __init__(self, model: str, spec: ModelSpec) -> None:
        self.model = model
        self.spec = spec
        self.detectors: list[DriftDetector] = [make_detector(d.name, **dict(d.params)) for d in spec.error_detectors]
        self.online = build_online_model(spec.online_model, spec.task) if spec.online_model.enabled else None
        self.model_version = 1
        self.joined = 0
        self.served_errors_total = 0.0
        self.online_errors_total = 0.0
        self.recent_served: deque[float] = deque(maxlen=ROLLING)
        self.recent_online: deque[float] = deque(maxlen=ROLLING)
        self._batch: list[tuple[float, float | None, Joined]] = []
        self._batch_start: tuple[list[float], list[float], int] = ([], [], 0)

    # -- per event --------------------------------------------------------------------------------
    def predict_online(self, features: dict[str, Any]) -> Any:
        if self.online is None:
            return None
        if self.spec.task == "classification":
            return self.online.predict_one(_river_x(features))
        return float(self.online.predict_one(_river_x(features)))

    def on_joined(self, j: Joined) -> None:
        err = served_error(self.spec.task, j.prediction.prediction, j.label)
        if not self._batch:
            self._batch_start = (list(self.recent_served), list(self.recent_online), self.joined)
        oerr = None
        self.joined += 1
        self.served_errors_total += err
        self.recent_served.append(err)
        if self.online is not None:
            op = j.prediction.online_prediction
            oerr = 1.0 if op is None else served_error(self.spec.task, op, j.label) if self.spec.task == "classification" \
                else abs(float(op) - float(j.label))
            self.online_errors_total += oerr
            self.recent_online.append(oerr)
            self.online.learn_one(_river_x(j.prediction.features), j.label)
        self._batch.append((err, oerr, j))

    # -- per micro-batch ----------------------------------------------------------------------------
    def run_detectors(self) -> list[Alarm]:
        if not self._batch:
            return []
        errors = np.fromiter((e for e, _, _ in self._batch), dtype=np.float64, count=len(self._batch))
        alarms: list[Alarm] = []
        for cfg, det in zip(self.spec.error_detectors, self.detectors):
            if cfg.name in BINARY:
                drifts, warns = det.update_many(errors, warnings=True)
                for i in warns:
                    alarms.append(self._alarm(cfg.name, True, int(i), None))
            else:
                drifts = det.update_many(errors)
            for i in drifts:
                alarms.append(self._alarm(cfg.name, False, int(i), None))
        self._batch.clear()
        alarms.sort(key=lambda a: (a.error_index, a.detector, a.warning))
        return alarms

    def _alarm(self, name: str, warning: bool, i: int, estimate: float | None) -> Alarm:
        """An alarm with the rolling errors as they were at the alarming event (not at batch end), so
        that the content does not depend on where micro-batch boundaries fell."""
        served0, online0, joined0 = self._batch_start
        served = (served0 + [e for e, _, _ in self._batch[: i + 1]])[-ROLLING:]
        online = (online0 + [o for _, o, _ in self._batch[: i + 1] if o is not None])[-ROLLING:]
        return Alarm(name, warning, self._batch[i][2], i, estimate,
                     sum(served) / len(served), sum(online) / len(online) if online else None, joined0 + i + 1)

    # -- summaries and state ------------------------------------------------------------------------
    def rolling_served_error(self) -> float | None:
        return sum(self.recent_served) / len(self.recent_served) if self.recent_served else None

    def rolling_online_error(self) -> float | None:
        return sum(self.recent_online) / len(self.recent_online) if self.recent_online else None

    def to_state(self) -> dict[str, Any]:
        assert not self._batch, "state is taken between micro-batches"
        return {
            "detectors": [d.to_state() for d in self.detectors],
            "model_version": self.model_version,
            "joined": self.joined,
            "served_errors_total": self.served_errors_total,
            "online_errors_total": self.online_errors_total,
            "recent_served": list(self.recent_served),
            "recent_online": list(self.recent_online),
        }

    def load_state(self, state: dict[str, Any], online_model: Any) -> None:
        self.detectors = [detector_from_state(s) for s in state["detectors"]]
        self.model_version = state["model_version"]
        self.joined = state["joined"]
        self.served_errors_total = state["served_errors_total"]
        self.online_errors_total = state["online_errors_total"]
        self.recent_served = deque(state["recent_served"], maxlen=ROLLING)
        self.recent_online = deque(state["recent_online"], maxlen=ROLLING)
        if online_model is not None:
            self.online = online_model


def _estimate(det: DriftDetector) -> float | None:
    v = getattr(det, "estimation", None)
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
