"""Stage 4b, data drift: windowed two-sample tests on features, served predictions / scores and labels.

One :class:`DataDriftMonitor` per (partition, model). Each signal has one test:

* ``feature`` -- every declared feature (or, for an undeclared model, every inferred one, in order of
  first appearance), at most ``max_features``: numeric -> KS or PSI, categorical / boolean -> chi2 or JS.
  Only valid rows (no schema violation) and non-null values feed it.
* ``prediction`` -- the served prediction (categorical test on ``str(prediction)`` for classification,
  numeric test for regression) and ``score`` (numeric test) when the event has one.
* ``label`` -- labels as they arrive (categorical for classification, numeric for regression).

Values are buffered during a micro-batch and fed to the tests with ``update_many`` at its end, like
:meth:`stream.detect.ModelMonitor.run_detectors`; each result's ``position`` maps back to the input
position of the value that triggered it, so events do not depend on where batch boundaries fell.
To avoid alarm floods an event is emitted only on a test's transition from no-drift to drift; the test
must report no drift again before it can alarm again.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import countOf
from typing import TYPE_CHECKING, Any, Sequence

from detectors.registry import detector_class, drift_test_class
from detectors.window import CategoricalWindowedTest, DriftTestResult, WindowedDriftTest
from stream.config import DataDriftConfig

if TYPE_CHECKING:
    from stream.columns import Columns

_MISSING = object()
_KIND_ORDER = {"feature": 0, "prediction": 1, "label": 2}


@dataclass(slots=True)
class Position:
    """Where a value came from: the input record and its event."""

    topic: str
    offset: int
    ts: float
    event_id: str


@dataclass(slots=True)
class DriftFinding:
    kind: str
    signal: str
    detector: str
    result: DriftTestResult
    at: Position


class _Signal:
    """One test plus its batch buffer and its alarm state."""

    __slots__ = ("kind", "signal", "test", "detector", "in_drift", "values", "positions", "numeric",
                 "mean_detector")

    def __init__(self, kind: str, signal: str, test: WindowedDriftTest, in_drift: bool = False) -> None:
        self.numeric = not isinstance(test, CategoricalWindowedTest)
        #: short name of the test in events, ids and metrics (a signal keeps its test for life)
        self.detector = test.event_name
        self.kind = kind
        self.signal = signal
        self.test = test
        self.in_drift = in_drift
        self.values: list[Any] = []
        self.positions: list[Position] = []
        #: optional ADWIN / Page-Hinkley on the values themselves (numeric features only)
        self.mean_detector: Any = None


class DataDriftMonitor:
    """Feature, prediction and label drift of one model in one partition (see the module docstring)."""

    def __init__(self, model: str, task: str, cfg: DataDriftConfig) -> None:
        self.model = model
        self.task = task
        self.cfg = cfg
        #: "kind\x00signal" -> signal; insertion order is the order signals first appeared
        self.signals: dict[str, _Signal] = {}
        #: feature name -> its signal (None once max_features is reached); derived, rebuilt after a load
        self._feature_cache: dict[str, _Signal | None] = {}
        self.features_tracked = 0
        #: the latest test result per signal, for the statistic gauge
        self.latest: dict[tuple[str, str, str], float] = {}
        #: the label signal of a classification model once it exists; derived, dropped on a load
        self._labels: _Signal | None = None

    def _make_test(self, numeric: bool) -> WindowedDriftTest:
        c = self.cfg
        name = c.numeric_test if numeric else c.categorical_test
        cls = drift_test_class(name)
        params: dict[str, Any] = {"reference_size": c.reference_size, "window_size": c.window_size, "step": c.step}
        # a p-value test takes the shared significance level, a distance test its own threshold setting
        # (psi_threshold, js_threshold)
        if "alpha" in cls._params:
            params["alpha"] = c.alpha
        else:
            params["threshold"] = getattr(c, f"{name}_threshold")
        return cls(**params)

    def _signal(self, kind: str, signal: str, numeric: bool) -> _Signal | None:
        key = f"{kind}\x00{signal}"
        s = self.signals.get(key)
        if s is None:
            if kind == "feature":
                if self.features_tracked >= self.cfg.max_features:
                    return None
                self.features_tracked += 1
            s = self.signals[key] = _Signal(kind, signal, self._make_test(numeric))
            if kind == "feature" and numeric and self.cfg.mean_detector:
                from detectors import make_detector

                s.mean_detector = make_detector(self.cfg.mean_detector)
        return s

    # -- per event ----------------------------------------------------------------------------------
    def add_inference(self, features: dict[str, Any], types: dict[str, str | None], valid: bool,
                      prediction: Any, score: float | None, at: Position) -> None:
        if not self.cfg.enabled:
            return
        if valid:
            cache = self._feature_cache
            for name, v in features.items():
                if v is None:
                    continue
                s = cache.get(name, _MISSING)
                if s is _MISSING:
                    tp = types.get(name)
                    if tp is None:
                        continue
                    # per-feature handle: no key building per value (hot path)
                    s = cache[name] = self._signal("feature", name, tp == "numeric")
                if s is not None:
                    s.values.append(float(v) if s.numeric else v)
                    s.positions.append(at)
        self._add_target("prediction", "prediction", prediction, at)
        if score is not None:
            s = self._signal("prediction", "score", True)
            s.values.append(float(score))
            s.positions.append(at)

    def add_inferences(self, rows: list[dict[str, Any]], columns: Sequence[Columns] | None,
                       types: dict[str, str | None], valid: list[bool], predictions: list[Any],
                       scores: list[float | None], positions: list[Position]) -> None:
        """:meth:`add_inference` for consecutive events, with identical buffers and signals. ``columns``
        comes from :meth:`stream.quality.DataQualityChecker.check_many`: the rows of each segment in it go
        column by column (all valid, or all invalid if it has unexpected features), the others one by
        one, in row order; ``None`` (data quality off): every row one by one."""
        if not self.cfg.enabled:
            return
        done = 0  # rows before this one are added
        for seg in columns or ():
            for i in range(done, seg.start):
                self.add_inference(rows[i], types, valid[i], predictions[i], scores[i], positions[i])
            a, done = seg.start, seg.stop
            if a or done < len(rows):
                self._add_columns(rows, seg, types, predictions[a:done], scores[a:done], positions[a:done])
            else:
                self._add_columns(rows, seg, types, predictions, scores, positions)
        for i in range(done, len(rows)):
            self.add_inference(rows[i], types, valid[i], predictions[i], scores[i], positions[i])

    def _add_columns(self, rows: list[dict[str, Any]], columns: Columns, types: dict[str, str | None],
                     predictions: list[Any], scores: list[float | None], positions: list[Position]) -> None:
        """:meth:`add_inference` for the rows of one segment, column by column; ``predictions``,
        ``scores`` and ``positions`` are those of its rows."""
        first = columns.start
        regression = self.task == "regression"
        if regression:
            kept = [(float(v), at) for v, at in zip(predictions, positions)
                    if type(v) is not bool and isinstance(v, (int, float))]
        # create new signals in the order the per-event path would: by first appearance, and within an
        # event features (in its key order), then the prediction, then the score
        births: list[tuple[int, int, int, str]] = []
        cache = self._feature_cache
        # rows with unexpected features are invalid: they feed no feature drift
        features = {} if columns.unexpected else columns
        for name, col in features.items():
            if name not in cache:
                row = next((i for i, v in enumerate(col) if v is not None), None)
                if row is not None:
                    births.append((row, 0, list(rows[first + row]).index(name), name))
        if "prediction\x00prediction" not in self.signals:
            row = 0 if not regression else next(
                (i for i, v in enumerate(predictions) if type(v) is not bool and isinstance(v, (int, float))), None)
            if row is not None:
                births.append((row, 1, 0, ""))
        if "prediction\x00score" not in self.signals:
            row = next((i for i, sc in enumerate(scores) if sc is not None), None)
            if row is not None:
                births.append((row, 2, 0, ""))
        for _, what, _, name in sorted(births):
            if what == 0:
                cache[name] = self._signal("feature", name, types[name] == "numeric")
            elif what == 1:
                self._signal("prediction", "prediction", regression)
            else:
                self._signal("prediction", "score", True)
        for name, col in features.items():
            s = cache.get(name)
            if s is None:
                continue
            non_null = columns.non_null.get(name)
            if non_null is None:
                values, at = col, positions
            else:  # check_many has filtered the nulls out already
                keep, values = non_null
                if not values:
                    continue
                at = list(map(positions.__getitem__, keep))
            s.values.extend(map(float, values) if s.numeric and type(values[0]) is not float else values)
            s.positions.extend(at)
        if regression:
            if kept:
                s = self.signals["prediction\x00prediction"]
                s.values.extend(v for v, _ in kept)
                s.positions.extend(at for _, at in kept)
        else:
            s = self.signals["prediction\x00prediction"]
            s.values.extend(map(str, predictions))
            s.positions.extend(positions)
        s = self.signals.get("prediction\x00score")
        if s is not None:
            if countOf(map(type, scores), float) == len(scores):  # float(x) is x for a float (the usual case)
                s.values.extend(scores)
                s.positions.extend(positions)
            elif None not in scores:
                s.values.extend(map(float, scores))
                s.positions.extend(positions)
            else:
                for sc, at in zip(scores, positions):
                    if sc is not None:
                        s.values.append(float(sc))
                        s.positions.append(at)

    def add_rows(self, rows: Sequence[tuple[dict[str, Any], dict[str, str | None], bool, Any, float | None]],
                 positions: Sequence[Position]) -> bool:
        """:meth:`add_inference` for consecutive rows (``(features, types, valid, prediction, score)``),
        column by column, when that gives identical buffers and signals: every row valid and no signal to
        create (every feature, the prediction and, if a row has one, the score have theirs). Returns False,
        having added nothing, otherwise (the caller adds them one by one, where signals are created in row
        order)."""
        if not self.cfg.enabled or not rows:
            return True
        cache = self._feature_cache
        known = cache.keys()
        pred = self.signals.get("prediction\x00prediction")
        if pred is None:
            return False
        score = self.signals.get("prediction\x00score")
        feats = [r[0] for r in rows]
        if not all(r[2] for r in rows) or not all(f.keys() <= known for f in feats):
            return False
        scores = [r[4] for r in rows]
        if score is None and countOf(scores, None) < len(scores):
            return False
        for name, s in cache.items():
            if s is None:
                continue
            col = [f.get(name) for f in feats]
            if None in col:
                keep = [i for i, v in enumerate(col) if v is not None]
                if not keep:
                    continue
                col = [col[i] for i in keep]
                at: Sequence[Position] = [positions[i] for i in keep]
            else:
                at = positions
            s.values.extend(map(float, col) if s.numeric else col)
            s.positions.extend(at)
        predictions = [r[3] for r in rows]
        if self.task == "regression":
            for v, at1 in zip(predictions, positions):
                if not isinstance(v, bool) and isinstance(v, (int, float)):
                    pred.values.append(float(v))
                    pred.positions.append(at1)
        else:
            pred.values.extend(map(str, predictions))
            pred.positions.extend(positions)
        if score is not None:
            for sc, at1 in zip(scores, positions):
                if sc is not None:
                    score.values.append(float(sc))
                    score.positions.append(at1)
        return True

    def add_label(self, label: Any, at: Position) -> None:
        s = self._labels  # one call per label: skip the key building and lookup of _add_target
        if s is not None:
            s.values.append(str(label))
            s.positions.append(at)
        elif self.cfg.enabled:
            self._add_target("label", "label", label, at)
            if self.task != "regression":
                self._labels = self.signals["label\x00label"]

    def _add_target(self, kind: str, signal: str, v: Any, at: Position) -> None:
        if self.task == "regression":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return  # reported elsewhere (non_numeric_regression); nothing to test
            v, numeric = float(v), True
        else:
            v, numeric = str(v), False
        # once per label and per event's prediction: look the signal up here, create it only the first time
        s = self.signals.get(f"{kind}\x00{signal}")
        if s is None:
            s = self._signal(kind, signal, numeric)
        s.values.append(v)
        s.positions.append(at)

    # -- per micro-batch ----------------------------------------------------------------------------
    def run_tests(self) -> list[DriftFinding]:
        """Feed the batch to the tests; return the no-drift -> drift transitions, in input order."""
        found: list[DriftFinding] = []
        #: drift -> no-drift transitions of this batch (the retrain policy needs them; no event is published)
        self.recoveries: list[DriftFinding] = []
        for s in self.signals.values():
            if not s.values:
                continue
            if s.mean_detector is not None:
                for i in s.mean_detector.update_many(s.values):
                    det = type(s.mean_detector).__name__
                    r = DriftTestResult(test=det.lower(), statistic=None, p_value=None, distance=None, drift=True,
                                        threshold=None, reference_size=0, current_size=0,
                                        position=s.test.n_seen + int(i) + 1)
                    found.append(DriftFinding(s.kind, s.signal, det, r, s.positions[int(i)]))
            n0 = s.test.n_seen
            results = s.test.update_many(s.values)
            for r in results:
                at = s.positions[r.position - n0 - 1]
                if r.drift and not s.in_drift:
                    found.append(DriftFinding(s.kind, s.signal, s.detector, r, at))
                elif s.in_drift and not r.drift:
                    self.recoveries.append(DriftFinding(s.kind, s.signal, s.detector, r, at))
                s.in_drift = r.drift
            if results:
                self.latest[(s.kind, s.signal, s.detector)] = results[-1].statistic
            s.values.clear()
            s.positions.clear()
        found.sort(key=lambda f: (f.at.topic, f.at.offset, f.kind, f.signal))
        # signals' order depends on where batch boundaries fell; the retrain policy must not
        self.recoveries.sort(key=lambda f: (f.at.topic, f.at.offset, f.kind, f.signal))
        return found

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        assert not any(s.values for s in self.signals.values()), "state is taken between micro-batches"
        # by kind, each kind in order of first appearance: labels are buffered record by record and
        # inference values per micro-batch, so whether the label signal or the feature signals came first
        # depends on where batch boundaries fell; the state must not
        ordered = sorted(self.signals.values(), key=lambda s: _KIND_ORDER[s.kind])
        return {
            "signals": [[s.kind, s.signal, s.in_drift, s.test.to_state(),
                         None if s.mean_detector is None else s.mean_detector.to_state()]
                        for s in ordered],
            "features_tracked": self.features_tracked,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.signals = {}
        self._feature_cache = {}
        self._labels = None
        from detectors import detector_from_state

        for kind, signal, in_drift, tstate, *rest in state["signals"]:
            test = detector_class(tstate["type"]).from_state(tstate)
            sig = self.signals[f"{kind}\x00{signal}"] = _Signal(kind, signal, test, bool(in_drift))
            if rest and rest[0] is not None:
                sig.mean_detector = detector_from_state(rest[0])
        self.features_tracked = int(state["features_tracked"])
