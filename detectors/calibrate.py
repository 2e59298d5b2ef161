"""Calibrate a detector to a false-alarm law: on stationary data, a first false alarm every ``ert`` events.

A detector's defaults say nothing about how often it cries wolf on *your* stream. ``calibrate`` picks the
detector's threshold (and, where its structure needs it, its warm-up) so that on a stationary stream like a
reference window the run length to the first alarm (the run from a (re)start) has mean ``ert`` (the
expected run time, ERT; ARL0 in the SPC literature) **and** a law close to the geometric law of that mean,
the law of a pager that rings at random once every ``ert`` events. A mean alone can hide a useless law:
DDM at River's warm-up of 30 events calibrated to a mean of 5,000 alarms within ~100 events in most runs
and almost never in the others.

Method
------
1. Simulate stationary streams from the reference: a Bernoulli stream with the reference's rate when the
   reference is 0/1 (an error stream), otherwise a bootstrap (i.i.d. resampling) of the reference values.
   Run ``r`` is seeded with ``(seed, r)`` and every candidate is run on the *same* runs (common random
   numbers), so the estimated ERT is a smooth, nearly monotone function of the parameter and the result is
   reproducible. Simulated values are cached between candidates (bounded memory).
2. Each run starts a fresh detector and lasts until its first alarm (``update_many`` on growing chunks) or
   until ``horizon`` events (censored). ERT = exposure / alarms (the maximum-likelihood estimate for a
   geometric run length, the renewal estimate in general); the median and the 10th percentile of the
   run lengths describe the law.
3. Search the parameter (log scale) inside the detector's valid range (:data:`TUNABLE`; an upper bound
   that depends on another parameter, EDDM's ``beta <= alpha``, is read from the detector): bisection with
   a fifth of the runs, then regula-falsi (Illinois) steps with all of them; keep the best candidate.
4. Check the law: median >= ``0.5 * ert`` and 10th percentile >= ``0.05 * ert`` (a geometric law has
   0.69 and 0.105; the margins cover the sampling error of ~250 runs), the mean within 10% of the
   target, and few enough runs still without an alarm at the horizon that they cannot move the mean by
   more than its tolerance (:func:`max_censored`: 0.5% at the default horizon of 20 x the target).
   Detectors whose statistic accumulates over the whole run (DDM, EDDM: the alarm hazard decays like ``1 / n`` after the warm-up, so the mean is reached by a few very long runs) fail this at their
   default warm-up; for them the warm-up parameter (:attr:`Tunable.warm_up`) is calibrated too: the
   smallest warm-up of a short list (fractions of ``ert``) at which the law passes. Where nothing passes,
   :class:`CalibrationError` says which detector, at which setting, and what to use instead.
5. Check the reference (0/1 references only): a reference of ``n`` events estimates the error rate ``p``
   with a relative standard error ``sqrt((1 - p) / (n p))``, and the calibrated ERT moves with the rate.
   The ERT's elasticity to the rate is measured (same runs, rate moved by >= 25% either way); if over the
   98% interval of the rate the ERT moves by more than a factor 1.25, :class:`ReferenceTooShort` says
   how many events the reference needs (``needed_reference``; the error shrinks like ``1 / sqrt(n)``).
   This is the choice for short references: refuse and say how long, rather than calibrate to a rate
   the reference does not pin down (the service extends its window). ``reference_check=False`` skips it.

Every failure raises :class:`CalibrationError` (a ``ValueError``) and nothing else, so that a service can
contain it (fall back to the detector's defaults, or turn it off and say so): bad inputs, a constructor
that refuses a candidate, a target out of reach, a law that cannot be met, a reference that is too short.

Re-calibration after a confirmed change: :func:`recalibrate` calibrates again, with the same target, seed,
runs and fixed parameters, on a reference from the new concept (e.g. the errors after the alarm).

KSWIN is slow (a KS test per event), so calibrating it is only practical for small ``ert``. Discrete
statistics (FHDDM's window mean moves in steps of ``1 / sliding_window_size``) make the ERT a step function
of the threshold: if no value comes within 10% of the target, calibration refuses.

Example
-------
>>> import numpy as np
>>> from detectors.page_hinkley import PageHinkley
>>> from detectors.calibrate import calibrate
>>> reference = np.random.default_rng(1).normal(size=2_000)
>>> cal = calibrate(PageHinkley, reference, ert=1_000, seed=7)
>>> cal.detector, cal.param, cal.target_ert
('PageHinkley', 'threshold', 1000.0)
>>> bool(0.9 <= cal.estimated_ert / 1_000 <= 1.1), bool(cal.median_run >= 500)
(True, True)
>>> cal == calibrate(PageHinkley, reference, ert=1_000, seed=7)  # same seed, same answer
True
>>> cal.new().threshold == cal.value
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from detectors.base import BinaryDriftDetector, DriftDetector, InvalidInput, as_float_array

#: the law a calibration must reach (fractions of the target ERT; a geometric law has 0.69 and 0.105)
MIN_MEDIAN = 0.5
MIN_P10 = 0.05
#: the estimated mean must be within this factor of the target
MEAN_TOLERANCE = 1.1
#: relative standard error wanted for the estimated mean, and the most runs spent on it (x n_runs)
MEAN_SE = 0.035
MAX_RUNS_FACTOR = 8
#: a reference must pin the ERT within this factor over the 98% interval of its error rate
REFERENCE_TOLERANCE = 1.25
_Z98 = 2.326  # two-sided 98%: the interval the reference must pin the ERT over
#: warm-ups tried, as fractions of the target ERT, when the detector's own warm-up gives a bad law
WARM_UP_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 0.4, 0.6)
#: cached simulated values (bytes): bounds memory, not the result
_CACHE_BYTES = 256 << 20
_MAX_CHUNK = 1 << 20


class CalibrationError(ValueError):
    """Calibration cannot give the requested false-alarm law with this detector, setting and reference.

    ``detector`` is the detector's class name, ``setting`` what was asked (``ert``, the reference's size and
    rate, the parameters), ``suggestion`` what to do instead (None if nothing specific).
    """

    def __init__(self, message: str, *, detector: str, setting: dict[str, Any],
                 suggestion: str | None = None) -> None:
        super().__init__(message if suggestion is None else f"{message}; {suggestion}")
        self.detector = detector
        self.setting = dict(setting)
        self.suggestion = suggestion


class _ConstructorRefused(CalibrationError):
    """The detector refused a candidate inside the bounds (a wrong :class:`Tunable`): not worth retrying."""


class ReferenceTooShort(CalibrationError):
    """The reference estimates the error rate too loosely for this detector: ``needed_reference`` events
    (from the same stationary stream) would pin the ERT within :data:`REFERENCE_TOLERANCE`."""

    def __init__(self, message: str, *, detector: str, setting: dict[str, Any], needed_reference: int) -> None:
        super().__init__(message, detector=detector, setting=setting,
                         suggestion=f"collect a reference of at least {needed_reference} events")
        self.needed_reference = int(needed_reference)


class BudgetExceeded(CalibrationError):
    """The simulation would take more work than ``max_updates`` allowed. Work is counted, not timed, so the
    outcome is the same on every machine and every replay: a simulated update counts
    :data:`UPDATE_COST` of its detector (1 for most), and each ``update_many`` call :data:`CALL_COST` more."""


#: relative cost of one simulated update (measured: ~17-50 ns for most detectors, ~2 us for KSWIN's test)
UPDATE_COST = {"KSWIN": 100}
#: cost of one ``update_many`` call in updates (the per-call overhead, ~30 us)
CALL_COST = 2000


@dataclass(frozen=True)
class Tunable:
    """Which constructor parameter sets a detector's false-alarm rate, and how.

    ``more_alarms_when`` is ``"larger"`` if increasing the parameter makes alarms more frequent (a
    significance level such as ADWIN's ``delta``) or ``"smaller"`` (a threshold such as PageHinkley's
    ``threshold``). The search runs on ``log(value)`` between ``low`` and ``high`` (both > 0); ``high_param``
    names a parameter of the detector that bounds the value from above too (EDDM: ``beta <= alpha``).
    ``warm_up`` names the integer parameter that delays the first test after a (re)start, calibrated when
    the detector's own value gives a bad run-length law (None: the detector has none, calibration refuses);
    ``warm_up_counts`` is ``"events"`` or ``"errors"`` (EDDM's ``warm_start`` counts errors too).
    ``raises_with`` names a parameter that must stay >= the tuned one and is raised with it when the tuned
    one passes it (EDDM's warning level ``alpha`` with ``beta``: ``alpha = max(alpha, beta)``).
    """

    name: str
    more_alarms_when: str
    low: float
    high: float
    high_param: str | None = None
    warm_up: str | None = None
    warm_up_counts: str = "events"
    raises_with: str | None = None

    def __post_init__(self) -> None:
        if self.more_alarms_when not in ("larger", "smaller"):
            raise ValueError("more_alarms_when must be 'larger' or 'smaller'")
        if not 0 < self.low < self.high:
            raise ValueError("need 0 < low < high")
        if self.warm_up_counts not in ("events", "errors"):
            raise ValueError("warm_up_counts must be 'events' or 'errors'")


#: detector class name -> the parameter that calibration tunes by default
TUNABLE: dict[str, Tunable] = {
    "PageHinkley": Tunable("threshold", "smaller", 1e-3, 1e7, warm_up="min_instances"),
    "ADWIN": Tunable("delta", "larger", 1e-30, 1.0),
    "KSWIN": Tunable("alpha", "larger", 1e-30, 0.5),
    "DDM": Tunable("drift_threshold", "smaller", 0.1, 100.0, warm_up="warm_start"),
    # beta up to 1 (any fall of the level alarms); alpha (the warning level) is raised with it
    "EDDM": Tunable("beta", "larger", 1e-3, 1.0, warm_up="warm_start", warm_up_counts="errors", raises_with="alpha"),
    # not above 0.5: drift_confidence also sets the cut point's bound, and near 1 the cut point follows the
    # mean so closely that the test never fires (the ERT is not monotone there)
    "HDDM_A": Tunable("drift_confidence", "larger", 1e-30, 0.5, warm_up="warm_start"),
    "HDDM_W": Tunable("drift_confidence", "larger", 1e-30, 0.5),
    "FHDDM": Tunable("confidence_level", "larger", 1e-100, 0.5),
}
TUNABLE["HDDMA"], TUNABLE["HDDMW"] = TUNABLE["HDDM_A"], TUNABLE["HDDM_W"]  # River's spelling of the names

#: what to use instead, per detector, when its law cannot be met
_INSTEAD = {
    "EDDM": "use DDM, HDDM_W or PageHinkley for this error rate and target",
    "DDM": "use HDDM_W or PageHinkley, or a smaller false_alarm_every",
    "HDDMA": "use DDM or PageHinkley (or HDDM_W at error rates of 0.2 and more)",
    "HDDMW": "use PageHinkley or DDM",
    "FHDDM": "use DDM or PageHinkley (FHDDM's window mean moves in coarse steps at this rate)",
}


@dataclass(frozen=True)
class Calibration:
    """The outcome of :func:`calibrate`; ``new()`` builds a fresh detector with the calibrated values.

    ``param``/``value`` is the threshold; ``warm_up`` is ``(name, value)`` when the warm-up was calibrated
    too (None otherwise); ``params`` has both. ``estimated_ert``, ``median_run`` and ``p10_run`` are
    measured on the simulated runs at the chosen values; ``reference_size`` and ``reference_rate``
    describe the reference (rate None for a real-valued one).
    """

    detector: str
    param: str
    value: float
    target_ert: float
    estimated_ert: float
    n_runs: int
    seed: int
    median_run: float = math.nan
    p10_run: float = math.nan
    warm_up: tuple[str, int] | None = None
    reference_size: int = 0
    reference_rate: float | None = None
    #: other constructor arguments set with the threshold: the warm-up, a level raised with it
    extra: tuple[tuple[str, Any], ...] = ()
    factory: Callable[..., DriftDetector] = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    horizon: int | None = field(repr=False, compare=False, default=None)
    tunable: Tunable | None = field(repr=False, compare=False, default=None)

    @property
    def params(self) -> dict[str, float]:
        return {self.param: self.value, **dict(self.extra)}

    def new(self) -> DriftDetector:
        if self.factory is None:
            raise ValueError("this Calibration was built without a detector factory")
        return self.factory(**self.params)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for events and checkpoints."""
        return {"detector": self.detector, "param": self.param, "value": self.value,
                "warm_up": None if self.warm_up is None else list(self.warm_up), "params": self.params,
                "target_ert": self.target_ert, "estimated_ert": self.estimated_ert,
                "median_run": self.median_run, "p10_run": self.p10_run, "n_runs": self.n_runs, "seed": self.seed,
                "reference_size": self.reference_size, "reference_rate": self.reference_rate}


class _Simulator:
    """Stationary runs like the reference, identical for every candidate (common random numbers)."""

    def __init__(self, reference: np.ndarray, seed: int, horizon: int, first_chunk: int,
                 rate: float | None = None, max_updates: int | None = None) -> None:
        self.seed = seed
        #: detector updates simulated so far, and the most allowed (None: no bound)
        self.updates = 0
        self.max_updates = max_updates
        self.horizon = horizon
        self.first_chunk = first_chunk
        self._rate = rate
        self._reference = reference
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._cached_bytes = 0

    def _chunk(self, run: int, k: int, rngs: dict[int, np.random.Generator], size: int) -> np.ndarray:
        got = self._cache.get((run, k))
        if got is not None:
            if run in rngs:  # keep a live generator in step with the cached values
                self._draw(rngs[run], size)
            return got.astype(np.float64) if got.dtype != np.float64 else got
        rng = rngs.get(run)
        if rng is None:  # chunk k of run r is the k-th draw of the run's generator: replay the earlier ones
            rng = rngs[run] = np.random.default_rng([self.seed, run])
            for j in range(k):
                self._draw(rng, self._size(j))
        xs = self._draw(rng, size)
        stored = xs.astype(np.uint8) if self._rate is not None else xs
        if self._cached_bytes + stored.nbytes <= _CACHE_BYTES:
            self._cache[(run, k)] = stored
            self._cached_bytes += stored.nbytes
        return xs

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self._rate is not None:
            return (rng.random(size) < self._rate).astype(np.float64)
        return self._reference[rng.integers(0, self._reference.size, size)]

    def _size(self, k: int) -> int:
        return min(self.first_chunk << k, _MAX_CHUNK)

    def run_lengths(self, make: Callable[[], DriftDetector], n_runs: int, budget: float) -> np.ndarray:
        """Events until the first alarm of a fresh detector, for runs 0, 1, ... (inf: censored at the
        horizon); stops early once the runs' exposure exceeds ``budget`` events."""
        lengths: list[float] = []
        exposure = 0.0
        rngs: dict[int, np.random.Generator] = {}
        cost = None
        for run in range(n_runs):
            det, seen, k, length = make(), 0, 0, math.inf
            if cost is None:
                cost = UPDATE_COST.get(type(det).__name__, 1)
            rngs.clear()  # a generator is only kept while its run is being drawn in order
            while seen < self.horizon:
                size = min(self._size(k), self.horizon - seen)
                self.updates += size * cost + CALL_COST
                if self.max_updates is not None and self.updates > self.max_updates:
                    raise BudgetExceeded(
                        f"calibration needs more than its budget of {self.max_updates:,} simulated updates "
                        f"(weighted, see BudgetExceeded)",
                        detector=type(det).__name__, setting={"max_updates": self.max_updates},
                        suggestion="ask for a smaller ert, raise the budget, or calibrate offline "
                                   "(detectors.calibrate) and configure the parameters it gives")
                xs = self._chunk(run, k, rngs, size)
                alarms = det.update_many(xs)
                if alarms.size:
                    length = float(seen + int(alarms[0]) + 1)
                    break
                seen += size
                k += 1
            lengths.append(length)
            exposure += min(length, self.horizon)
            if exposure > budget:
                break
        return np.asarray(lengths)


def _ert(lengths: np.ndarray, horizon: int) -> float:
    alarms = int(np.isfinite(lengths).sum())
    exposure = float(np.minimum(lengths, horizon).sum())
    return exposure / alarms if alarms else math.inf


def _check_inputs(reference: Any, ert: Any, setting: dict[str, Any], name: str) -> tuple[np.ndarray, float]:
    try:
        ert = float(ert)
    except (TypeError, ValueError):
        raise CalibrationError(f"ert must be a number, got {ert!r}", detector=name, setting=setting) from None
    if not math.isfinite(ert) or ert <= 0:
        raise CalibrationError(f"ert must be a positive finite number of events, got {ert!r}",
                               detector=name, setting=setting)
    try:
        ref = as_float_array(reference)
    except InvalidInput as exc:  # NaN / inf / not 1-D
        raise CalibrationError(f"bad reference: {exc}", detector=name, setting=setting) from exc
    if ref.size == 0:
        raise CalibrationError("reference is empty: calibration needs a window of stationary data",
                               detector=name, setting=setting)
    return ref, ert


def _tunable(det: DriftDetector, param: str | Tunable | None, setting: dict[str, Any]) -> Tunable:
    name = type(det).__name__
    if isinstance(param, Tunable):
        tunable = param
    elif param is None or (name in TUNABLE and TUNABLE[name].name == param):
        if name not in TUNABLE:
            raise CalibrationError(f"no default parameter to tune for {name}", detector=name, setting=setting,
                                   suggestion="pass param=Tunable(...)")
        tunable = TUNABLE[name]
    else:
        raise CalibrationError(f"don't know how {param!r} moves the alarm rate of {name}", detector=name,
                               setting=setting, suggestion="pass param=Tunable(...)")
    for attr in (tunable.name, tunable.high_param, tunable.warm_up, tunable.raises_with):
        if attr is not None and not hasattr(det, attr):
            raise CalibrationError(f"{name} has no parameter {attr!r}", detector=name, setting=setting)
    return tunable


def calibrate(
    detector_factory: Callable[..., DriftDetector],
    reference: Any,
    ert: float,
    *,
    param: str | Tunable | None = None,
    seed: int = 0,
    n_runs: int = 400,
    horizon: int | None = None,
    reference_check: bool = True,
    warm_up: bool = True,
    max_updates: int | None = None,
) -> Calibration:
    """Choose the parameters of ``detector_factory``'s detector so that, on data like ``reference``, the run
    length to a false alarm has mean ``ert`` and a law close to the geometric one (see the module docstring).

    Parameters
    ----------
    detector_factory
        Builds a detector from keyword arguments: a detector class, or e.g.
        ``functools.partial(PageHinkley, min_instances=50)``. It is called as
        ``detector_factory(**{param: value})`` (plus the warm-up parameter when that is calibrated).
    reference
        A window of stationary data like the stream to watch (for binary detectors: 0/1 errors).
    ert
        The wanted mean number of events between a (re)start and the first alarm on stationary data.
    param
        The parameter to tune: ``None`` for the default of :data:`TUNABLE`, or a :class:`Tunable`.
    seed
        Seeds the simulation; the same inputs and seed give the same result.
    n_runs
        Fewest runs the final estimate is made of; more (up to ``8 * n_runs``) when the run lengths are
        so spread that the mean's relative standard error would exceed 3.5% (the result's ``n_runs`` says
        how many). The simulation costs about ``runs * ert`` detector updates per candidate.
    horizon
        Longest simulated run (default ``20 * ert``, at least 1,000); a run still going is censored.
    reference_check
        Refuse a 0/1 reference too short to pin the ERT (:class:`ReferenceTooShort`).
    warm_up
        Calibrate the warm-up too when the detector's own gives a bad law (if it has one).
    max_updates
        Most simulated work, all candidates together, in weighted updates (None: no bound); beyond it
        :class:`BudgetExceeded`. A service calibrating on its hot path bounds its pause with it.

    Raises
    ------
    CalibrationError
        For every failure (and only this type): see the module docstring.
    """
    probe_name = getattr(detector_factory, "__name__", None) or type(detector_factory).__name__
    setting: dict[str, Any] = {"ert": ert}
    try:
        probe = detector_factory()
    except Exception as exc:  # a factory that cannot build its detector at all
        raise CalibrationError(f"cannot build the detector: {exc}", detector=str(probe_name),
                               setting=setting) from exc
    name = type(probe).__name__
    ref, ert = _check_inputs(reference, ert, setting, name)
    binary = bool(np.isin(ref, (0.0, 1.0)).all())
    rate = float(ref.mean()) if binary else None
    setting.update({"reference_size": int(ref.size), "reference_rate": rate})
    if int(n_runs) < 10:
        raise CalibrationError("n_runs must be at least 10", detector=name, setting=setting)
    if isinstance(probe, BinaryDriftDetector) and ((ref < 0) | (ref > 1)).any():
        raise CalibrationError(f"{name} is a binary detector: the reference must lie in [0, 1]",
                               detector=name, setting=setting)
    tunable = _tunable(probe, param, setting)
    if reference_check and rate is not None and rate in (0.0, 1.0):
        raise ReferenceTooShort(
            f"{name}: the reference of {ref.size} events has an error rate of {rate:g}; its rate is unknown",
            detector=name, setting=setting, needed_reference=2 * ref.size)
    horizon = int(horizon) if horizon is not None else max(int(20 * ert), 1_000)
    if horizon < 1:
        raise CalibrationError("horizon must be at least 1", detector=name, setting=setting)
    first_chunk = int(min(max(256, ert / 8), _MAX_CHUNK))
    sim = _Simulator(ref, int(seed), horizon, first_chunk, rate, max_updates)
    search = _Search(detector_factory, tunable, probe, sim, ert, int(n_runs), name, setting)

    warm_ups: list[int | None] = [None]
    if warm_up and tunable.warm_up is not None:
        own = int(getattr(probe, tunable.warm_up))
        per_event = 1.0 if tunable.warm_up_counts == "events" else (rate if rate is not None else 1.0)
        warm_ups += sorted({w for w in (int(math.ceil(f * ert * per_event)) for f in WARM_UP_FRACTIONS)
                            if w > own})
    failures = []
    found = None
    for w in warm_ups:
        try:
            found = search.run(w)
        except (ReferenceTooShort, _ConstructorRefused, BudgetExceeded):
            raise
        except CalibrationError as exc:
            if w is None and len(warm_ups) == 1:
                raise
            failures.append(f"{_warm_up_label(tunable, w)}: {exc}")
            if exc.suggestion == "ask for a larger ert":
                break  # too few alarms already: a longer warm-up only makes fewer
            continue
        verdict = _law_verdict(found, ert, horizon)
        if verdict is None:
            break
        failures.append(f"{_warm_up_label(tunable, w)}: {verdict}")
        found = None
    if found is None:
        raise CalibrationError(
            f"{name} cannot reach a false-alarm law with mean {ert:g} events (median >= {MIN_MEDIAN:g}, "
            f"10th percentile >= {MIN_P10:g} of it, at most {max_censored(horizon, ert):.1%} of the runs without "
            f"an alarm at {horizon:,} events) on this reference (size {ref.size}"
            + (f", error rate {rate:.4g}" if rate is not None else "") + "): " + "; ".join(failures),
            detector=name, setting=setting, suggestion=_INSTEAD.get(ALIAS.get(name, name), None))
    cal = Calibration(
        detector=name, param=tunable.name, value=found.value, target_ert=ert, estimated_ert=found.ert,
        n_runs=int(found.runs), seed=int(seed), median_run=found.median, p10_run=found.p10,
        warm_up=None if found.warm_up is None else (tunable.warm_up, found.warm_up),
        reference_size=int(ref.size), reference_rate=rate,
        extra=tuple((k, v) for k, v in search.kwargs(found.t, found.warm_up).items() if k != tunable.name),
        factory=detector_factory, horizon=horizon,
        tunable=tunable)
    if reference_check and rate is not None:
        _check_reference(cal, ref, sim, search)
    return cal


ALIAS = {"HDDM_A": "HDDMA", "HDDM_W": "HDDMW"}


def _warm_up_label(tunable: Tunable, w: int | None) -> str:
    if tunable.warm_up is None:
        return "its only warm-up (it has no warm-up parameter)"
    return f"{tunable.warm_up}={w}" if w is not None else f"{tunable.warm_up} at its default"



@dataclass
class _Found:
    value: float
    warm_up: int | None
    ert: float
    median: float
    p10: float
    t: float
    runs: int
    cv: float = 0.0
    #: fraction of the runs censored at the horizon (no alarm)
    censored: float = 0.0


def max_censored(horizon: float, ert: float) -> float:
    """The largest fraction of runs that may still be without an alarm at ``horizon``: what they add to the
    estimated mean (fraction x horizon) stays within the mean's tolerance (``MEAN_TOLERANCE - 1`` of ``ert``):
    0.5% at the default horizon of 20 x ``ert``, where a geometric law has exp(-20) ~ 2e-9. Beyond that the
    mean is made by where the horizon cuts those runs, not by the law (EDDM at every setting of the
    calibration benchmark: 1.1-1.6% at its best warm-up; at p = 0.2, N = 100,000 it measured 1.2x at 20 N and
    2.9x at 100 N; DDM: 0.15%)."""
    return (MEAN_TOLERANCE - 1) * ert / horizon


def _law_verdict(found: _Found, ert: float, horizon: float | None = None) -> str | None:
    """None if the law is acceptable, else what is wrong with it."""
    problems = []
    ratio = found.ert / ert
    if not 1 / MEAN_TOLERANCE <= ratio <= MEAN_TOLERANCE:
        problems.append(f"closest attainable mean {ratio:.2f}x the target")
    if found.median < MIN_MEDIAN * ert:
        problems.append(f"median run {found.median / ert:.3f}x")
    if found.p10 < MIN_P10 * ert:
        problems.append(f"10th percentile {found.p10 / ert:.3f}x")
    limit = max_censored(horizon, ert) if horizon else None
    if limit is not None and found.censored > limit:
        problems.append(f"{found.censored:.1%} of the runs without an alarm at the horizon (at most "
                        f"{limit:.1%}: the mean would be set by where the horizon cuts them)")
    return ", ".join(problems) or None


class _Search:
    """Finds the value of one parameter (at a given warm-up) whose simulated ERT is the target."""

    def __init__(self, factory, tunable: Tunable, probe: DriftDetector, sim: _Simulator, ert: float,
                 n_runs: int, name: str, setting: dict[str, Any]) -> None:
        self.factory, self.tunable, self.sim, self.ert, self.n_runs = factory, tunable, sim, ert, n_runs
        self.name, self.setting = name, setting
        self.sign = 1.0 if tunable.more_alarms_when == "smaller" else -1.0  # ERT grows with sign * log(v)
        high = tunable.high
        if tunable.high_param is not None:
            high = min(high, float(getattr(probe, tunable.high_param)))
        if not tunable.low < high:
            raise CalibrationError(
                f"{name}: {tunable.name} must stay within [{tunable.low:g}, {high:g}], an empty range",
                detector=name, setting=setting)
        self.low, self.high = tunable.low, high
        self.fixed_above = float(getattr(probe, tunable.raises_with)) if tunable.raises_with else math.nan
        lo, hi = math.log(self.low), math.log(high)
        self.t_min, self.t_max = sorted((self.sign * lo, self.sign * hi))
        self.coarse_runs = max(n_runs // 5, 40)

    def value(self, t: float) -> float:
        return min(max(math.exp(self.sign * t), self.low), self.high)  # never outside the valid range

    def kwargs(self, t: float, warm_up: int | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {self.tunable.name: self.value(t)}
        if self.tunable.raises_with is not None:
            kwargs[self.tunable.raises_with] = max(self.fixed_above, kwargs[self.tunable.name])
        if warm_up is not None:
            kwargs[self.tunable.warm_up] = warm_up  # type: ignore[index]
        return kwargs

    def make(self, t: float, warm_up: int | None) -> Callable[[], DriftDetector]:
        kwargs = self.kwargs(t, warm_up)
        try:
            self.factory(**kwargs)
        except Exception as exc:  # a constructor that refuses a value inside our bounds: a bug in TUNABLE
            raise _ConstructorRefused(f"{self.name} refused {kwargs}: {exc}", detector=self.name,
                                      setting=self.setting) from exc
        return lambda: self.factory(**kwargs)

    def f(self, t: float, warm_up: int | None, runs: int) -> tuple[float, np.ndarray]:
        """log(ERT / target) at ``t`` (increasing in t), and the run lengths."""
        lengths = self.sim.run_lengths(self.make(t, warm_up), runs, budget=3.0 * runs * self.ert)
        est = _ert(lengths, self.sim.horizon)
        if not math.isfinite(est):  # no alarm at all: the ERT is at least the exposure
            est = 2.0 * float(np.minimum(lengths, self.sim.horizon).sum())
        return math.log(est / self.ert), lengths

    def run(self, warm_up: int | None) -> _Found:
        t_lo, t_hi = self.t_min, self.t_max
        coarse = self.coarse_runs
        f_lo, _ = self.f(t_lo, warm_up, coarse)
        what = f"{self.tunable.name} in [{self.low:.3g}, {self.high:.3g}]"
        wu = "" if warm_up is None else f" with {self.tunable.warm_up}={warm_up}"
        if f_lo > 0:
            raise CalibrationError(
                f"{self.name}: every {what}{wu} gives false alarms less often than every {self.ert:g} "
                f"events on this reference (at best every {self.ert * math.exp(f_lo):.3g})",
                detector=self.name, setting=self.setting, suggestion="ask for a larger ert")
        f_hi, _ = self.f(t_hi, warm_up, coarse)
        if f_hi < 0:
            raise CalibrationError(
                f"{self.name}: every {what}{wu} gives false alarms more often than every {self.ert:g} "
                f"events on this reference (at best every {self.ert * math.exp(f_hi):.3g})",
                detector=self.name, setting=self.setting,
                suggestion="ask for a smaller ert" + (f", or {_INSTEAD[ALIAS.get(self.name, self.name)]}"
                                                      if ALIAS.get(self.name, self.name) in _INSTEAD else ""))
        # 1. bisection with a fifth of the runs, to a bracket 0.02 wide in log(value)
        lengths = None
        while t_hi - t_lo > 0.02:
            mid = 0.5 * (t_lo + t_hi)
            f_mid, lengths = self.f(mid, warm_up, coarse)
            if f_mid < 0:
                t_lo = mid
            else:
                t_hi = mid
        # heavy-tailed run lengths (DDM, EDDM) need more runs for the same precision of the mean: enough
        # for a relative standard error of MEAN_SE, between n_runs and MAX_RUNS_FACTOR * n_runs
        runs = self.n_runs
        if lengths is not None and lengths.size > 1:
            capped = np.minimum(lengths, self.sim.horizon)
            cv = float(capped.std() / capped.mean()) if capped.mean() > 0 else 0.0
            runs = int(min(max(math.ceil((cv / MEAN_SE) ** 2), self.n_runs), MAX_RUNS_FACTOR * self.n_runs))
        # 2.-3. with enough runs; if the spread measured on them asks for more, once more with those
        bracket = (t_lo, t_hi)
        for _ in range(2):
            found = self._refine(*bracket, warm_up, runs)
            wanted = int(min(max(math.ceil((found.cv / MEAN_SE) ** 2), self.n_runs),
                             MAX_RUNS_FACTOR * self.n_runs))
            if wanted <= 1.2 * runs:
                break
            runs = wanted
        return found

    def _refine(self, t_lo: float, t_hi: float, warm_up: int | None, runs: int) -> _Found:
        # 2. all runs: re-check the bracket (widen it inside the bounds if the coarse estimate was off)
        width = max(t_hi - t_lo, 0.05)
        t_lo, t_hi = max(t_lo - width, self.t_min), min(t_hi + width, self.t_max)
        (f_lo, l_lo), (f_hi, l_hi) = self.f(t_lo, warm_up, runs), self.f(t_hi, warm_up, runs)
        while f_lo > 0 and t_lo > self.t_min:
            t_lo = max(t_lo - 4 * width, self.t_min)
            f_lo, l_lo = self.f(t_lo, warm_up, runs)
        while f_hi < 0 and t_hi < self.t_max:
            t_hi = min(t_hi + 4 * width, self.t_max)
            f_hi, l_hi = self.f(t_hi, warm_up, runs)
        evaluated = [(abs(f_lo), t_lo, f_lo, l_lo), (abs(f_hi), t_hi, f_hi, l_hi)]
        tolerance = 0.25 / math.sqrt(runs)  # well inside the statistical error of one estimate
        side = 0
        # 3. Illinois steps on log(ERT / target)
        for _ in range(8):
            if min(e[:3] for e in evaluated)[0] < tolerance or t_hi - t_lo < 1e-9 or not (f_lo <= 0 <= f_hi):
                break
            t = t_hi - f_hi * (t_hi - t_lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (t_lo + t_hi)
            t = min(max(t, t_lo + 1e-3 * (t_hi - t_lo)), t_hi - 1e-3 * (t_hi - t_lo))
            ft, lt = self.f(t, warm_up, runs)
            evaluated.append((abs(ft), t, ft, lt))
            if ft < 0:
                t_lo, f_lo = t, ft
                if side == -1:
                    f_hi /= 2.0  # Illinois: keep the stale end from stalling the secant
                side = -1
            else:
                t_hi, f_hi = t, ft
                if side == 1:
                    f_lo /= 2.0
                side = 1
        _, t_best, f_best, lengths = min(evaluated, key=lambda e: e[:2])
        return _Found(self.value(t_best), warm_up, float(self.ert * math.exp(f_best)),
                      _quantile(lengths, 0.5), _quantile(lengths, 0.1), t_best, runs, _cv(lengths, self.sim.horizon),
                      float(np.isinf(lengths).mean()) if lengths.size else 0.0)


def _cv(lengths: np.ndarray, horizon: int) -> float:
    capped = np.minimum(lengths, horizon)
    return float(capped.std() / capped.mean()) if capped.size > 1 and capped.mean() > 0 else 0.0


def _quantile(lengths: np.ndarray, q: float) -> float:
    """Quantile of run lengths with censored (infinite) ones: no interpolation, so never inf - inf."""
    return float(np.quantile(lengths, q, method="inverted_cdf"))


def _check_reference(cal: Calibration, ref: np.ndarray, sim: _Simulator, search: _Search) -> None:
    """Raise :class:`ReferenceTooShort` if the ERT moves by more than :data:`REFERENCE_TOLERANCE` over
    the 98% interval of the reference's error rate.

    The ERT's elasticity to the rate, ``d log ERT / d log p``, is measured at the calibrated values on the
    same runs with the rate moved by at least 25% either way (a smaller move would drown in the noise of
    the estimates); the ERT's error over the interval is then ``|elasticity| * half-width``."""
    n, p = ref.size, float(cal.reference_rate)  # type: ignore[arg-type]
    if p <= 0.0 or p >= 1.0:
        raise ReferenceTooShort(
            f"{cal.detector}: the reference of {n} events has an error rate of {p:g}; its rate is unknown",
            detector=cal.detector, setting=search.setting, needed_reference=2 * n)
    rel = _Z98 * math.sqrt((1 - p) / (n * p))
    h = min(max(rel, 0.25), 0.9, 0.9 * (1 - p) / p)
    t = math.log(cal.value) * search.sign
    w = None if cal.warm_up is None else cal.warm_up[1]
    f_up, _ = _shifted(sim, p * (1 + h)).f_at(search, t, w, cal.n_runs)
    f_down, _ = _shifted(sim, p * (1 - h)).f_at(search, t, w, cal.n_runs)
    elasticity = (f_up - f_down) / (math.log1p(h) - math.log1p(-h))
    worst = abs(elasticity) * math.log1p(rel) if rel < 1 else math.inf
    if worst > math.log(REFERENCE_TOLERANCE):
        factor = (worst / math.log(REFERENCE_TOLERANCE)) ** 2 if math.isfinite(worst) else 4.0
        needed = int(math.ceil(n * max(1.25 * factor, 1.5)))  # 1.25: the next reference's rate differs too
        raise ReferenceTooShort(
            f"{cal.detector}: a reference of {n} events estimates the error rate {p:.4g} within "
            f"+-{100 * rel:.0f}% (98%), which moves the calibrated ERT by a factor of up to "
            f"{math.exp(worst):.2f}", detector=cal.detector, setting=search.setting, needed_reference=needed)


class _shifted:
    """The simulator's runs with another error rate (same seeds: the same uniforms thresholded elsewhere)."""

    def __init__(self, sim: _Simulator, rate: float) -> None:
        self.parent = sim
        self.sim = _Simulator(sim._reference, sim.seed, sim.horizon, sim.first_chunk, rate, sim.max_updates)

    def f_at(self, search: _Search, t: float, warm_up: int | None, runs: int) -> tuple[float, np.ndarray]:
        self.sim.updates = self.parent.updates  # one budget for the whole calibration
        try:
            lengths = self.sim.run_lengths(search.make(t, warm_up), runs, budget=3.0 * runs * search.ert)
        finally:
            self.parent.updates = self.sim.updates
        est = _ert(lengths, self.sim.horizon)
        if not math.isfinite(est):
            est = 2.0 * float(np.minimum(lengths, self.sim.horizon).sum())
        return math.log(est / search.ert), lengths


def recalibrate(calibration: Calibration, reference: Any, **overrides: Any) -> Calibration:
    """Calibrate again after a confirmed change, on a reference from the new concept (e.g. the errors
    since the alarm), with the same factory, target, seed, runs, parameter and horizon as ``calibration``.
    A detector that alarmed has reset, so the new values take effect from the detector built by ``new()``
    on the result; ``overrides`` are passed to :func:`calibrate` (e.g. ``ert=...``)."""
    if calibration.factory is None:
        raise CalibrationError("this Calibration was built without a detector factory",
                               detector=calibration.detector, setting={"ert": calibration.target_ert})
    kwargs: dict[str, Any] = {"param": calibration.tunable or calibration.param, "seed": calibration.seed,
                              "n_runs": calibration.n_runs, "horizon": calibration.horizon}
    kwargs.update(overrides)
    ert = kwargs.pop("ert", calibration.target_ert)
    return calibrate(calibration.factory, reference, ert, **kwargs)
