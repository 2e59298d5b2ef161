"""Labelled drifting streams for the detection-quality benchmark (``benchmarks/quality.py``).

The streams follow the FHDDM (Pesaranghader & Viktor, 2016) and Tornado (Pesaranghader et al., 2018)
studies: 100,000 instances, a drift every 20,000 (at 20k, 40k, 60k and 80k), 10% noise.

* abrupt: **Sine1** (``synth.Sine`` functions 0 <-> 1, the reversed concept), **Sine2** (functions
  2 <-> 3), **Mixed** (``synth.Mixed`` 0 <-> 1), **Stagger** (``synth.STAGGER`` 0 -> 1 -> 2 -> 0 -> 1);
  10% of the labels are flipped.
* gradual, transition width 500: **Circles** (x in [0, 1]^2, label = inside one of four circles,
  Gama et al. 2004; River has no such generator, it is written here) with 10% label noise, and **LED**
  (``synth.LEDDrift`` with the 17 irrelevant attributes, 10% attribute noise, as in the LED definition;
  each concept swaps a different set of relevant and irrelevant attributes).

A gradual transition mixes the old and the new concept as ``synth.ConceptDriftStream`` does: instance
``t`` comes from the new concept with probability ``1 / (1 + exp(-4 (t - centre) / width))``. River's
class handles one drift per (nested) instance and counts positions per sub-stream, so the several
transitions of one stream are drawn here with the same sigmoid, from one seeded generator.

Every stream is a pure function of ``(name, n, seed)``: the River generators get seeds derived from
``seed`` and all other randomness comes from ``numpy.random.default_rng``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from river.datasets import synth

N_INSTANCES = 100_000
N_CONCEPTS = 5  # four drifts
LABEL_NOISE = 0.1
GRADUAL_WIDTH = 500

# Circles: (centre x, centre y, radius) of the four concepts (Gama et al., 2004).
CIRCLES = ((0.2, 0.5, 0.15), (0.4, 0.5, 0.2), (0.6, 0.5, 0.25), (0.8, 0.5, 0.3))
# LED: how many relevant attributes each concept swaps with irrelevant ones.
LED_DRIFT_FEATURES = (0, 7, 3, 5, 1)


@dataclass(frozen=True)
class LabelledStream:
    """``n`` labelled instances and where their concept changes.

    ``drifts`` are the first positions of the new concepts (abrupt) or the start of each transition
    (``centre - width // 2``, gradual); an alarm is a true positive when it comes at most ``tolerance``
    instances after (and not before) a drift.
    """

    name: str
    kind: str  # "abrupt" or "gradual"
    xs: list[dict]
    ys: list
    drifts: tuple[int, ...]
    width: int  # transition width (1 for abrupt)


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for a sub-generator, derived from ``seed`` and ``keys`` (stable across runs)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def drift_centres(n: int, n_concepts: int = N_CONCEPTS) -> list[int]:
    return [n * k // n_concepts for k in range(1, n_concepts)]


def _flip_labels(ys: list[int], rate: float, rng: np.random.Generator) -> list[int]:
    flip = rng.random(len(ys)) < rate
    return [int(y) ^ int(f) for y, f in zip(ys, flip)]


def _abrupt(name: str, n: int, seed: int, concept: Callable[[int, int], Iterator],
            functions: tuple[int, ...], prepare: Callable[[dict], dict]) -> LabelledStream:
    bounds = [0, *drift_centres(n, len(functions)), n]
    xs: list[dict] = []
    ys: list[int] = []
    for k, fn in enumerate(functions):
        gen = concept(fn, derive_seed(seed, 1, k))
        for x, y in itertools.islice(gen, bounds[k + 1] - bounds[k]):
            xs.append(prepare(x))
            ys.append(int(y))
    ys = _flip_labels(ys, LABEL_NOISE, np.random.default_rng(derive_seed(seed, 2)))
    return LabelledStream(name, "abrupt", xs, ys, tuple(bounds[1:-1]), 1)


def _as_float(x: dict) -> dict:
    return {k: float(v) for k, v in x.items()}


def _one_hot(x: dict) -> dict:
    # STAGGER attributes are categories coded 0..2; GaussianNB needs one indicator per category.
    return {f"{k}={v}": 1.0 for k, v in x.items()}


def concept_schedule(n: int, centres: list[int], width: int, rng: np.random.Generator) -> np.ndarray:
    """Concept index of each instance: ``synth.ConceptDriftStream``'s sigmoid around each centre."""
    t = np.arange(1, n + 1)  # River counts samples from 1
    nearest = np.abs(t[:, None] - np.asarray(centres)[None, :]).argmin(axis=1)
    z = np.clip(-4.0 * (t - np.asarray(centres)[nearest]) / width, -700, 700)
    p_new = 1.0 / (1.0 + np.exp(z))
    return nearest + (rng.random(n) < p_new)


def sine1(n: int, seed: int) -> LabelledStream:
    return _abrupt("Sine1", n, seed, lambda f, s: iter(synth.Sine(classification_function=f, seed=s)),
                   (0, 1, 0, 1, 0), dict)


def sine2(n: int, seed: int) -> LabelledStream:
    return _abrupt("Sine2", n, seed, lambda f, s: iter(synth.Sine(classification_function=f, seed=s)),
                   (2, 3, 2, 3, 2), dict)


def mixed(n: int, seed: int) -> LabelledStream:
    return _abrupt("Mixed", n, seed, lambda f, s: iter(synth.Mixed(classification_function=f, seed=s)),
                   (0, 1, 0, 1, 0), _as_float)


def stagger(n: int, seed: int) -> LabelledStream:
    return _abrupt("Stagger", n, seed,
                   lambda f, s: iter(synth.STAGGER(classification_function=f, seed=s)),
                   (0, 1, 2, 0, 1), _one_hot)


def circles(n: int, seed: int, width: int = GRADUAL_WIDTH) -> LabelledStream:
    rng = np.random.default_rng(derive_seed(seed, 3))
    centres = drift_centres(n)
    concept = concept_schedule(n, centres, width, rng) % len(CIRCLES)
    pts = rng.random((n, 2))
    c = np.asarray(CIRCLES)[concept]
    inside = (pts[:, 0] - c[:, 0]) ** 2 + (pts[:, 1] - c[:, 1]) ** 2 <= c[:, 2] ** 2
    ys = _flip_labels(inside.astype(int).tolist(), LABEL_NOISE, rng)
    xs = [{"x1": float(a), "x2": float(b)} for a, b in pts]
    return LabelledStream("Circles", "gradual", xs, ys, tuple(c - width // 2 for c in centres), width)


def led(n: int, seed: int, width: int = GRADUAL_WIDTH) -> LabelledStream:
    rng = np.random.default_rng(derive_seed(seed, 4))
    centres = drift_centres(n, len(LED_DRIFT_FEATURES))
    concept = concept_schedule(n, centres, width, rng)
    gens = [
        iter(synth.LEDDrift(seed=derive_seed(seed, 5, k), noise_percentage=LABEL_NOISE,
                            irrelevant_features=True, n_drift_features=nd))
        for k, nd in enumerate(LED_DRIFT_FEATURES)
    ]
    xs, ys = [], []
    for k in concept.tolist():
        x, y = next(gens[k])
        xs.append(_as_float(x))
        ys.append(int(y))
    return LabelledStream("LED", "gradual", xs, ys, tuple(c - width // 2 for c in centres), width)


#: stream name -> generator ``(n, seed) -> LabelledStream``
STREAMS: dict[str, Callable[[int, int], LabelledStream]] = {
    "Sine1": sine1,
    "Sine2": sine2,
    "Mixed": mixed,
    "Stagger": stagger,
    "Circles": circles,
    "LED": led,
}


def tolerance(stream: LabelledStream, abrupt_tolerance: int = 250) -> int:
    """How long after a drift an alarm still counts as its detection."""
    return abrupt_tolerance if stream.kind == "abrupt" else stream.width + abrupt_tolerance

