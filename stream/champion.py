"""Champion vs challenger on exactly the same joined events.

The served model (champion) and the online River model (challenger) are scored on the same labels. Over a
sliding window of paired outcomes, a paired significance test says whether the challenger is better:

* classification: McNemar's test with continuity correction on the discordant pairs
  (b = champion wrong and challenger right, c = champion right and challenger wrong);
  statistic ``(|b - c| - 1)^2 / (b + c)``, chi-squared with 1 degree of freedom;
* regression: a paired test on the absolute errors ``d = |e_champion| - |e_challenger|``; statistic
  ``mean(d) / (sd(d) / sqrt(n))`` with a normal approximation (the window is at least ``min_pairs`` long).

Everything here is plain data and part of the partition checkpoint.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from operator import gt, itemgetter, lt
from typing import Any

from detectors._stats import chi2_sf


@dataclass(frozen=True)
class Comparison:
    test: str
    n: int
    statistic: float
    p_value: float
    champion_error: float
    challenger_error: float
    challenger_better: bool
    #: McNemar's discordant counts (classification only)
    b: int | None = None
    c: int | None = None


_first, _second = itemgetter(0), itemgetter(1)


_wrong = partial(lt, 0)  # as ChampionChallenger._count: wrong = error > 0 (0 < error)


def _counts(e0: list[float], e1: list[float]) -> tuple[int, int, int, int]:
    """Of the pairs ``zip(e0, e1)``: champion wrong, challenger wrong, only the champion, only the challenger."""
    w0 = list(map(_wrong, e0))
    w1 = list(map(_wrong, e1))
    return w0.count(True), w1.count(True), sum(map(gt, w0, w1)), sum(map(lt, w0, w1))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


class ChampionChallenger:
    def __init__(self, task: str, window: int = 2000, alpha: float = 0.01, min_pairs: int = 200) -> None:
        self.task = task
        self.window = window
        self.alpha = alpha
        self.min_pairs = min_pairs
        self._pairs: deque[tuple[float, float]] = deque(maxlen=window)
        #: True while the challenger is significantly better (an event is published on entering this)
        self.better = False
        #: pairs added since the start (the window is full after ``window`` of them)
        self.added = 0
        self._recount()

    def _recount(self) -> None:
        """Running counts of the window (classification: 0/1 errors, so the sums are exact integers and equal
        to summing the window again)."""
        pairs = self._pairs
        self._s0 = sum(1 for e0, _ in pairs if e0 > 0)
        self._s1 = sum(1 for _, e1 in pairs if e1 > 0)
        self._b = sum(1 for e0, e1 in pairs if e0 > 0 and e1 == 0)
        self._c = sum(1 for e0, e1 in pairs if e0 == 0 and e1 > 0)

    def add(self, champion_error: float, challenger_error: float) -> None:
        pairs = self._pairs
        if self.task == "classification":
            if len(pairs) == self.window:  # the oldest pair leaves the window
                o0, o1 = pairs[0]
                self._count(o0, o1, -1)
            self._count(champion_error, challenger_error, 1)
        pairs.append((champion_error, challenger_error))
        self.added += 1

    def add_many(self, champion_errors: Sequence[float], challenger_errors: Sequence[float]) -> None:
        """:meth:`add` of each pair in turn, the same state (classification: the window's counts move by whole
        numbers, so the pairs leaving and entering the window are counted together)."""
        champion, challenger = list(champion_errors), list(challenger_errors)
        if len(champion) != len(challenger):
            raise ValueError(f"{len(champion)} champion errors but {len(challenger)} challenger errors")
        pairs = self._pairs
        if self.task == "classification":
            s0, s1, b, c = _counts(champion, challenger)
            drop = len(pairs) + len(champion) - self.window
            if drop > 0:  # the oldest pairs leave, the earliest of these ones too if there are more than a window
                old = min(drop, len(pairs))
                leaving = list(islice(pairs, old))
                o0, o1, ob, oc = _counts([*map(_first, leaving), *champion[:drop - old]],
                                         [*map(_second, leaving), *challenger[:drop - old]])
                s0, s1, b, c = s0 - o0, s1 - o1, b - ob, c - oc
            self._s0 += s0
            self._s1 += s1
            self._b += b
            self._c += c
        pairs.extend(zip(champion, challenger))
        self.added += len(champion)

    def _count(self, e0: float, e1: float, k: int) -> None:
        w0, w1 = e0 > 0, e1 > 0
        self._s0 += k * w0
        self._s1 += k * w1
        if w0 and not w1:
            self._b += k
        elif w1 and not w0:
            self._c += k

    def compare(self) -> Comparison | None:
        n = len(self._pairs)
        if n < self.min_pairs:
            return None
        if self.task == "classification":
            champ, chall = self._s0 / n, self._s1 / n
            b, c = self._b, self._c
            if b + c == 0:
                return Comparison("mcnemar", n, 0.0, 1.0, champ, chall, False, b, c)
            stat = (abs(b - c) - 1.0) ** 2 / (b + c)
            p = float(chi2_sf(stat, 1))
            return Comparison("mcnemar", n, stat, p, champ, chall, p < self.alpha and b > c, b, c)
        champ = sum(p[0] for p in self._pairs) / n
        chall = sum(p[1] for p in self._pairs) / n
        d = [abs(e0) - abs(e1) for e0, e1 in self._pairs]
        mean = sum(d) / n
        if n < 2:  # no variance from one pair (the config asks for min_pairs >= 2)
            return None
        var = sum((x - mean) ** 2 for x in d) / (n - 1)
        if var == 0.0:
            return Comparison("paired_z", n, 0.0, 1.0, champ, chall, False)
        z = mean / math.sqrt(var / n)
        p = _normal_sf(z)  # one-sided: challenger error smaller
        return Comparison("paired_z", n, z, p, champ, chall, p < self.alpha and mean > 0)

    def to_state(self) -> dict[str, Any]:
        return {"pairs": [list(p) for p in self._pairs], "better": self.better, "added": self.added}

    def load_state(self, state: dict[str, Any]) -> None:
        self._pairs = deque((tuple(p) for p in state["pairs"]), maxlen=self.window)
        self.better = bool(state["better"])
        self.added = int(state.get("added", len(self._pairs)))
        self._recount()
