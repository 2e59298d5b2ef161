"""The model-level stage: one :class:`ModelStage` per model decides on the merged stream of all its partitions.

Per partition the pipelines join, check and learn; they send a :class:`~stream.scope.summary.Summary` per
micro-batch. The stage merges the summaries in event time (:class:`~stream.scope.merge.SummaryMerge`) and
runs, on the merged stream, with the model's full traffic:

1. the served model's error detectors (the model's configured detectors from the ``detectors`` registry,
   calibrated to ``false_alarm_every`` with :func:`detectors.calibrate.calibrate`, exactly as
   :class:`stream.detect.ModelMonitor` does per partition: calibration now holds per model);
2. the data-drift tests (:class:`stream.datadrift.DataDriftMonitor`, fed in merged order);
3. champion vs challenger on the paired outcomes (:class:`stream.champion.ChampionChallenger`);
4. the retrain policy (:class:`stream.policy.RetrainPolicy`): cooldowns and episodes are per model.

It publishes **incidents**, not alarms: the first concept alarm opens an incident; alarms of any detector
that follow within ``incident_quiet_seconds`` of event time of the incident's last alarm, in the same
direction, belong to it and are not published again (the same per data-drift signal). A concept incident
says which way the served error moved (``direction``, ``error_before`` / ``error_after`` around the change
point of the merged errors since the previous alarm); an improvement is ``info`` and, by default, does not
retrain (``retrain.retrain_on_improvement``). Every output carries ``"scope": "model"``;
ids derive from the model and the merged position of the item that caused them
(``scope:<model>:<input topic>:<partition>:<offset>:<kind>``), so replays and any arrival interleaving
give the same events. Nothing in an event depends on when summaries arrived (watermark lag and holding
partitions are reported by :meth:`ModelStage.status`, not in events).

Results do not depend on where release batches are cut: the detectors' ``update_many`` equals their
``update`` one by one, and the policy inputs are replayed in merged order as the partition stage does.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Iterable

import numpy as np

from stream.champion import ChampionChallenger
from stream.config import ModelSpec, ScopeConfig
from stream.datadrift import DataDriftMonitor
from stream.detect import MIN_SINCE_ALARM, ConceptDetectors, change_point, change_within
from stream.policy import RetrainPolicy
from stream.scope.merge import LABEL, OUTCOME, ROW, Release, SummaryMerge
from stream.scope.summary import Summary

log = logging.getLogger("driftstream.scope")

__all__ = ["ModelStage", "Output", "ScopeConfig", "STATE_FORMAT"]

STATE_FORMAT = 2  # 2: the concept detectors' state as stream.detect.ConceptDetectors
#: window over which rolling errors are reported (as stream.detect.ROLLING)
ROLLING = 1000
#: an item's partition and payload (items: see SummaryMerge)
_second, _payload = itemgetter(1), itemgetter(6)
#: the RetrainPolicyConfig fields that let RetrainPolicy.decide_at decide at an outcome that brought it no other
#: input (a clock, a count or a running error rate) and make observe_label more than counting: with any of
#: them on, every outcome goes through the policy one by one (see ModelStage._outcomes)
PER_OUTCOME_TRIGGERS = ("every_seconds", "every_labels", "performance_threshold", "data_drift_sustained_seconds")


@dataclass(slots=True)
class Output:
    """An event for one of the output topics: ``topic`` names the ``TopicsConfig`` field."""

    topic: str
    key: str
    event: dict[str, Any]


class _At:
    """Where a merged data-drift value came from (what DataDriftMonitor keeps per value)."""

    __slots__ = ("topic", "offset", "ts", "event_id", "partition", "seq")

    def __init__(self, topic: str, offset: int, ts: float, partition: int, seq: int) -> None:
        self.topic, self.offset, self.ts, self.event_id, self.partition, self.seq = \
            topic, offset, ts, None, partition, seq


class _Snapshot:
    """A change point at model scope: an event time and, per partition, the next input offsets."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_json(self) -> dict[str, Any]:  # what RetrainPolicy stores as its change point
        return self.data


#: from this many outcomes on, _count_per_partition works column by column (numpy) rather than one by one
COLUMNAR_RUN = 48


