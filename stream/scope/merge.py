"""Deterministic merge of a model's per-partition summary streams into one stream in event time.

Every summary is cut into *items* (one per outcome, data-drift row, label value and partition-scope
evidence), each with the key ``(event time, partition, topic, offset, kind, tie)``. Items wait, per partition
in key order, until the model's watermark passes them, then leave in key order:

* the **watermark of a partition** is the highest ``Summary.watermark`` it sent (its later items have a
  greater event time); the **model's watermark** is the smallest over all ``partitions`` of the model,
  so an item leaves only once no partition can still send an earlier one. Which summaries arrived when
  does not change what leaves, nor in which order: only where release batches are cut, and the stage's
  results do not depend on that.
* **replays**: per partition the merge keeps the input ``end`` positions it has accepted; an item produced
  by a position below them is a duplicate and dropped (counted), however the replay cut its batches.
* **bounded lag**: an idle or slow partition holds the model back by at most ``max_lag_seconds`` of event
  time behind the most advanced partition; past that its watermark is taken as ``max - max_lag_seconds``
  (``forced``, reported). Its items that then come in at or below what was already released are *late*:
  they are given the released watermark as event time (so they leave with the next release, after
  everything already decided, in key order: by partition, topic, offset) and counted. A partition's late
  items form an **episode** (:attr:`SummaryMerge.late_episodes`, state) from its first late item until its
  watermark reaches what was released; each episode is reported once (:attr:`SummaryMerge.opened`, the
  episodes the last :meth:`add` opened). ``max_lag_seconds = 0`` waits for every partition forever (fully
  deterministic).
* an item whose event time breaks its own partition's earlier watermark promise is clamped to it (a
  property of that partition's data, so still deterministic) and counted.

State is plain data (:meth:`to_state` / :meth:`from_state`), exact round trip.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from stream.scope.summary import INFERENCE, LABELS, Summary, undelta

__all__ = ["ROW", "OUTCOME", "LABEL", "EVIDENCE", "Release", "SummaryMerge"]

#: item kinds, in the order items of one input record leave
ROW, OUTCOME, LABEL, EVIDENCE = 0, 1, 2, 3


@dataclass
class Release:
    """What one call of :meth:`SummaryMerge.release` let out."""

    #: items in key order: ``(ts, partition, topic, offset, kind, tie, payload)``
    items: list[tuple[Any, ...]]
    watermark: float | None
    #: partitions whose watermark holds the model back now -> event-time lag behind the most advanced one
    holding: dict[int, float] = field(default_factory=dict)
    #: partitions whose watermark the lag bound overrode in this release
    forced: list[int] = field(default_factory=list)


class SummaryMerge:
    def __init__(self, partitions: int, max_lag_seconds: float = 60.0, idle_seconds: float = 0.0,
                 stalled_seconds: float = 0.0) -> None:
        self.partitions = partitions
        self.max_lag_seconds = max_lag_seconds
        #: the lag bound overrides only a partition that sent no summary for this long (wall clock, when
        #: ``release`` is given the time): a partition catching up on a backlog is behind in event time but
        #: busy, and is waited for. The wall-clock verdict is kept in the state (``idle``, see
        #: :meth:`declare_idle`) until the partition's next summary, so a replay from a checkpoint taken
        #: after it decides the same
        self.idle_seconds = idle_seconds
        #: per partition: its input backlog (records not yet processed) as last told by the caller
        #: (:meth:`set_backlog`, from the broker); None: unknown (the plain wall-clock rule). A partition
        #: with a backlog is waiting its turn, not idle: it is not declared idle unless silent for
        #: ``stalled_seconds`` (0: wait forever). Not state: an input like the wall clock
        self.backlog: list[int | None] = [None] * partitions
        self.stalled_seconds = stalled_seconds
        #: wall-clock time of each partition's last summary (not state: a restart counts from its start)
        self.last_seen: list[float | None] = [None] * partitions
        self.created: float | None = None
        self._reset()

    def _reset(self) -> None:
        #: per partition: accepted input end positions [inference, labels] (None: nothing yet)
        self.end: list[list[int] | None] = [None] * self.partitions
        #: per partition: watermark (None: nothing promised yet)
        self.watermarks: list[float | None] = [None] * self.partitions
        #: per partition: its items waiting for the model's watermark, in key order (sorted lists: a summary's
        #: items go in with one sort of the few above its partition's previous watermark, a release cuts a
        #: prefix of each, and those leave in one sort of a few sorted runs: no heap operation per item)
        self.buffers: list[list[tuple[Any, ...]]] = [[] for _ in range(self.partitions)]
        #: event time up to which items have left
        self.released: float | None = None
        #: per partition: declared idle by the wall clock (below the lag bound, silent for idle_seconds) and
        #: not heard from since
        self.idle: list[bool] = [False] * self.partitions
        self.duplicates = 0
        self.late = 0
        self.out_of_order = 0
        self.summaries = 0
        #: per partition, its open late episode: [topic, offset, event time] of its oldest late item, the
        #: watermark already released when it came, late items so far (None: no episode)
        self.late_episodes: list[list[Any] | None] = [None] * self.partitions
        #: (partition, episode) opened by the last add(): reported once, by the stage (not state)
        self.opened: list[tuple[int, list[Any]]] = []

    # -- in -----------------------------------------------------------------------------------------
    def add(self, s: Summary, now: float | None = None) -> int:
        """Take one summary (``now``: the wall clock, for the idle test of the lag bound); returns how
        many of its items are new."""
        p = s.partition
        if not 0 <= p < self.partitions:
            raise ValueError(f"summary of partition {p}, but the model has {self.partitions} partitions")
        if now is not None:
            self.last_seen[p] = now
            if self.created is None:
                self.created = now
        self.summaries += 1
        self.idle[p] = False
        end = self.end[p]
        wm_prev = self.watermarks[p]
        released = self.released
        items: list[tuple[Any, ...]] = []
        push = items.append
        self.opened = []
        #: this summary's late items: count, and the oldest one's (ts, topic, offset)
        late: list[Any] = [0, None]

        def clamp(ts: float, topic: int, offset: int) -> float:
            at = ts
            if wm_prev is not None and ts <= wm_prev:
                self.out_of_order += 1
                ts = wm_prev
            if released is not None and ts <= released:
                if wm_prev is None or wm_prev < released:  # forced past this partition by the lag bound
                    self.late += 1
                    late[0] += 1
                    if late[1] is None or (at, topic, offset) < late[1]:
                        late[1] = (at, topic, offset)
                ts = released
            return ts

        def fresh(topic: int, offset: int) -> bool:
            if end is not None and offset < end[topic]:
                self.duplicates += 1
                return False
            return True

        floor = wm_prev if released is None else released if wm_prev is None else max(wm_prev, released)

        def bulk(topics: tuple[int, ...], ts: list[float]) -> bool:
            """The usual case, nothing to drop or clamp: the summary starts at or after what was accepted in
            ``topics`` (its items are at or after its start) and the event times ``ts`` are above the
            watermarks."""
            return (end is None or all(s.start[t] >= end[t] for t in topics)) and (floor is None or min(ts) > floor)

        o = s.outcomes
        if o.ts:
            offsets = undelta(o.offset)
            payloads = zip(o.served, o.online, o.event_id, undelta(o.inference_offset), undelta(o.labels_offset),
                           o.prediction_ts)
            if bulk((INFERENCE, LABELS), o.ts):
                items += zip(o.ts, repeat(p), o.topic, offsets, repeat(OUTCOME), repeat(""), payloads)
            else:
                # an outcome was sent before when both its records (pl[3]: inference, pl[4]: labels offset) are
                # below the end positions the partition reported: it was joined when the later of them was
                # processed. Not by the position of the record that completed it: a replay may read the two
                # inputs in another interleaving and complete the join with the other record
                for ts, topic, off, pl in zip(o.ts, o.topic, offsets, payloads):
                    if end is not None and pl[3] < end[INFERENCE] and pl[4] < end[LABELS]:
                        self.duplicates += 1
                        continue
                    push((clamp(ts, topic, off), p, topic, off, OUTCOME, "", pl))
        r = s.rows
        if r.ts:
            offsets = undelta(r.offsets)
            cols = list(r.features.items())
            scores = r.score
            if bulk((INFERENCE,), r.ts):
                # a row's features are the columns' values that are not None, in the columns' order
                names = [name for name, _ in cols]
                values = zip(*(col for _, col in cols)) if cols else repeat((), len(offsets))
                if any(None in col for _, col in cols):
                    feats = [{k: v for k, v in zip(names, vals) if v is not None} for vals in values]
                else:
                    feats = [dict(zip(names, vals)) for vals in values]
                items += zip(r.ts, repeat(p), repeat(INFERENCE), offsets, repeat(ROW), repeat(""),
                             zip(feats, repeat(r.types), r.valid, r.prediction,
                                 repeat(None) if scores is None else scores))
            else:
                for i, off in enumerate(offsets):
                    if not fresh(INFERENCE, off):
                        continue
                    feats = {name: col[i] for name, col in cols if col[i] is not None}
                    push((clamp(r.ts[i], INFERENCE, off), p, INFERENCE, off, ROW, "",
                          (feats, r.types, r.valid[i], r.prediction[i], None if scores is None else scores[i])))
        lab = s.labels
        if lab.ts:
            if bulk((LABELS,), lab.ts):
                items += zip(lab.ts, repeat(p), repeat(LABELS), undelta(lab.offsets), repeat(LABEL), repeat(""),
                             zip(lab.values))
            else:
                for ts, off, v in zip(lab.ts, undelta(lab.offsets), lab.values):
                    if fresh(LABELS, off):
                        push((clamp(ts, LABELS, off), p, LABELS, off, LABEL, "", (v,)))
        for e in s.evidence:
            if fresh(e.topic, e.offset):
                push((clamp(e.ts, e.topic, e.offset), p, e.topic, e.offset, EVIDENCE, e.id,
                      (e.kind, e.signal, e.detector)))
        if items:
            items.sort()
            buf = self.buffers[p]
            if buf and items[0] < buf[-1]:  # overlaps what the partition sent before (above its old watermark)
                i = bisect_left(buf, items[0])
                items = sorted(buf[i:] + items)
                del buf[i:]
            buf += items
        self.end[p] = list(s.end) if end is None else [max(a, b) for a, b in zip(end, s.end)]
        if s.watermark is not None and (wm_prev is None or s.watermark > wm_prev):
            self.watermarks[p] = s.watermark
        episode = self.late_episodes[p]
        if late[0]:
            if episode is None:
                ts, topic, offset = late[1]
                episode = self.late_episodes[p] = [topic, offset, ts, released, 0]
                self.opened.append((p, episode))
            episode[4] += late[0]
        if episode is not None and self.watermarks[p] is not None and released is not None \
                and self.watermarks[p] >= released:
            self.late_episodes[p] = None  # caught up: its later items cannot be late
        return len(items)

    # -- out ----------------------------------------------------------------------------------------
    def watermark(self, now: float | None = None) -> tuple[float | None, dict[int, float], list[int]]:
        """The model's watermark now (``None``: some partition has promised nothing yet), the partitions
        holding it back (-> their event-time lag behind the most advanced partition; ``inf`` for one that
        sent nothing) and the partitions whose watermark the lag bound overrides."""
        known = [w for w in self.watermarks if w is not None]
        if not known:
            return None, {}, []
        top = max(known)
        bound = top - self.max_lag_seconds if self.max_lag_seconds > 0 else None
        forced = [p for p, w in enumerate(self.watermarks) if bound is not None and (w is None or w < bound)
                  and self._idle(p, now)]
        eff = [bound if p in forced else w for p, w in enumerate(self.watermarks)]
        if any(w is None for w in eff):
            return None, {p: float("inf") for p, w in enumerate(eff) if w is None}, forced
        wm = min(eff)
        holding = {p: float("inf") if w is None else top - w for p, w in enumerate(self.watermarks)
                   if eff[p] == wm and wm < top}
        return wm, holding, forced

    def _idle(self, p: int, now: float | None) -> bool:
        if now is None or self.idle_seconds <= 0:
            return True
        return self.idle[p]

    def set_backlog(self, backlog: dict[int, int | None]) -> None:
        """The caller's latest answer about each partition's unprocessed input (high watermark minus
        processed end, summed over the input topics); partitions left out keep their last answer."""
        for p, n in backlog.items():
            if 0 <= p < self.partitions:
                self.backlog[p] = n

    def idle_candidates(self, now: float | None, incoming: Summary | None = None) -> list[int]:
        """The partitions the wall clock would declare idle now if their backlog allowed it: not idle yet,
        below the lag bound and silent for ``idle_seconds`` (since start-up for one not heard from since).
        ``incoming``: the summary about to be added (its partition is not idle; the bound is the one after
        it). The caller asks the broker for these partitions' backlogs (:meth:`set_backlog`) before
        :meth:`declare_idle`."""
        if now is None or self.idle_seconds <= 0 or self.max_lag_seconds <= 0:
            return []
        wms = list(self.watermarks)
        skip = None
        if incoming is not None:
            skip = incoming.partition
            w = incoming.watermark
            if w is not None and (wms[skip] is None or w > wms[skip]):
                wms[skip] = w
        known = [w for w in wms if w is not None]
        if not known:
            return []
        bound = max(known) - self.max_lag_seconds
        out = []
        for p, w in enumerate(wms):
            if p == skip or self.idle[p] or not (w is None or w < bound):
                continue
            if now - self._seen(p) >= self.idle_seconds:
                out.append(p)
        return out

    def _seen(self, p: int) -> float:
        """Wall-clock time partition ``p`` was last heard from (start-up if never; +inf before any summary:
        nothing is silent yet)."""
        seen = self.last_seen[p] if self.last_seen[p] is not None else self.created
        return float("inf") if seen is None else seen

    def waiting(self, now: float | None, incoming: Summary | None = None) -> dict[int, int]:
        """The partitions the lag bound would override but which are waited for because they have a backlog
        (-> its size): behind, silent for ``idle_seconds``, not yet ``stalled_seconds``."""
        return {p: self.backlog[p] for p in self.idle_candidates(now, incoming) if self._waits(p, now)}

    def _waits(self, p: int, now: float) -> bool:
        return bool(self.backlog[p]) and (self.stalled_seconds <= 0 or now - self._seen(p) < self.stalled_seconds)

    def declare_idle(self, now: float | None, incoming: Summary | None = None) -> list[int]:
        """The partitions the wall clock declares idle now (newly): the :meth:`idle_candidates` without a
        known backlog (or silent for ``stalled_seconds`` with one). The only wall-clock decision of the
        merge: the service checkpoints right after a declaration, before anything depends on it."""
        new = []
        for p in self.idle_candidates(now, incoming):
            if self._waits(p, now):  # type: ignore[arg-type]
                continue  # behind: waiting its turn, not idle
            self.idle[p] = True
            new.append(p)
        return new

    def release(self, now: float | None = None) -> Release:
        self.declare_idle(now)
        wm, holding, forced = self.watermark(now)
        items: list[tuple[Any, ...]] = []
        if wm is not None and (self.released is None or wm >= self.released):
            cut = (wm, float("inf"))  # after every item at event time wm (partitions are ints)
            runs = 0
            for buf in self.buffers:
                if buf and buf[0][0] <= wm:
                    i = bisect_right(buf, cut)
                    items += buf[:i]
                    del buf[:i]
                    runs += 1
            if runs > 1:
                items.sort()  # a merge of sorted runs
            self.released = wm
        return Release(items, wm, holding, forced)

    @property
    def buffered(self) -> list[tuple[Any, ...]]:
        """The items waiting for the model's watermark, in key order."""
        return sorted(i for buf in self.buffers for i in buf)

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"partitions": self.partitions, "end": [None if e is None else list(e) for e in self.end],
                "watermarks": list(self.watermarks),
                # in key order: the state does not depend on the order items came in
                "heap": [[*i[:6], list(i[6])] for i in sorted((i for b in self.buffers for i in b),
                                                              key=lambda i: i[:6])],
                "released": self.released, "duplicates": self.duplicates, "late": self.late,
                "out_of_order": self.out_of_order, "summaries": self.summaries,
                "late_episodes": [None if e is None else list(e) for e in self.late_episodes],
                "idle": list(self.idle)}

    def load_state(self, s: dict[str, Any]) -> None:
        if s["partitions"] != self.partitions:
            raise ValueError(f"merge state of {s['partitions']} partitions, the model has {self.partitions}")
        self.end = [None if e is None else list(e) for e in s["end"]]
        self.watermarks = list(s["watermarks"])
        # stored in key order; items are (ts, p, topic, offset, kind, tie, payload)
        self.buffers = [[] for _ in range(self.partitions)]
        for i in s["heap"]:
            self.buffers[i[1]].append((*i[:6], tuple(i[6])))
        self.released = s["released"]
        self.duplicates = s["duplicates"]
        self.late = s["late"]
        self.out_of_order = s["out_of_order"]
        self.summaries = s["summaries"]
        episodes = s.get("late_episodes")  # absent in states written before late episodes were kept
        self.late_episodes = [None] * self.partitions if episodes is None else \
            [None if e is None else list(e) for e in episodes]
        self.opened = []
        self.idle = list(s.get("idle", [False] * self.partitions))
