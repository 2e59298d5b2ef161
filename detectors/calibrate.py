"""Calibrate a detector's threshold to a target false-alarm rate (expected run time to a false alarm).

A detector's defaults say nothing about how often it cries wolf on *your* stream. ``calibrate`` picks the
value of the detector's threshold parameter at which, on a stationary stream that looks like a reference
window, the mean number of events until the first alarm (the expected run time, ERT; ARL0 in the SPC
literature) is the requested ``ert``.

Method
------
1. Simulate stationary streams from the reference: a Bernoulli stream with the reference rate when the
   reference is 0/1 (an error stream), otherwise a bootstrap (i.i.d. resampling) of the reference values.
   All randomness comes from ``numpy.random.default_rng`` seeded with ``(seed, stream index)``, and every
   candidate threshold is run on the *same* simulated streams (common random numbers), so the estimated
   ERT is a smooth, nearly monotone function of the threshold and the result is reproducible.
2. Run the detector over the streams with ``update_many``. Every detector in :mod:`detectors` resets
   completely after an alarm, so on i.i.d. data the alarms cut a long stream into independent run lengths:
   one long stream yields many runs at the price of one ``update_many`` pass. The ERT is estimated as
   ``events / alarms``, where the events after the last alarm of a stream (a run censored at the
   horizon) count as exposure without an alarm; this is the maximum-likelihood estimate for a geometric
   run length and the renewal-reward estimate in general. The budget is ``n_runs * ert`` events, i.e.
   about ``n_runs`` runs at the target, which gives a relative standard error of about
   ``1 / sqrt(n_runs)``.
3. Search the parameter (log scale) between the bounds of :data:`TUNABLE`: bisection on a tenth of the
   budget, then a few regula-falsi (Illinois) steps on ``log(ERT / target)`` with the full budget, and
   keep the evaluated value whose ERT is closest to the target.

Detectors whose statistic accumulates over the whole run (DDM, HDDM_A: the alarm probability per event
decreases as the run grows) have heavy-tailed run lengths; their estimate needs a horizon that is long
compared to ``ert`` (the default is ``20 * ert``). KSWIN is slow (a KS test per event), so calibrating it
is only practical for small ``ert``. Discrete statistics (FHDDM's window mean moves in steps of
``1 / sliding_window_size``) make the ERT a step function of the threshold: the closest attainable value
is returned and ``estimated_ert`` says how close it is.

Example
-------
>>> import numpy as np
>>> from detectors.page_hinkley import PageHinkley
>>> from detectors.calibrate import calibrate
>>> reference = np.random.default_rng(1).normal(size=2_000)
>>> cal = calibrate(PageHinkley, reference, ert=1_000, seed=7)
>>> cal.detector, cal.param, cal.target_ert
('PageHinkley', 'threshold', 1000.0)
>>> bool(0.8 < cal.estimated_ert / 1_000 < 1.25)
True
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

#: values generated per ``update_many`` call: bounds the memory of a simulation, not its result
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Tunable:
    """Which constructor parameter sets a detector's false-alarm rate, and how.

    ``more_alarms_when`` is ``"larger"`` if increasing the parameter makes alarms more frequent (a
    significance level such as ADWIN's ``delta``) or ``"smaller"`` (a threshold such as PageHinkley's
    ``threshold``). The search runs on ``log(value)`` between ``low`` and ``high`` (both > 0).
    """

    name: str
    more_alarms_when: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.more_alarms_when not in ("larger", "smaller"):
            raise ValueError("more_alarms_when must be 'larger' or 'smaller'")
        if not 0 < self.low < self.high:
            raise ValueError("need 0 < low < high")


#: detector class name -> the parameter that calibration tunes by default
TUNABLE: dict[str, Tunable] = {
    "PageHinkley": Tunable("threshold", "smaller", 1e-3, 1e7),
    "ADWIN": Tunable("delta", "larger", 1e-30, 1.0),
    "KSWIN": Tunable("alpha", "larger", 1e-30, 0.5),
    "DDM": Tunable("drift_threshold", "smaller", 0.1, 100.0),
    "EDDM": Tunable("beta", "larger", 1e-3, 0.95),  # must stay <= EDDM's alpha (0.95 by default)
    "HDDM_A": Tunable("drift_confidence", "larger", 1e-30, 0.5),
    "HDDM_W": Tunable("drift_confidence", "larger", 1e-30, 0.5),
    "FHDDM": Tunable("confidence_level", "larger", 1e-100, 0.5),
}
TUNABLE["HDDMA"], TUNABLE["HDDMW"] = TUNABLE["HDDM_A"], TUNABLE["HDDM_W"]  # River's spelling of the names


@dataclass(frozen=True)
class Calibration:
    """The outcome of :func:`calibrate`; ``new()`` builds a fresh detector with the calibrated value."""

    detector: str
    param: str
    value: float
    target_ert: float
    estimated_ert: float
    n_runs: int
    seed: int
    factory: Callable[..., DriftDetector] = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    @property
    def params(self) -> dict[str, float]:
        return {self.param: self.value}

    def new(self) -> DriftDetector:
        if self.factory is None:
            raise ValueError("this Calibration was built without a detector factory")
        return self.factory(**self.params)


class _Simulator:
    """Stationary streams like the reference, identical for every candidate value (common random numbers)."""

    def __init__(self, reference: np.ndarray, seed: int, horizon: int) -> None:
        self.seed = seed
        self.horizon = horizon
        binary = bool(np.isin(reference, (0.0, 1.0)).all())
        self._rate = float(reference.mean()) if binary else None
        self._reference = reference

    def chunks(self, stream: int, length: int):
        rng = np.random.default_rng([self.seed, stream])
        done = 0
        while done < length:
            size = min(_CHUNK, length - done)
            if self._rate is not None:
                yield (rng.random(size) < self._rate).astype(np.float64)
            else:
                yield self._reference[rng.integers(0, self._reference.size, size)]
            done += size

    def ert(self, make: Callable[[], DriftDetector], budget: float) -> tuple[float, int]:
        """(events / alarms, alarms) over ``budget`` simulated events cut into streams of ``horizon``."""
        events = alarms = 0
        stream = 0
        while events < budget:
            length = int(min(self.horizon, max(budget - events, 1)))
            det = make()
            for xs in self.chunks(stream, length):
                alarms += int(det.update_many(xs).size)
            events += length
            stream += 1
        return (events / alarms if alarms else math.inf), alarms


def _check_inputs(reference: Any, ert: float) -> np.ndarray:
    try:
        ert = float(ert)
    except (TypeError, ValueError):
        raise ValueError(f"ert must be a number, got {ert!r}") from None
    if not math.isfinite(ert) or ert <= 0:
        raise ValueError(f"ert must be a positive finite number of events, got {ert!r}")
    ref = as_float_array(reference)  # InvalidInput (a ValueError) on NaN / inf / not 1-D
    if ref.size == 0:
        raise ValueError("reference is empty: calibration needs a window of stationary data")
    return ref


def _tunable(det: DriftDetector, param: str | Tunable | None) -> Tunable:
    name = type(det).__name__
    if isinstance(param, Tunable):
        tunable = param
    elif param is None or (name in TUNABLE and TUNABLE[name].name == param):
        if name not in TUNABLE:
            raise ValueError(f"no default parameter to tune for {name}; pass param=Tunable(...)")
        tunable = TUNABLE[name]
    else:
        raise ValueError(
            f"don't know how {param!r} moves the alarm rate of {name}; pass param=Tunable(...)"
        )
    if not hasattr(det, tunable.name):
        raise ValueError(f"{name} has no parameter {tunable.name!r}")
    return tunable


def calibrate(
    detector_factory: Callable[..., DriftDetector],
    reference: Any,
    ert: float,
    *,
    param: str | Tunable | None = None,
    seed: int = 0,
    n_runs: int = 200,
    horizon: int | None = None,
) -> Calibration:
    """Choose the threshold of ``detector_factory``'s detector so that false alarms come every ``ert`` events.

    Parameters
    ----------
    detector_factory
        Builds a detector from keyword arguments: a detector class, or e.g.
        ``functools.partial(PageHinkley, min_instances=50)``. It is called as
        ``detector_factory(**{param: value})``.
    reference
        A window of stationary data like the stream to watch (for binary detectors: 0/1 errors).
    ert
        The wanted mean number of events between a (re)start and the first alarm on stationary data.
    param
        The parameter to tune: ``None`` for the default of :data:`TUNABLE`, or a :class:`Tunable`.
    seed
        Seeds the simulation; the same inputs and seed give the same result.
    n_runs
        About how many run lengths the final estimate averages (its relative standard error is about
        ``1 / sqrt(n_runs)``); the simulation costs ``n_runs * ert`` detector updates per candidate.
    horizon
        Length of each simulated stream (default ``20 * ert``, at least 1,000); a run still going at the
        horizon is censored.
    """
    ref = _check_inputs(reference, ert)
    ert = float(ert)
    if int(n_runs) < 1:
        raise ValueError("n_runs must be at least 1")
    probe = detector_factory()
    if isinstance(probe, BinaryDriftDetector) and ((ref < 0) | (ref > 1)).any():
        raise InvalidInput(f"{type(probe).__name__} is a binary detector: the reference must lie in [0, 1]")
    tunable = _tunable(probe, param)
    horizon = int(horizon) if horizon is not None else max(int(20 * ert), 1_000)
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    sim = _Simulator(ref, int(seed), horizon)
    sign = 1.0 if tunable.more_alarms_when == "smaller" else -1.0  # ERT grows with sign * log(value)

    def f(u: float, budget: float) -> float:
        """log(ERT / target) at log-value ``u``: increasing in ``sign * u``."""
        value = math.exp(u)
        est, alarms = sim.ert(lambda: detector_factory(**{tunable.name: value}), budget)
        if not alarms:  # fewer than one alarm in the budget: ERT is at least the budget
            est = 2.0 * budget
        return math.log(est / ert)

    lo, hi = math.log(tunable.low), math.log(tunable.high)
    # work in t = sign * u so that f increases with t
    t_lo, t_hi = sorted((sign * lo, sign * hi))
    coarse = max(n_runs / 10.0, 20.0) * ert
    full = float(n_runs) * ert

    # 1. bracket the target on the coarse budget
    f_lo, f_hi = f(sign * t_lo, coarse), f(sign * t_hi, coarse)
    if f_lo > 0:
        raise ValueError(
            f"{type(probe).__name__}: even {tunable.name}={math.exp(sign * t_lo):.3g} gives false alarms "
            f"less often than every {ert:g} events on this reference (estimated ERT "
            f"{ert * math.exp(f_lo):.3g}); ask for a larger ert"
        )
    if f_hi < 0:
        raise ValueError(
            f"{type(probe).__name__}: even {tunable.name}={math.exp(sign * t_hi):.3g} gives false alarms "
            f"more often than every {ert:g} events on this reference (estimated ERT "
            f"{ert * math.exp(f_hi):.3g}); ask for a smaller ert"
        )
    # 2. bisection on the coarse budget, to a bracket 0.02 wide in log(value)
    while t_hi - t_lo > 0.02:
        mid = 0.5 * (t_lo + t_hi)
        if f(sign * mid, coarse) < 0:
            t_lo = mid
        else:
            t_hi = mid

    # 3. full budget: re-check the bracket (widen it if the coarse estimate was off), then Illinois steps
    width = max(t_hi - t_lo, 0.05)
    t_lo, t_hi = t_lo - width, t_hi + width
    bounds = sorted((sign * lo, sign * hi))
    f_lo, f_hi = f(sign * t_lo, full), f(sign * t_hi, full)
    while f_lo > 0 and t_lo > bounds[0]:
        t_lo = max(t_lo - 4 * width, bounds[0])
        f_lo = f(sign * t_lo, full)
    while f_hi < 0 and t_hi < bounds[1]:
        t_hi = min(t_hi + 4 * width, bounds[1])
        f_hi = f(sign * t_hi, full)
    evaluated = [(abs(f_lo), t_lo, f_lo), (abs(f_hi), t_hi, f_hi)]
    tolerance = 0.25 / math.sqrt(n_runs)  # well inside the statistical error of one estimate
    side = 0
    for _ in range(8):
        if min(evaluated)[0] < tolerance or t_hi - t_lo < 1e-9 or not (f_lo <= 0 <= f_hi):
            break
        t = t_hi - f_hi * (t_hi - t_lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (t_lo + t_hi)
        t = min(max(t, t_lo + 1e-3 * (t_hi - t_lo)), t_hi - 1e-3 * (t_hi - t_lo))
        ft = f(sign * t, full)
        evaluated.append((abs(ft), t, ft))
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
    _, t_best, f_best = min(evaluated)
    return Calibration(
        detector=type(probe).__name__,
        param=tunable.name,
        value=float(math.exp(sign * t_best)),
        target_ert=ert,
        estimated_ert=float(ert * math.exp(f_best)),
        n_runs=int(n_runs),
        seed=int(seed),
        factory=detector_factory,
    )
