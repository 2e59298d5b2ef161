"""Stage 4, detect: per model in a partition, the error streams and the online challenger model.

The served model's error on every joined event (0/1 for classification, absolute error for regression)
is buffered during a micro-batch and fed to the configured detectors with ``update_many`` at the end of
the batch; alarm positions map back to the input position that completed the join.

The online model (:func:`stream.learner.build_online_model`: compiled and River-exact, or a River model) is
prequential: it predicts each inference event before it has seen its label and learns from it when the label
joins. The compiled model does both for a whole micro-batch in one replay, in arrival order
(:meth:`ModelMonitor.settle_online`); River's models are called per event. Its error is tracked on exactly the same joined events as the
served model's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from detectors import BINARY, DriftDetector, detector_class, detector_from_state, make_detector
from stream.config import ModelSpec
from stream.errors import InvalidMessage
from stream.join import Joined
from stream.learner import OnlineLinearModel, build_online_model

#: window over which rolling accuracies / errors are reported
ROLLING = 1000
#: an online-model operation's record sequence number
_SEQ = itemgetter(3)


def _same(a: Any, b: Any) -> bool:
    t = type(a)
    if t is type(b):  # the usual case, same answers as below
        if t is str or t is bool:
            return a == b
        if t is int or t is float:
            return float(a) == float(b)
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


def _river_x(features: dict[str, Any]) -> dict[str, Any]:
    # booleans are categories to River's one-hot; nulls are left out (missing)
    return {k: (str(v) if isinstance(v, bool) else v) for k, v in features.items() if v is not None}


def model_x(model: Any, features: dict[str, Any]) -> dict[str, Any]:
    """The features as ``model`` takes them: the compiled model reads the decoded dict itself (booleans as
    categories, nulls missing: what :func:`_river_x` makes for River's models)."""
    return features if type(model) is OnlineLinearModel else _river_x(features)


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
    #: threshold calibration used by the detector, if it was calibrated (see detectors.calibrate)
    calibration: dict[str, Any] | None = None
    #: which way the served error moved: "degradation" (it rose) or "improvement" (it fell)
    direction: str = "degradation"
    #: the served error before and after the estimated change point (see :func:`change_point`)
    error_before: float | None = None
    error_after: float | None = None
    #: joins between the estimated change point and the alarming join (the alarm's delay in labels)
    change_joins_before: int = 0


@dataclass(slots=True)
class Swap:
    """The online model was replaced after its own error drifted."""

    joined: Joined
    detector: str
    version: int
    background_trained_on: int


@dataclass(slots=True)
class CalibrationRefused:
    """A detector's calibration could not meet its false-alarm law; what the detector does instead."""

    #: index, in the errors given to :meth:`ConceptDetectors.update_many`, of the error that completed the
    #: reference the refusal was measured on
    index: int
    detector: str
    error: Exception
    #: "defaults" (the detector runs on its configured parameters, uncalibrated) or "off"
    fallback: str
    #: what the detector's calibration entry says now (the refusal, the suggestion, the reference size)
    calibration: dict[str, Any]


@dataclass(slots=True)
class Recalibrated:
    """A detector's re-calibration after a drift alarm (see :class:`ConceptDetectors`)."""

    #: index, in the errors given to :meth:`ConceptDetectors.update_many`, of the new concept's reference's
    #: last error (the new values take effect from the next one)
    index: int
    detector: str
    #: "recalibrated" (new values), "kept" (the rate had not changed: same values) or "refused" (fallback)
    outcome: str
    #: the detector's calibration entry from then on
    calibration: dict[str, Any]


#: two-sided 98% normal quantile: the level of calibration's own reference check
_Z98 = 2.326


def same_error_rate(calibration: dict[str, Any], reference: np.ndarray) -> bool:
    """Whether a 0/1 ``reference`` has the error rate of the reference ``calibration`` was made on, by the
    two-sample test of proportions at the 98% level (False for a real-valued reference: no rate to test)."""
    p1, n1 = calibration.get("reference_rate"), calibration.get("reference_size") or 0
    n2 = len(reference)
    if p1 is None or not n1 or not n2 or not np.isin(reference, (0.0, 1.0)).all():
        return False
    p2 = float(reference.mean())
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return p1 == p2
    return abs(p1 - p2) <= _Z98 * float(np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)))