def _count_per_partition(counts: list[list[float]], ps: list[int], served: list[float], ioffs: list[int],
                         loffs: list[int]) -> dict[int, list[int]]:
    """Add a run of outcomes (their partitions, served errors, inference and labels offsets) to the
    per-partition ``[outcomes, served error sum]`` ``counts``; returns per partition of the run its highest
    [inference, labels] offsets. The sums add in the run's order, as one by one: ``np.add.at`` accumulates
    unbuffered, element after element, so each partition's float sum is the same numbers added in the same
    order (bit for bit; ``tests/unit/test_scope_bulk.py``)."""
    top: dict[int, list[int]] = {}
    if len(ps) < COLUMNAR_RUN:
        for p, e, io, lo in zip(ps, served, ioffs, loffs):
            c = counts[p]
            c[0] += 1
            c[1] += e
            t = top.get(p)
            if t is None:
                top[p] = [io, lo]
            else:
                if io > t[0]:
                    t[0] = io
                if lo > t[1]:
                    t[1] = lo
        return top
    pa = np.asarray(ps, dtype=np.intp)
    n = len(counts)
    per = np.bincount(pa, minlength=n)
    sums = np.fromiter((c[1] for c in counts), dtype=np.float64, count=n)
    np.add.at(sums, pa, np.asarray(served, dtype=np.float64))
    imax = np.full(n, -1, dtype=np.int64)
    lmax = np.full(n, -1, dtype=np.int64)
    np.maximum.at(imax, pa, np.asarray(ioffs, dtype=np.int64))
    np.maximum.at(lmax, pa, np.asarray(loffs, dtype=np.int64))
    for p in np.flatnonzero(per).tolist():
        c = counts[p]
        c[0] += int(per[p])
        c[1] = float(sums[p])
        top[p] = [int(imax[p]), int(lmax[p])]
    return top