class ConceptDetectors:
    """The error detectors of one model, each calibrated on its first errors when it asks for it.

    A detector with ``false_alarm_every`` collects ``calibration_window`` errors first. When calibration
    says the reference is too short to pin the rate (:class:`detectors.calibrate.ReferenceTooShort`), it
    keeps collecting up to what calibration asks for, within ``calibration_max_window``; when calibration
    refuses (any other :class:`~detectors.calibrate.CalibrationError`, or a reference that would have to
    exceed the cap), the detector falls back as its ``on_calibration_error`` says (its configured
    parameters, or off) and the refusal is left in :attr:`refusals` for the caller to report. Nothing of this
    depends on where batches are cut: the reference is the same first errors whatever the batch sizes.

    **Re-calibration after a change** (``recalibrate_after_change``, on by default): a calibrated detector's
    drift alarm (not a warning) says the error stream changed, and its threshold was set for the old error
    rate. From the error after the alarm it collects a fresh reference of the new concept (``calibration_window``
    errors, extended on :class:`~detectors.calibrate.ReferenceTooShort` up to ``calibration_max_window``, as
    the first time) while it keeps running on its old values; when the reference is complete the change is
    *confirmed* if the reference's error rate differs from the calibrated reference's (two-sample test at the
    98% level, the level of calibration's own reference check; a real-valued reference always counts as
    changed). A confirmed change is calibrated again (same target, seed, budget and fallback) and a fresh
    detector with the new values takes over from the next error; an unconfirmed one keeps the detector and
    its values (a false alarm, or a change that left the rate where it was). Either way the outcome is in the
    detector's calibration entry (``"recalibration"``: number, outcome, the alarm and swap positions in errors
    seen, the previous values) and in :attr:`recalibrations`; a refusal falls back as the first time and is in
    :attr:`refusals`. Alarms during the collection are the old detector's; when it alarmed during it (a second
    change may lie inside the reference), the errors after its last such alarm start a follow-up reference,
    tested the same way. A detector whose calibration was refused runs its fallback: with ``"defaults"`` the
    fallback's drift alarms start a re-calibration the same way (confirmed against the refused reference's
    rate), so a change that brings the error rate within calibration's reach gets a calibrated detector; with
    ``"off"`` there is no detector to alarm and it stays off. Positions are counted in errors given to
    :meth:`update_many`, so the swap comes at the same error for any batch sizes and after a restart from
    :meth:`to_state`.
    """

    def __init__(self, configs: tuple[Any, ...]) -> None:
        self.configs = configs
        self.detectors: list[DriftDetector | None] = [
            None if d.false_alarm_every else make_detector(d.name, **dict(d.params)) for d in configs]
        self.calibrations: list[dict[str, Any] | None] = [None] * len(configs)
        self.buffers: list[list[float]] = [[] for _ in configs]
        #: the reference size each waiting detector collects (grows when calibration asks for more)
        self.needs: list[int] = [d.calibration_window for d in configs]
        #: refusals since the caller last took them
        self.refusals: list[CalibrationRefused] = []
        #: per detector, the errors seen at the drift alarm whose new concept it is collecting a reference of
        #: (it keeps running meanwhile), None when not collecting one
        self.recalibrating_from: list[int | None] = [None] * len(configs)
        #: per detector, the position (in errors seen) of its last drift alarm while collecting that reference
        self.alarm_in_reference: list[int | None] = [None] * len(configs)
        #: errors given to update_many so far (the positions of re-calibration records)
        self.seen = 0
        #: re-calibrations (and kept calibrations) since the caller last took them
        self.recalibrations: list[Recalibrated] = []
        #: per detector, the calibration entries in force during the last update_many: (first index, entry)
        self._in_force: list[list[tuple[int, dict[str, Any] | None]]] = [[(0, None)] for _ in configs]

    def update_many(self, errors: np.ndarray) -> list[tuple[int, str, bool, int]]:
        """Feed errors in order; ``(error index, detector name, warning, detector number)`` of every alarm,
        in that order (:meth:`calibration_at` gives the calibration each alarm was raised under)."""
        alarms: list[tuple[int, str, bool, int]] = []
        self._in_force = [[(0, c)] for c in self.calibrations]
        for k, cfg in enumerate(self.configs):
            base = 0
            if self.detectors[k] is None:
                if self._off(k):
                    continue
                base = self._calibrate(k, cfg, errors, 0)
                if self.detectors[k] is None:
                    continue
            self._detect(k, cfg, errors, base, alarms)
        alarms.sort()
        self.seen += len(errors)
        return alarms

    def calibration_at(self, k: int, index: int) -> dict[str, Any] | None:
        """Detector ``k``'s calibration entry in force at error ``index`` of the last :meth:`update_many`."""
        for start, cal in reversed(self._in_force[k]):
            if start <= index:
                return cal
        return self._in_force[k][0][1]

    def _set_calibration(self, k: int, cal: dict[str, Any] | None, start: int) -> None:
        self.calibrations[k] = cal
        self._in_force[k].append((start, cal))

    @staticmethod
    def _feed(det: DriftDetector, binary: bool, xs: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
        if binary:
            drifts, warns = det.update_many(xs, warnings=True)
        else:
            drifts, warns = det.update_many(xs), ()
        return (np.asarray(drifts, dtype=np.int64) + base, np.asarray(warns, dtype=np.int64) + base)

    def _detect(self, k: int, cfg: Any, errors: np.ndarray, pos: int,
                alarms: list[tuple[int, str, bool, int]]) -> None:
        """Detector ``k`` on ``errors[pos:]``: its alarms, and the re-calibrations they start."""
        n, name, binary = len(errors), cfg.name, cfg.name in BINARY

        def emit(lo: int, hi: int) -> None:
            alarms.extend((int(i), name, True, k) for i in warns[(warns >= lo) & (warns < hi)])
            alarms.extend((int(i), name, False, k) for i in drifts[(drifts >= lo) & (drifts < hi)])

        # the detector takes the rest of the batch at once; what it does past a swap is dropped with it
        drifts, warns = self._feed(self.detectors[k], binary, errors[pos:], pos)
        while True:
            if self.recalibrating_from[k] is None:
                later = drifts[drifts >= pos] if self._recalibrates(k, cfg) else drifts[:0]
                if not later.size:
                    emit(pos, n)
                    return
                alarm = int(later[0])
                emit(pos, alarm + 1)
                self.recalibrating_from[k] = self.seen + alarm + 1
                self.buffers[k] = []
                self.needs[k] = cfg.calibration_window
                pos = alarm + 1
                continue
            buf = self.buffers[k]
            swap = pos + self.needs[k] - len(buf)  # the first error after the new concept's reference
            stop = min(swap, n)
            buf.extend(float(e) for e in errors[pos:stop])
            emit(pos, stop)
            during = drifts[(drifts >= pos) & (drifts < stop)]
            if during.size:  # another change may have come within the reference: a follow-up reference
                self.alarm_in_reference[k] = self.seen + int(during[-1])
            pos = stop
            if swap > n:
                return
            outcome = self._recalibrate(k, cfg, swap)
            if outcome in ("extend", "kept"):  # the same detector goes on: its alarms from the swap on stand
                continue
            if self.detectors[k] is None:
                return
            drifts, warns = self._feed(self.detectors[k], binary, errors[swap:], swap)

    def _recalibrates(self, k: int, cfg: Any) -> bool:
        """Whether detector ``k``'s drift alarms start a re-calibration: calibrated, or refused with the
        ``"defaults"`` fallback (a change can bring the error rate where calibration reaches: the fallback's
        alarm starts a reference of the new concept like a calibrated detector's)."""
        cal = self.calibrations[k]
        return bool(cfg.false_alarm_every and cfg.recalibrate_after_change and cal is not None
                    and ("refused" not in cal or cal.get("fallback") == "defaults"))

    def _recalibrate(self, k: int, cfg: Any, swap: int) -> str:
        """Detector ``k``'s new-concept reference is complete before error ``swap``: calibrate again (or keep
        the values when the rate has not changed). Returns "extend" (the reference must grow first), "kept",
        "recalibrated" or "refused"."""
        from detectors.calibrate import CalibrationError, ReferenceTooShort, calibrate

        buf, old = self.buffers[k], self.calibrations[k]
        ref = np.asarray(buf, dtype=np.float64)
        previous = old.get("recalibration") or {}
        record = {"number": previous.get("number", 0) + 1, "alarm_at": self.recalibrating_from[k],
                  "at": self.seen + swap, "reference_size": len(buf),
                  "reference_rate": float(ref.mean()) if np.isin(ref, (0.0, 1.0)).all() else None,
                  "previous": {"params": old.get("params"), "reference_rate": old.get("reference_rate"),
                               "reference_size": old.get("reference_size")}}
        if same_error_rate(old, ref):
            cal: dict[str, Any] = {**old, "recalibration": {**record, "outcome": "kept"}}
            self._set_calibration(k, cal, swap)
            return self._recalibrated(k, cfg, swap, "kept")
        cls = detector_class(cfg.name)
        fixed = dict(cfg.params)
        try:
            new = calibrate(lambda **p: cls(**{**fixed, **p}), ref, cfg.false_alarm_every,
                            seed=cfg.calibration_seed, max_updates=cfg.calibration_max_updates)
        except ReferenceTooShort as exc:
            if len(buf) < exc.needed_reference <= cfg.calibration_max_window:
                self.needs[k] = exc.needed_reference
                return "extend"
            self._refuse(k, cfg, exc, swap - 1, len(buf), {**record, "outcome": "refused"})
            return self._recalibrated(k, cfg, swap, "refused")
        except CalibrationError as exc:
            self._refuse(k, cfg, exc, swap - 1, len(buf), {**record, "outcome": "refused"})
            return self._recalibrated(k, cfg, swap, "refused")
        self.detectors[k] = cls(**{**fixed, **new.params})
        self._set_calibration(k, {**new.as_dict(), "recalibration": {**record, "outcome": "recalibrated"}}, swap)
        return self._recalibrated(k, cfg, swap, "recalibrated")

    def _recalibrated(self, k: int, cfg: Any, swap: int, outcome: str) -> str:
        self.recalibrations.append(Recalibrated(swap - 1, cfg.name, outcome, self.calibrations[k]))
        again, start = self.alarm_in_reference[k], self.recalibrating_from[k]
        self.alarm_in_reference[k] = None
        self.needs[k] = cfg.calibration_window
        if again is None or outcome == "refused":
            self.recalibrating_from[k] = None
            self.buffers[k] = []
        else:  # the detector alarmed while the reference was collected: the errors after that alarm are the
            # start of a follow-up reference (a change within the reference would otherwise go unnoticed)
            self.recalibrating_from[k] = again + 1
            self.buffers[k] = self.buffers[k][again + 1 - start:]
        return outcome

    def calibration(self, name: str) -> dict[str, Any] | None:
        for cfg, cal in zip(self.configs, self.calibrations):
            if cfg.name == name:
                return cal
        return None

    def _off(self, k: int) -> bool:
        cal = self.calibrations[k]
        return cal is not None and cal.get("fallback") == "off"

    def _calibrate(self, k: int, cfg: Any, errors: np.ndarray, start: int) -> int:
        """Collect errors ``start:`` into the reference; once it is as long as needed, calibrate. Returns the
        index in ``errors`` where detection starts (``len(errors)`` while still collecting)."""
        from detectors.calibrate import CalibrationError, ReferenceTooShort, calibrate

        buf = self.buffers[k]
        take = min(self.needs[k] - len(buf), len(errors) - start)
        buf.extend(float(e) for e in errors[start:start + take])
        end = start + take
        if len(buf) < self.needs[k]:
            return len(errors)
        cls = detector_class(cfg.name)
        fixed = dict(cfg.params)
        try:
            cal = calibrate(lambda **p: cls(**{**fixed, **p}), np.asarray(buf), cfg.false_alarm_every,
                            seed=cfg.calibration_seed, max_updates=cfg.calibration_max_updates)
        except ReferenceTooShort as exc:
            if len(buf) < exc.needed_reference <= cfg.calibration_max_window:
                self.needs[k] = exc.needed_reference
                return self._calibrate(k, cfg, errors, end)
            self._refuse(k, cfg, exc, end - 1, len(buf))
            return end
        except CalibrationError as exc:
            self._refuse(k, cfg, exc, end - 1, len(buf))
            return end
        self.detectors[k] = cls(**{**fixed, **cal.params})
        self._set_calibration(k, cal.as_dict(), end)
        self.buffers[k] = []
        return end

    def _refuse(self, k: int, cfg: Any, exc: Exception, index: int, reference_size: int,
                recalibration: dict[str, Any] | None = None) -> None:
        fallback = cfg.on_calibration_error
        ref = np.asarray(self.buffers[k], dtype=np.float64)
        suggestion = getattr(exc, "suggestion", None)
        if isinstance(getattr(exc, "needed_reference", None), int) and exc.needed_reference > reference_size:
            suggestion = (f"a reference of {exc.needed_reference} events is needed: raise calibration_max_window "
                          f"(now {cfg.calibration_max_window}), lower false_alarm_every or choose another detector")
        entry = {"detector": cfg.name, "refused": str(exc)[:500], "suggestion": suggestion,
                 "fallback": fallback, "target_ert": cfg.false_alarm_every, "reference_size": reference_size,
                 # the refused reference's error rate: a later change is confirmed against it (re-calibration)
                 "reference_rate": float(ref.mean()) if ref.size and np.isin(ref, (0.0, 1.0)).all() else None,
                 "params": dict(cfg.params) if fallback == "defaults" else None}
        if recalibration is not None:
            entry["recalibration"] = recalibration
        self._set_calibration(k, entry, index + 1)
        self.detectors[k] = detector_class(cfg.name)(**dict(cfg.params)) if fallback == "defaults" else None
        self.buffers[k] = []
        self.refusals.append(CalibrationRefused(index, cfg.name, exc, fallback, self.calibrations[k]))

    def to_state(self) -> dict[str, Any]:
        return {"detectors": [None if d is None else d.to_state() for d in self.detectors],
                "calibrations": list(self.calibrations),
                "calibration_buffers": [list(b) for b in self.buffers],
                "calibration_needs": list(self.needs),
                "recalibrating_from": list(self.recalibrating_from),
                "alarm_in_reference": list(self.alarm_in_reference),
                "errors_seen": self.seen}

    def compatible(self, state: dict[str, Any]) -> bool:
        """Whether ``state`` was taken with the detectors configured now (else the fresh ones are kept)."""
        names = [None if s is None else s["type"] for s in state["detectors"]]
        wanted = [d.name for d in self.configs]
        return len(names) == len(wanted) and all(n is None or n == w or detector_class(w).__name__ == n
                                                 for n, w in zip(names, wanted))

    def load_state(self, state: dict[str, Any]) -> None:
        if not self.compatible(state):
            return
        stored = state["detectors"]
        self.detectors = [None if s is None else detector_from_state(s) for s in stored]
        self.calibrations = list(state.get("calibrations") or [None] * len(stored))
        self.buffers = [list(b) for b in state.get("calibration_buffers") or [[] for _ in stored]]
        self.needs = list(state.get("calibration_needs") or [d.calibration_window for d in self.configs])
        self.recalibrating_from = list(state.get("recalibrating_from") or [None] * len(stored))
        self.alarm_in_reference = list(state.get("alarm_in_reference") or [None] * len(stored))
        self.seen = int(state.get("errors_seen", 0))


class ModelMonitor:
    """Everything driftstream tracks for one model name in one partition."""

    def __init__(self, model: str, spec: ModelSpec) -> None:
        self.model = model
        self.spec = spec
        #: the configured error detectors (each None while it collects its calibration reference)
        self.concept = ConceptDetectors(spec.detectors)
        self._refused: list[tuple[Joined, CalibrationRefused]] = []
        self._recalibrated: list[tuple[Joined, Recalibrated]] = []
        #: per configured detector, the join count at its last (non-warning) alarm (0: none yet)
        self.last_alarm_at: list[int] = [0] * len(spec.detectors)
        om = spec.online_model
        self.online = build_online_model(om, spec.task) if om.enabled else None
        self.background: Any = None
        self.background_trained_on = 0
        self.online_detector_name = (("HDDMA" if spec.task == "classification" else "ADWIN")
                                     if om.drift_detector == "auto" else om.drift_detector)
        self.online_detector: DriftDetector | None = (
            make_detector(self.online_detector_name, **dict(om.drift_params)) if om.enabled and om.adapt else None
        )
        self.model_version = 1
        self.joined = 0
        self.served_errors_total = 0.0
        self.online_errors_total = 0.0
        self.recent_served: deque[float] = deque(maxlen=ROLLING)
        self.recent_online: deque[float] = deque(maxlen=ROLLING)
        self._batch: list[tuple[float, float | None, Joined]] = []
        #: what the online model raised while learning (the pipeline reports it and clears it)
        self.online_failure: BaseException | None = None
        #: the micro-batch's online-model operations in arrival order, while :attr:`batches_online`: a
        #: prediction ``(pending, features, origin, seq)`` or a learn ``(joined, index in the batch, None, seq)``
        self._online_ops: list[tuple[Any, Any, Any, int]] = []
        self._batch_start: tuple[list[float], list[float], int] = ([], [], 0)
        #: the foreground's prediction handles by inference offset, for their learns (the compiled model then
        #: takes the encoding made at the prediction instead of encoding the features again); a cache, not
        #: state: a missing or stale handle only costs the encoding
        self._handles: dict[int, int] = {}

    # -- per event --------------------------------------------------------------------------------
    def predict_online(self, features: dict[str, Any]) -> Any:
        if self.online is None:
            return None
        online = self.online
        if self.spec.task == "classification":
            return online.predict_one(model_x(online, features))
        return float(online.predict_one(model_x(online, features)))

    def on_joined(self, j: Joined) -> Swap | None:
        err = served_error(self.spec.task, j.prediction.prediction, j.label)
        if not self._batch:
            self._batch_start = (list(self.recent_served), list(self.recent_online), self.joined)
        oerr = None
        swap = None
        self.joined += 1
        self.served_errors_total += err
        self.recent_served.append(err)
        if self.online is not None and self.batches_online:
            self._online_ops.append((j, len(self._batch), None, j.seq))  # learnt in settle_online
        elif self.online is not None:
            try:
                op = j.prediction.online_prediction
                oerr = 1.0 if op is None else served_error(self.spec.task, op, j.label) \
                    if self.spec.task == "classification" else abs(float(op) - float(j.label))
                features = j.prediction.features
                self.online.learn_one(model_x(self.online, features), j.label)
                if self.background is not None:
                    self.background.learn_one(model_x(self.background, features), j.label)
                    self.background_trained_on += 1
                swap = self._adapt(oerr, j)
            except Exception as exc:  # contained: the pipeline reports it and the model goes on without
                self.online_failure = exc
                self.disable_online()
                oerr, swap = None, None
            else:
                self.online_errors_total += oerr
                self.recent_online.append(oerr)
        self._batch.append((err, oerr, j))
        return swap

    #: the compiled model takes the micro-batch's predictions and learning in one replay (settle_online); a
    #: test sets it False for the per-event path it must equal
    batch_online = True

    @property
    def batches_online(self) -> bool:
        return self.batch_online and type(self.online) is OnlineLinearModel

    def queue_prediction(self, pending: Any, features: dict[str, Any], origin: Any, seq: int) -> None:
        """An inference event's prediction (its record's sequence number ``seq``), made in
        :meth:`settle_online` (into ``pending.online_prediction``)."""
        self._online_ops.append((pending, features, origin, seq))

    def settle_online(self) -> tuple[list[tuple[Any, Any, int]], list[Swap]]:
        """The micro-batch's queued predictions and learns, replayed by the compiled model in arrival order:
        what the per-event path (:meth:`predict_online` at each inference, :meth:`on_joined` at each join)
        computes. Returns the predictions ``(origin, prediction, model version)`` and the swaps, in order.

        The foreground replays the batch once, and again from a swap on (the swapped-in model predicts
        what follows it); the online detector takes the segment's errors with ``update_many`` (restored and
        fed again up to the drift when one ends the segment early: what follows it belongs to the next
        model); the background model, which only learns, replays its stretch from the warning that started
        it to the swap. A warning or a drift takes effect at its join exactly as on the per-event path. If the model raises,
        the pipeline turns it off for the whole batch (the per-event path does at the failing event)."""
        ops, self._online_ops = self._online_ops, []
        predictions: list[tuple[Any, Any, int]] = []
        swaps: list[Swap] = []
        classification = self.spec.task == "classification"
        warns_too = self.online_detector_name in BINARY
        same, batch, handles = _same, self._batch, self._handles
        n = len(ops)
        # the batch's operations as the model replays them, once (a segment replays a suffix)
        learn = [op[2] is None for op in ops]
        rows = [op[0].prediction.features if lf else op[1] for op, lf in zip(ops, learn)]
        learn_at = [k for k, lf in enumerate(learn) if lf]
        js = [ops[k][0] for k in learn_at]
        labels = [j.label for j in js]
        learn_handles = [handles.pop(j.prediction.offset, -1) for j in js]
        i = li0 = 0  # the segment's first operation and first learn
        bg_from = 0  # the background model has learnt the learns of ops[:bg_from]
        while i < n:  # one segment: from the batch's start or a swap, to the next swap or the batch's end
            out = self.online.replay_ops(rows[i:], learn[i:], labels[li0:], learn_handles[li0:])
            # 1. the segment's predictions into their pending predictions (a learn later in the batch reads it)
            pend = [op[0] for op in ops[i:] if op[2] is not None]
            for pp, value in zip(pend, out.predictions):
                pp.online_prediction = value
            handles.update(zip([pp.offset for pp in pend], out.handles))
            # 2. the online errors of the segment's joins, as the foreground predicted them
            seg = js[li0:]
            if classification:
                oerrs = [1.0 if o is None else 0.0 if same(o, j.label) else 1.0
                         for j in seg for o in (j.prediction.online_prediction,)]
            else:
                oerrs = [1.0 if o is None else abs(float(o) - float(j.label))
                         for j in seg for o in (j.prediction.online_prediction,)]
            # 3. the detector on them: a drift ends the segment (what follows is predicted by the new model)
            det, taken, warn_at = self.online_detector, len(oerrs), -1
            drift = False
            if det is not None and oerrs:
                before = det.to_state()
                if warns_too:
                    drifts, warns = det.update_many(oerrs, warnings=True)
                else:
                    drifts, warns = det.update_many(oerrs), ()
                if len(drifts):
                    drift, taken = True, int(drifts[0]) + 1
                    if taken < len(oerrs):  # the detector as it was at the drift
                        det = self.online_detector = detector_from_state(before)
                        det.update_many(oerrs[:taken], warnings=True) if warns_too else det.update_many(oerrs[:taken])
                if self.background is None:
                    warn_at = next((int(w) for w in warns if w < taken), -1)
            # 4. the segment's predictions, errors, background and swap, in order, up to the drift's join
            stop = learn_at[li0 + taken - 1] + 1 if drift else n
            version = self.model_version
            predictions += [(op[2], op[0].online_prediction, version) for op in ops[i:stop] if op[2] is not None]
            total = self.online_errors_total
            for e in oerrs[:taken]:  # in order: the same float sum as one by one
                total += e
            self.online_errors_total = total
            self.recent_online.extend(oerrs[:taken])
            for k in range(taken):
                second = ops[learn_at[li0 + k]][1]
                batch[second] = (batch[second][0], oerrs[k], seg[k])
            if warn_at >= 0:  # a warning starts the background model: it learns from the next join on
                self.background = build_online_model(self.spec.online_model, self.spec.task)
                self.background_trained_on = 0
                bg_from = learn_at[li0 + warn_at] + 1
            i, li0 = stop, li0 + taken
            if drift:
                self._background_learns(ops[bg_from:stop])
                swaps.append(self._swap(seg[taken - 1]))
                bg_from = stop
        self._background_learns(ops[bg_from:])
        keep = self.online.recent_rows
        if len(handles) > 2 * keep:  # older ones have left the model's ring of encodings
            self._handles = dict(list(handles.items())[-keep:]) if keep else {}
        return predictions, swaps

    def _background_learns(self, ops: list[tuple[Any, Any, Any, int]]) -> None:
        bg = self.background
        if bg is None:
            return
        js = [op[0] for op in ops if op[2] is None]
        if js:
            bg.replay_ops([j.prediction.features for j in js], [True] * len(js), [j.label for j in js])
            self.background_trained_on += len(js)

    def disable_online(self) -> None:
        """No online model from here on (it raised)."""
        self._online_ops = []
        self._handles = {}
        self.online = None
        self.background = None
        self.background_trained_on = 0
        self.online_detector = None

    @property
    def defers_joins(self) -> bool:
        """Joins may be handed over once per micro-batch (:meth:`on_joined_many`): no online model learns
        from them between records (none, or the compiled one that replays the batch) and a classification
        error cannot be invalid input."""
        return (self.online is None or self.batches_online) and self.spec.task == "classification"

    def on_joined_many(self, js: list[Joined]) -> None:
        """:meth:`on_joined` for each of ``js`` in order, for a monitor that :attr:`defers_joins` (the same
        errors, running totals and batch)."""
        if not js:
            return
        if not self._batch:
            self._batch_start = (list(self.recent_served), list(self.recent_online), self.joined)
        batch, recent, same = self._batch, self.recent_served, _same
        total = self.served_errors_total
        for j in js:
            err = 0.0 if same(j.prediction.prediction, j.label) else 1.0
            total += err
            recent.append(err)
            batch.append((err, None, j))
        self.served_errors_total = total
        self.joined += len(js)
        if self.batches_online:  # their learns, between the batch's predictions in record order
            base = len(batch) - len(js)
            learns = [(j, base + k, None, j.seq) for k, j in enumerate(js)]
            # a record's prediction comes before the join it completes (same seq): the queued operations are
            # in arrival order, and a stable sort by seq keeps them before the learns added here
            self._online_ops = sorted(self._online_ops + learns, key=_SEQ)

    def _adapt(self, oerr: float, j: Joined) -> Swap | None:
        """Warn -> start a background model; drift -> the background model replaces the foreground."""
        det = self.online_detector
        if det is None:
            return None
        det.update(oerr)
        if getattr(det, "warning_detected", False) and self.background is None:
            self.background = build_online_model(self.spec.online_model, self.spec.task)
            self.background_trained_on = 0
        if not det.drift_detected:
            return None
        return self._swap(j)

    def _swap(self, j: Joined) -> Swap:
        """The background model (or a fresh one) replaces the foreground."""
        trained = self.background_trained_on
        self.online = self.background if self.background is not None else build_online_model(
            self.spec.online_model, self.spec.task)
        self.background = None
        self.background_trained_on = 0
        self._handles.clear()  # the old foreground's
        self.model_version += 1
        return Swap(j, self.online_detector_name, self.model_version, trained)

    # -- per micro-batch ----------------------------------------------------------------------------
    def batch_outcomes(self) -> list[tuple[float, float | None, Joined]]:
        """The micro-batch's joined events in order, as (served error, online error or None, joined)."""
        return self._batch

    def run_detectors(self) -> list[Alarm]:
        if not self._batch:
            return []
        errors = np.fromiter((e for e, _, _ in self._batch), dtype=np.float64, count=len(self._batch))
        concept = self.concept
        alarms = [self._alarm(name, warning, i, None, concept.calibration_at(k, i), k)
                  for i, name, warning, k in concept.update_many(errors)]
        self._refused += [(self._batch[r.index][2], r) for r in concept.refusals]
        concept.refusals.clear()
        self._recalibrated += [(self._batch[r.index][2], r) for r in concept.recalibrations]
        concept.recalibrations.clear()
        self._batch.clear()
        return alarms

    def take_refusals(self) -> list[tuple[Joined, CalibrationRefused]]:
        """Calibration refusals met by :meth:`run_detectors` since the last call, each with the join that
        completed the reference it was measured on."""
        refused, self._refused = self._refused, []
        return refused

    def take_recalibrations(self) -> list[tuple[Joined, Recalibrated]]:
        """Re-calibrations after a change met by :meth:`run_detectors` since the last call, each with the join
        that completed the new concept's reference."""
        done, self._recalibrated = self._recalibrated, []
        return done

    @property
    def detectors(self) -> list[DriftDetector | None]:
        return self.concept.detectors

    @property
    def calibrations(self) -> list[dict[str, Any] | None]:
        return self.concept.calibrations

    def _alarm(self, name: str, warning: bool, i: int, estimate: float | None,
               calibration: dict[str, Any] | None = None, number: int = 0) -> Alarm:
        """An alarm with the rolling errors as they were at the alarming event (not at batch end), so
        that the content does not depend on where micro-batch boundaries fell.

        The change point is estimated on the errors since detector ``number``'s previous alarm (within the
        rolling window): a detector resets when it alarms, so what came before belongs to the concept it
        already reported; over the whole window an older, larger change would hide the one that tipped it."""
        served0, online0, joined0 = self._batch_start
        served = (served0 + [e for e, _, _ in self._batch[: i + 1]])[-ROLLING:]
        online = (online0 + [o for _, o, _ in self._batch[: i + 1] if o is not None])[-ROLLING:]
        joined_at = joined0 + i + 1
        last = self.last_alarm_at[number]
        since = max(joined_at - last, MIN_SINCE_ALARM)  # a quick re-alarm: not a handful of noisy errors
        segment = served[-since:] if last and since < len(served) else served
        k, before, after = change_point(segment)
        if not warning:
            self.last_alarm_at[number] = joined_at
        if estimate is None:
            estimate = after
        return Alarm(name, warning, self._batch[i][2], i, estimate,
                     sum(served) / len(served), sum(online) / len(online) if online else None, joined_at,
                     calibration, "improvement" if after < before else "degradation", before, after,
                     len(segment) - k)

    # -- summaries and state ------------------------------------------------------------------------
    def rolling_served_error(self) -> float | None:
        return sum(self.recent_served) / len(self.recent_served) if self.recent_served else None

    def rolling_online_error(self) -> float | None:
        return sum(self.recent_online) / len(self.recent_online) if self.recent_online else None

    def to_state(self) -> dict[str, Any]:
        assert not self._batch, "state is taken between micro-batches"
        return {
            **self.concept.to_state(),
            "online_detector": None if self.online_detector is None else self.online_detector.to_state(),
            "background_trained_on": self.background_trained_on,
            "model_version": self.model_version,
            "joined": self.joined,
            "served_errors_total": self.served_errors_total,
            "online_errors_total": self.online_errors_total,
            "recent_served": list(self.recent_served),
            "recent_online": list(self.recent_online),
            "last_alarm_at": list(self.last_alarm_at),
        }

    def load_state(self, state: dict[str, Any], online_model: Any, background: Any = None) -> None:
        self.concept.load_state(state)  # kept fresh if the configured detectors changed since the checkpoint
        if state.get("online_detector") is not None and self.online_detector is not None:
            self.online_detector = detector_from_state(state["online_detector"])
        self.background_trained_on = state.get("background_trained_on", 0)
        self.model_version = state["model_version"]
        self.joined = state["joined"]
        self.served_errors_total = state["served_errors_total"]
        self.online_errors_total = state["online_errors_total"]
        self.recent_served = deque(state["recent_served"], maxlen=ROLLING)
        self.recent_online = deque(state["recent_online"], maxlen=ROLLING)
        stored = state.get("last_alarm_at")
        if stored is not None and len(stored) == len(self.last_alarm_at):
            self.last_alarm_at = list(stored)
        if online_model is not None:
            self.online = online_model
        self.background = background
        self._handles = {}


#: fewest errors on either side of an estimated change point
MIN_SEGMENT = 5
#: fewest errors a change point after an earlier alarm is estimated on
MIN_SINCE_ALARM = 50


#: a second change inside an open concept incident: the standardised difference of the error means before and
#: after the best split (each side at least MIN_SINCE_ALARM errors) at least this many standard deviations (the
#: maximum over splits of a standardised two-sample difference under no change is ~3 at the 99% level for a few
#: thousand errors: a Brownian bridge's maximum; 4 keeps another detector's later alarm on the same change,
#: whose errors since the change point are one level, from opening an incident of its own)
NEW_CHANGE_Z = 4.0


def change_within(errors: list[float]) -> tuple[bool, int, float, float]:
    """Whether ``errors`` (oldest first) hold a change in mean of their own: the best split with each side at
    least ``MIN_SINCE_ALARM`` long, its standardised difference at least ``NEW_CHANGE_Z``; with the split and
    the means before and after it."""
    n = len(errors)
    if n < 2 * MIN_SINCE_ALARM:
        return False, 0, 0.0, 0.0
    k, before, after = change_point(errors, MIN_SINCE_ALARM)
    sd = float(np.std(np.asarray(errors, dtype=np.float64)))
    if sd == 0.0 or k == 0:
        return False, k, before, after
    z = abs(after - before) * float(np.sqrt(k * (n - k) / n)) / sd
    return z >= NEW_CHANGE_Z, k, before, after


def change_point(errors: list[float], min_segment: int = MIN_SEGMENT) -> tuple[int, float, float]:
    """The most likely single change in mean of ``errors`` (the errors up to an alarm, oldest first): the split
    ``k`` maximising the standardised difference of the two segments' means (the CUSUM / likelihood-ratio
    estimate for a shift in mean), with the mean before and after it; each segment at least ``min_segment``
    long. It is computed from the errors themselves, so it is the same whatever the detector and wherever
    micro-batches were cut."""
    n = len(errors)
    if n < 2 * min_segment:
        m = sum(errors) / n if n else 0.0
        return 0, m, m
    x = np.asarray(errors, dtype=np.float64)
    s = np.cumsum(x)
    k = np.arange(min_segment, n - min_segment + 1)
    left = s[k - 1] / k
    right = (s[-1] - s[k - 1]) / (n - k)
    score = np.abs(left - right) * np.sqrt(k * (n - k) / n)
    best = int(np.argmax(score))  # the first maximum: ties resolve the same way every time
    return int(k[best]), float(left[best]), float(right[best])