class ModelStage:
    """Everything decided for one model across all its partitions (see the module docstring)."""

    def __init__(self, model: str, spec: ModelSpec, partitions: int, cfg: ScopeConfig = ScopeConfig(),
                 topics: tuple[str, str] = ("inference", "labels")) -> None:
        self.model = model
        self.spec = spec
        self.partitions = partitions
        self.cfg = cfg
        #: input topic names by the topic code of positions (summary.INFERENCE, summary.LABELS)
        self.topics = topics
        self.merge = SummaryMerge(partitions, cfg.max_watermark_lag_seconds, cfg.idle_partition_seconds,
                                  cfg.stalled_partition_seconds)
        self.concept = ConceptDetectors(spec.detectors)
        self.data_drift = DataDriftMonitor(model, spec.task, spec.data_drift)
        c = spec.challenger
        self.challenger = ChampionChallenger(spec.task, c.window, c.alpha, c.min_pairs)
        self.policy = RetrainPolicy(spec.retrain)
        #: outcomes between other items can go through in bulk (see _outcomes)
        self._bulk_outcomes = not any(getattr(spec.retrain, f) > 0 for f in PER_OUTCOME_TRIGGERS)
        #: re-calibrations of the concept detectors after a change since start-up (for status; not in state)
        self.recalibrations = 0
        #: (detector, outcome) of the re-calibrations of the last add(), for the service's metric (not state)
        self.recalibrated: list[tuple[str, str]] = []
        self._reset()

    def _reset(self) -> None:
        P = self.partitions
        #: merged items processed so far (the merged position)
        self.seq = 0
        self.joined = 0
        #: per detector, the merged join count at its last concept alarm (its change point is estimated on the
        #: errors since: a detector resets when it alarms, what came before belongs to the concept it reported;
        #: another detector's alarm on the same change must not cut its segment short)
        self.last_alarm_joined: dict[str, int] = {}
        #: per partition, next [inference, labels] offsets of the join frontier (last outcome merged)
        self.join_pos: list[list[int | None]] = [[None, None] for _ in range(P)]
        #: per partition, next [inference, labels] offsets of everything merged
        self.seen_pos: list[list[int | None]] = [[None, None] for _ in range(P)]
        #: per partition, [outcomes, served error sum] merged so far
        self.counts: list[list[float]] = [[0, 0.0] for _ in range(P)]
        self.recent_served: deque[float] = deque(maxlen=ROLLING)
        #: the same outcomes' (prediction ts, partition, inference offset, labels offset, served error)
        self.recent_outcomes: deque[tuple[float, int, int, int, float]] = deque(maxlen=ROLLING)
        self.recent_online: deque[float] = deque(maxlen=ROLLING)
        #: start of the current warning episode: [snapshot, counts] and the joined count of its last warning
        self.warning_start: list[Any] | None = None
        self.last_warning_at: int | None = None
        #: open concept incident: {"id", "last_ts", "alarms"}; per data-drift signal the same
        self.concept_incident: dict[str, Any] | None = None
        self.signal_incidents: dict[str, dict[str, Any]] = {}
        #: recent partition-scope evidence [id, kind, signal, ts, partition]
        self.evidence: deque[tuple[Any, ...]] = deque(maxlen=self.cfg.max_evidence)
        #: the last window_size data-drift rows / labels merged: [partition, ts, offset]
        w = self.spec.data_drift.window_size
        self.recent_rows: deque[tuple[Any, ...]] = deque(maxlen=w)
        self.recent_labels: deque[tuple[Any, ...]] = deque(maxlen=w)
        #: on-demand requests, decided at the next merged outcome
        self.requests: list[str] = []
        self.last_release: Release | None = None

    # -- in -----------------------------------------------------------------------------------------
    def add(self, summary: Summary, now: float | None = None) -> list[Output]:
        """Merge one summary and decide on whatever the model's watermark lets out (``now``: the wall
        clock, for the lag bound's idle test; None: the lag bound alone)."""
        if summary.model != self.model:
            raise ValueError(f"summary of model {summary.model!r} given to the stage of {self.model!r}")
        self.merge.add(summary, now)
        late = self._late_reports()
        return late + self.flush(now)

    def add_many(self, summaries: Iterable[Summary]) -> list[Output]:
        late: list[Output] = []
        for s in summaries:
            if s.model != self.model:
                raise ValueError(f"summary of model {s.model!r} given to the stage of {self.model!r}")
            self.merge.add(s)
            late += self._late_reports()
        return late + self.flush()

    def flush(self, now: float | None = None) -> list[Output]:
        self.recalibrated = []
        release = self.merge.release(now)
        self.last_release = release
        return self._process(release.items)

    def _late_reports(self) -> list[Output]:
        """One data-quality event per late episode the last merged summary opened: its partition's oldest late
        item and how far behind what was already decided it came (``late_seconds``)."""
        out = []
        for p, (topic, offset, ts, released, n) in self.merge.opened:
            out.append(Output("data_quality", self.model, {
                "id": self._id((ts, p, topic, offset), "late"), "type": "data-quality", "scope": "model",
                "check": "late_partition", "feature": "*", "severity": "warning", "model": self.model,
                "partition": p, "topic": self.topics[topic], "offset": offset, "ts": ts,
                "evidence": {"late_seconds": released - ts, "decided_until": released, "late_items": n,
                             "max_watermark_lag_seconds": self.cfg.max_watermark_lag_seconds}}))
        return out

    def request(self, reason: str = "on_demand") -> None:
        """An on-demand retrain (control topic), decided at the next merged outcome."""
        if reason not in self.requests:
            self.requests.append(reason)

    def status(self) -> dict[str, Any]:
        """What holds the model back now (for logs and metrics; not part of any event)."""
        r = self.last_release
        return {"model": self.model, "watermark": None if r is None else r.watermark,
                "holding": {} if r is None else dict(r.holding), "forced": [] if r is None else list(r.forced),
                "buffered_items": sum(map(len, self.merge.buffers)), "duplicates": self.merge.duplicates,
                "late": self.merge.late, "out_of_order": self.merge.out_of_order, "merged": self.seq,
                "recalibrations": self.recalibrations}

    # -- the merged stream -------------------------------------------------------------------------
    def _process(self, items: list[tuple[Any, ...]]) -> list[Output]:
        if not items:
            return []
        out: list[Output] = []
        seq0 = self.seq
        topics = self.topics
        dd = self.data_drift
        # 1. buffer the batch for the detectors and the data-drift tests, in merged order
        kinds = [item[4] for item in items]
        outcome_at = [k for k, kind in enumerate(kinds) if kind == OUTCOME]
        errors = [items[k][6][0] for k in outcome_at]
        #: merged indexes of the other items (rows, labels, evidence)
        others = [k for k, kind in enumerate(kinds) if kind != OUTCOME] if len(outcome_at) < len(items) else []
        rows = [k for k in others if items[k][4] == ROW]
        # the rows column by column when add_rows can take them (else one by one, in merged order)
        rows_in = bool(rows) and dd.add_rows(
            [items[k][6] for k in rows],
            [_At(topics[items[k][2]], items[k][3], items[k][0], items[k][1], seq0 + k) for k in rows])
        for k in others:
            ts, p, topic, off, kind, _, pl = items[k]
            if kind == ROW and not rows_in:
                dd.add_inference(pl[0], pl[1], pl[2], pl[3], pl[4], _At(topics[topic], off, ts, p, seq0 + k))
            elif kind == LABEL:
                dd.add_label(pl[0], _At(topics[topic], off, ts, p, seq0 + k))
        # 2. run them: alarms and findings keyed by the merged index of the item that triggered them
        extras: dict[int, list[tuple[int, str, Any]]] = {}
        if errors:
            concept = self.concept
            for i, name, warning, d in concept.update_many(np.asarray(errors, dtype=np.float64)):
                # the calibration the alarm was raised under (a re-calibration may follow it in this batch)
                extras.setdefault(outcome_at[i], []).append((2 if warning else 3, name, concept.calibration_at(d, i)))
            for done in concept.recalibrations:
                self.recalibrations += 1
                self.recalibrated.append((done.detector, done.outcome))
                log.info("model %s: model-scope %s re-calibrated after a change (%s): %s", self.model,
                         done.detector, done.outcome, done.calibration.get("params"))
            concept.recalibrations.clear()
            for refused in self.concept.refusals:  # logged; the partitions publish their own refusal events
                log.warning("model %s: model-scope calibration of %s refused (%s): %s", self.model,
                            refused.detector, refused.fallback, refused.error)
            self.concept.refusals.clear()
        if self.spec.data_drift.enabled:
            for f in dd.run_tests():
                extras.setdefault(f.at.seq - seq0, []).append((1, "data_drift", f))
            for f in dd.recoveries:
                extras.setdefault(f.at.seq - seq0, []).append((1, "data_drift_end", f))
        # 3. replay everything in merged order (policy inputs of one item: labels, data drift, warnings, drifts)
        policy, cc = self.policy, self.challenger
        challenger = self.spec.challenger.enabled
        every = self.spec.challenger.every
        join_pos, seen_pos, counts = self.join_pos, self.seen_pos, self.counts
        recent_served, recent_online = self.recent_served, self.recent_online
        recent_outcomes = self.recent_outcomes
        # the items up to the next alarm or finding go through in bulk (_segment): nothing can be decided at
        # them; the items with an alarm or a finding one by one, below (all of them one by one when the policy
        # has a per-outcome trigger)
        n = len(items)
        bulk = self._bulk_outcomes
        stops = iter(sorted(extras) if bulk else sorted({*others, *extras}))
        stop = next(stops, n)
        k = 0
        while k < n:
            if stop < k:
                stop = next(stops, n)
            if bulk and stop > k and not self.requests and not policy.pending_reasons:
                self._segment(items, k, stop, others, out)
                k = stop
                if k == n:
                    break
            item = items[k]
            i = k
            k += 1
            ts, p, topic, off, kind, tie, pl = item
            if kind == OUTCOME:
                served, online, _, ioff, loff, _ = pl
                ioff += 1
                loff += 1
                for pos in (join_pos[p], seen_pos[p]):
                    if pos[0] is None or ioff > pos[0]:
                        pos[0] = ioff
                    if pos[1] is None or loff > pos[1]:
                        pos[1] = loff
                cnt = counts[p]
                cnt[0] += 1
                cnt[1] += served
                self.joined += 1
                recent_served.append(served)
                recent_outcomes.append((pl[5], p, ioff - 1, loff - 1, served))
                if online is not None:
                    recent_online.append(online)
                policy.observe_label(ts, served)
                if challenger and online is not None:
                    cc.add(served, online)
                    if cc.added % every == 0:
                        self._challenge(item, out)
                if self.requests:
                    for reason in self.requests:
                        policy.request(reason)
                    self.requests = []
                self._decide(item, out)
            else:
                self._other(item)
            ex = extras.get(i)
            if ex is None:
                continue
            for order, name, payload in sorted(ex, key=lambda e: (e[0], e[1])):
                if order == 1:
                    self._data_drift(item, name, payload, out)
                elif order == 2:
                    self._warning(item)
                else:
                    self._concept_drift(item, name, out, payload)
                self._decide(item, out)
        self.seq += len(items)
        return out

    def _segment(self, items: list[tuple[Any, ...]], a: int, b: int, others: list[int], out: list[Output]) -> None:
        """What the one-by-one path of :meth:`_process` does for ``items[a:b]``, in bulk: none of them has an
        alarm, a finding or a request at it and the policy has no per-outcome trigger, so nothing is decided at
        them. The outcomes go through :meth:`_outcomes` together; the rows, labels and evidence among them
        (``others``: the merged indexes of every non-outcome item) only move the seen positions (a maximum)
        and the recent windows of their own kind, in merged order, which nothing in ``_outcomes`` reads: the
        state and outputs are those of the one-by-one path (``tests/unit/test_scope_bulk.py``)."""
        lo, hi = bisect_left(others, a), bisect_left(others, b)
        if lo == hi:
            self._outcomes(items[a:b], out)
            return
        run = items[a:b]
        if hi - lo < len(run):
            self._outcomes([it for it in run if it[4] == OUTCOME], out)
        other = self._other
        for k in others[lo:hi]:
            other(items[k])

    def _other(self, item: tuple[Any, ...]) -> None:
        """A merged row, label or evidence: the seen positions (a maximum) and the recent window of its kind."""
        ts, p, _, off, kind, tie, pl = item
        if kind == ROW:
            pos = self.seen_pos[p]
            if pos[0] is None or off >= pos[0]:
                pos[0] = off + 1
            self.recent_rows.append((p, ts, off))
        elif kind == LABEL:
            pos = self.seen_pos[p]
            if pos[1] is None or off >= pos[1]:
                pos[1] = off + 1
            self.recent_labels.append((p, ts, off))
        else:  # EVIDENCE
            self.evidence.append((tie, pl[0], pl[1], ts, p))

    def _outcomes(self, run: list[tuple[Any, ...]], out: list[Output]) -> None:
        """What the one-by-one path of :meth:`_process` does for each outcome of ``run``, in bulk: none of them
        has an alarm, a finding or a request at it, and the policy has no per-outcome trigger
        (``PER_OUTCOME_TRIGGERS``), so it only counts them and cannot decide at them. The per-partition sums
        add in merged order, as one by one; the challenger is tested at the same outcomes."""
        m = len(run)
        ps = list(map(_second, run))
        pls = list(map(_payload, run))
        served, online, ioffs, loffs, pts = (list(map(itemgetter(f), pls)) for f in (0, 1, 3, 4, 5))
        top = _count_per_partition(self.counts, ps, served, ioffs, loffs)
        for p, (io, lo) in top.items():
            io += 1
            lo += 1
            for pos in (self.join_pos[p], self.seen_pos[p]):
                if pos[0] is None or io > pos[0]:
                    pos[0] = io
                if pos[1] is None or lo > pos[1]:
                    pos[1] = lo
        self.joined += m
        self.recent_served.extend(served)
        t = max(0, m - ROLLING)
        self.recent_outcomes.extend(zip(pts[t:], ps[t:], ioffs[t:], loffs[t:], served[t:]))
        if None in online:  # the outcomes with an online error (all of them, once the online model runs)
            at = [k for k, o in enumerate(online) if o is not None]
            champion, challenger = [served[k] for k in at], [online[k] for k in at]
        else:
            at, champion, challenger = range(m), served, online
        self.recent_online.extend(challenger)
        _observe_labels(self.policy, run[0][0], m)
        if at and self.spec.challenger.enabled:
            cc, every = self.challenger, self.spec.challenger.every
            done = 0
            while done < len(at):  # up to the next test (every `every` pairs), then the test
                upto = done + every - cc.added % every
                cc.add_many(champion[done:upto], challenger[done:upto])
                done = min(upto, len(at))
                if cc.added % every == 0:
                    self._challenge(run[at[done - 1]], out)

    def _offsets(self, which: list[list[int | None]]) -> dict[str, dict[str, int | None]]:
        return {str(p): {"inference_offset": i, "labels_offset": lab} for p, (i, lab) in enumerate(which)}

    def _snapshot(self, ts: float) -> _Snapshot:
        return _Snapshot({"ts": ts, "partitions": self._offsets(self.join_pos)})

    def _id(self, item: tuple[Any, ...], kind: str) -> str:
        return f"scope:{self.model}:{self.topics[item[2]]}:{item[1]}:{item[3]}:{kind}"

    def _where(self, item: tuple[Any, ...]) -> dict[str, Any]:
        return {"partition": item[1], "topic": self.topics[item[2]], "offset": item[3], "ts": item[0]}

    def _evidence_since(self, ts: float, match: Any) -> list[str]:
        return [e[0] for e in self.evidence if e[3] >= ts and match(e)]

    # -- concept drift ------------------------------------------------------------------------------
    def _warning_is_recent(self) -> bool:
        return self.last_warning_at is not None and self.joined - self.last_warning_at <= RetrainPolicy.WARNING_GAP

    def _warning(self, item: tuple[Any, ...]) -> None:
        snap = self._snapshot(item[6][5])
        if self.warning_start is None or not self._warning_is_recent():
            self.warning_start = [snap.data, [list(c) for c in self.counts]]
        self.last_warning_at = self.joined
        self.policy.observe_warning(snap)

    def _concept_drift(self, item: tuple[Any, ...], detector: str, out: list[Output],
                       calibration: dict[str, Any] | None = None) -> None:
        ts = item[0]
        # which way the served error moved, and where: the change point of the errors since this detector's
        # previous alarm (as in stream.detect.ModelMonitor._alarm), over the merged stream
        served_all = list(self.recent_served)
        last = self.last_alarm_joined.get(detector, 0)
        since = max(self.joined - last, MIN_SINCE_ALARM)
        segment = served_all[-since:] if last and since < len(served_all) else served_all
        k, before, after = change_point(segment)
        direction = "improvement" if after < before else "degradation"
        self.last_alarm_joined[detector] = self.joined
        estimated = None
        if len(self.recent_outcomes) == len(served_all) and 0 < k < len(segment):
            estimated = self._estimated_change(len(served_all) - len(segment) + k)
        if self.warning_start is not None and self._warning_is_recent() and (
                estimated is None or self.warning_start[0]["ts"] <= estimated[0]["ts"]):
            cp, counts0 = self.warning_start  # the warning episode began before the estimated change
        elif estimated is not None:
            cp, counts0 = estimated
        else:
            cp, counts0 = self._snapshot(item[6][5]).data, [list(c) for c in self.counts]
            # the alarming outcome itself is part of the change
            p = item[1]
            counts0[p] = [counts0[p][0] - 1, counts0[p][1] - item[6][0]]
        inc = self.concept_incident
        if inc is not None and ts - inc["last_ts"] <= self.cfg.incident_quiet_seconds \
                and (inc.get("direction", "degradation") == direction or not self._changed_since(inc)):
            # the open incident's change, seen again (another detector, or the same one): one incident. An
            # alarm whose direction differs is a change of its own only when the errors since the incident's
            # change point show one; else its direction is noise of a short segment (the errors since the
            # previous alarm: another detector's alarm a few dozen outcomes earlier on the same change)
            inc["last_ts"] = ts
            inc["alarms"] += 1
            self.policy.observe_concept_drift(inc["id"], _Snapshot(cp), direction=inc.get("direction", direction),
                                              error_before=before, error_after=after)
            return
        served, online, event_id, ioff, loff, pts = item[6]
        contributing = {}
        for p, ((n, e), (n0, e0)) in enumerate(zip(self.counts, counts0)):
            if n > n0:
                contributing[str(p)] = {"outcomes": int(n - n0), "served_error": (e - e0) / (n - n0)}
        ev = {
            "id": self._id(item, "incident:concept"),
            "type": "drift",
            "scope": "model",
            "kind": "concept",
            "signal": "served_error",
            "model": self.model,
            "detector": detector,
            "severity": "critical" if direction == "degradation" else "info",
            "direction": direction,
            "error_before": before,
            "error_after": after,
            **self._where(item),
            "event_id": event_id,
            "prediction_offset": ioff,
            "change_point": {"ts": cp["ts"], "partitions": cp["partitions"]},
            "contributing_partitions": contributing,
            "evidence": self._evidence_since(cp["ts"], lambda e: e[1] == "concept"),
            "statistic": {
                "served_error_rolling": sum(self.recent_served) / len(self.recent_served),
                "online_error_rolling": (sum(self.recent_online) / len(self.recent_online)
                                         if self.recent_online else None),
            },
            "joined_count": self.joined,
            "calibration": calibration,
        }
        self.concept_incident = {"id": ev["id"], "last_ts": ts, "alarms": 1, "direction": direction,
                                 # the merged outcome count at its change point (where _changed_since looks from)
                                 "change_joined": self.joined - len(segment) + k if k else self.joined - 1}
        self.warning_start = None
        self.last_warning_at = None
        out.append(Output("drift_events", self.model, ev))
        self.policy.observe_concept_drift(ev["id"], _Snapshot(cp), direction=direction, error_before=before,
                                          error_after=after)

    def _changed_since(self, inc: dict[str, Any]) -> bool:
        """Whether the served errors since the open incident's change point (the recent ones) hold a change of
        their own (:func:`stream.detect.change_within`). An incident from a state written before the change
        point was kept: True (as before, a differing direction opens an incident)."""
        start = inc.get("change_joined")
        if start is None:
            return True
        n = min(self.joined - start, len(self.recent_served))
        return n > 0 and change_within(list(self.recent_served)[-n:])[0]

    # -- data drift ---------------------------------------------------------------------------------
    def _estimated_change(self, start: int) -> tuple[dict[str, Any], list[list[float]]]:
        """The change point at merged outcome ``start`` of the recent ones: its event time, per partition the
        input position of its first outcome from there (the frontier for a partition with none since), and
        the per-partition counts before it."""
        recent = list(self.recent_outcomes)[start:]
        first: dict[int, tuple[int, int]] = {}
        counts0 = [list(c) for c in self.counts]
        for _, p, ioff, loff, served in recent:
            first.setdefault(p, (ioff, loff))
            counts0[p][0] -= 1
            counts0[p][1] -= served
        parts = self._offsets(self.join_pos)
        for p, (ioff, loff) in first.items():
            parts[str(p)] = {"inference_offset": ioff, "labels_offset": loff}
        return {"ts": recent[0][0], "partitions": parts}, counts0

    def _data_drift(self, item: tuple[Any, ...], what: str, f: Any, out: list[Output]) -> None:
        key = f"{f.kind}:{f.signal}:{f.detector}"
        ts = item[0]
        if what == "data_drift_end":
            inc = self.signal_incidents.get(key)
            if inc is not None:
                inc["last_ts"] = ts
            self.policy.observe_data_drift(key, None, ts, False)
            return
        inc = self.signal_incidents.get(key)
        if inc is not None and ts - inc["last_ts"] <= self.cfg.incident_quiet_seconds:
            inc["last_ts"] = ts
            inc["alarms"] += 1
            self.policy.observe_data_drift(key, inc["id"], ts, True)
            return
        window = self.recent_labels if f.kind == "label" else self.recent_rows
        first: dict[str, int] = {}
        for p, _, off in window:
            first.setdefault(str(p), off)
        r = f.result
        ev = {
            "id": self._id(item, f"incident:{f.kind}:{f.signal}:{f.detector}"),
            "type": "drift",
            "scope": "model",
            "kind": f.kind,
            "signal": f.signal,
            "model": self.model,
            "detector": f.detector,
            "severity": "warning",
            **self._where(item),
            # the test's current window starts here: per partition, the first offset in it
            "change_point": {"ts": window[0][1] if window else ts,
                             "partitions": {p: {("labels_offset" if f.kind == "label" else "inference_offset"): o}
                                            for p, o in sorted(first.items(), key=lambda kv: int(kv[0]))}},
            "contributing_partitions": {str(p): n for p, n in sorted(Counter(w[0] for w in window).items())},
            "evidence": self._evidence_since(window[0][1] if window else ts,
                                             lambda e: e[1] == f.kind and e[2] == f.signal),
            "statistic": r.statistic,
            "p_value": r.p_value,
            "distance": r.distance,
            "threshold": r.threshold,
            "windows": {"reference_size": r.reference_size, "current_size": r.current_size},
            "values_seen": r.position,
        }
        self.signal_incidents[key] = {"id": ev["id"], "last_ts": ts, "alarms": 1}
        out.append(Output("drift_events", self.model, ev))
        self.policy.observe_data_drift(key, ev["id"], ts, True)

    # -- decisions ----------------------------------------------------------------------------------
    def _decide(self, item: tuple[Any, ...], out: list[Output]) -> None:
        decision = self.policy.decide_at(item[0])
        if decision is None:
            return
        comparison = self.challenger.compare() if self.spec.challenger.enabled else None
        to = self._offsets(self.seen_pos)
        if decision.window_source == "change_point":
            cp = decision.window_from
            frm_ts, frm = cp["ts"], cp["partitions"]
        else:
            frm_ts = decision.window_from["ts"]
            frm = {str(p): {"inference_offset": None, "labels_offset": None} for p in range(self.partitions)}
        ev = {
            "id": self._id(item, "retrain"),
            "type": "retrain",
            "scope": "model",
            "model": self.model,
            "reasons": decision.reasons,
            "evidence": decision.evidence,
            "window": {
                "source": decision.window_source,
                "from": {"ts": frm_ts},
                "to": {"ts": item[0]},
                "partitions": {p: {"from": frm[p], "to": to[p]} for p in to},
            },
            "champion_challenger": None if comparison is None else _comparison(comparison),
            **self._where(item),
        }
        out.append(Output("retrain_events", self.model, ev))

    def _challenge(self, item: tuple[Any, ...], out: list[Output]) -> None:
        cc = self.challenger
        result = cc.compare()
        if result is None:
            return
        if result.challenger_better and not cc.better:
            cc.better = True
            out.append(Output("model_updates", self.model, {
                "id": self._id(item, "challenger-better"),
                "type": "challenger-better",
                "scope": "model",
                "model": self.model,
                "evidence": _comparison(result),
                **self._where(item),
            }))
        elif not result.challenger_better and result.challenger_error >= result.champion_error:
            cc.better = False  # re-armed once the challenger is no longer ahead (not on one insignificant test)

    # -- state --------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Plain data (JSON / msgpack), taken between calls; :meth:`load_state` continues identically."""
        return {
            "format": STATE_FORMAT,
            "model": self.model,
            "partitions": self.partitions,
            "merge": self.merge.to_state(),
            "concept": self.concept.to_state(),
            "data_drift": self.data_drift.to_state(),
            "challenger": self.challenger.to_state(),
            "policy": self.policy.to_state(),
            "seq": self.seq,
            "joined": self.joined,
            "last_alarm_joined": self.last_alarm_joined,
            "join_pos": [list(x) for x in self.join_pos],
            "seen_pos": [list(x) for x in self.seen_pos],
            "counts": [list(x) for x in self.counts],
            "recent_served": list(self.recent_served),
            "recent_outcomes": [list(o) for o in self.recent_outcomes],
            "recent_online": list(self.recent_online),
            "warning_start": self.warning_start,
            "last_warning_at": self.last_warning_at,
            "concept_incident": None if self.concept_incident is None else dict(self.concept_incident),
            "signal_incidents": {k: dict(v) for k, v in self.signal_incidents.items()},
            "evidence": [list(e) for e in self.evidence],
            "recent_rows": [list(r) for r in self.recent_rows],
            "recent_labels": [list(r) for r in self.recent_labels],
            "requests": list(self.requests),
        }

    def load_state(self, s: dict[str, Any]) -> None:
        if s.get("format") != STATE_FORMAT or s.get("model") != self.model or s.get("partitions") != self.partitions:
            raise ValueError(f"stage state of model {s.get('model')!r} with {s.get('partitions')!r} partitions "
                             f"(format {s.get('format')!r}) does not fit model {self.model!r} with "
                             f"{self.partitions} partitions")
        self._reset()
        self.merge.load_state(s["merge"])
        self.concept.load_state(s["concept"])
        self.data_drift.load_state(s["data_drift"])
        self.challenger.load_state(s["challenger"])
        self.policy.load_state(s["policy"])
        self.seq = s["seq"]
        self.joined = s["joined"]
        last = s.get("last_alarm_joined", 0)
        # a state written when one count served every detector: that count for each
        self.last_alarm_joined = dict(last) if isinstance(last, dict) else \
            ({d.name: last for d in self.spec.detectors} if last else {})
        self.join_pos = [list(x) for x in s["join_pos"]]
        self.seen_pos = [list(x) for x in s["seen_pos"]]
        self.counts = [list(x) for x in s["counts"]]
        self.recent_served.extend(s["recent_served"])
        self.recent_outcomes.extend(tuple(o) for o in s.get("recent_outcomes", ()))
        self.recent_online.extend(s["recent_online"])
        self.warning_start = s["warning_start"]
        self.last_warning_at = s["last_warning_at"]
        self.concept_incident = None if s["concept_incident"] is None else dict(s["concept_incident"])
        self.signal_incidents = {k: dict(v) for k, v in s["signal_incidents"].items()}
        self.evidence.extend(tuple(e) for e in s["evidence"])
        self.recent_rows.extend(tuple(r) for r in s["recent_rows"])
        self.recent_labels.extend(tuple(r) for r in s["recent_labels"])
        self.requests = list(s["requests"])


def _observe_labels(policy: RetrainPolicy, ts: float, n: int) -> None:
    """``n`` calls of ``policy.observe_label`` from event time ``ts`` on, for a policy without a performance
    trigger (which is all observe_label does then: counting)."""
    if policy.first_seen_ts is None:
        policy.first_seen_ts = ts
    policy.labels_since += n
    policy.labels_total += n


def _comparison(c: Any) -> dict[str, Any]:
    return {"test": c.test, "n": c.n, "statistic": c.statistic, "p_value": c.p_value,
            "champion_error": c.champion_error, "challenger_error": c.challenger_error,
            "challenger_better": c.challenger_better, "b": c.b, "c": c.c}

