"""A pure simulation of partition pipelines producing summaries, for the model-scope tests and benchmark.

The workload of :mod:`stream.tools.workload` (the demo's: concept changes, recurrence, feature shift) is
split over ``P`` partitions by a hash of the event id, as Kafka's keyed partitioning does. Each partition
processes its records in order: a joined outcome when a label meets its prediction, a data-drift row per
inference event, a label value per label. Micro-batches are cut by a per-partition random size, so two
runs with different cut seeds give differently cut summaries of the same items.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from stream.scope.summary import INFERENCE, LABELS, Summary, SummaryBuilder


@dataclass
class Item:
    """One processed input record of a partition and what it contributes to the summaries."""

    topic: int
    offset: int
    ts: float
    outcome: tuple | None = None
    row: tuple | None = None
    label: tuple | None = None
    evidence: list[tuple] = field(default_factory=list)


def workload_events(n_events: int, change_points: tuple[int, ...] = (), feature_shift_at: tuple[int, ...] = (),
                    seed: int = 7, concepts: int = 3, noise: float = 0.05) -> list[tuple[str, float, dict]]:
    from stream.tools.workload import Workload, events

    w = Workload(n_events=n_events, change_points=change_points, feature_shift_at=feature_shift_at, seed=seed,
                 t0=1_700_000_000.0, concepts=concepts, noise=noise)
    return list(events(w))


def partition_items(events: list[tuple[str, float, dict]], partitions: int,
                    online_error: Any = None, evidence_every: int = 0) -> list[list[Item]]:
    """Per partition, the items in processing order. ``online_error(i_event, served_error)`` gives the
    online model's error (None: no online model)."""
    parts: list[list[Item]] = [[] for _ in range(partitions)]
    next_off = [[0, 0] for _ in range(partitions)]
    pending: dict[str, tuple[int, float, Any, Any]] = {}
    for kind, ts, ev in events:
        p = zlib.crc32(ev["id"].encode()) % partitions
        if kind == "inference":
            off = next_off[p][INFERENCE]
            next_off[p][INFERENCE] += 1
            pending[ev["id"]] = (off, ts, ev["prediction"], ev["features"])
            score = ev.get("score")
            types = {k: ("numeric" if isinstance(v, (int, float)) and not isinstance(v, bool) else "categorical")
                     for k, v in ev["features"].items()}
            parts[p].append(Item(INFERENCE, off, ts, row=(dict(ev["features"]), types, True, ev["prediction"], score)))
        else:
            off = next_off[p][LABELS]
            next_off[p][LABELS] += 1
            it = Item(LABELS, off, ts, label=(ev["label"],))
            got = pending.pop(ev["id"], None)
            if got is not None:
                poff, pts, pred, _ = got
                served = 0.0 if pred == ev["label"] else 1.0
                idx = int(ev["id"].rsplit("-", 1)[1])
                online = None if online_error is None else online_error(idx, served)
                it.outcome = (max(ts, pts), served, online, LABELS, off, ev["id"], poff, off, pts)
                if evidence_every and idx % evidence_every == 0:  # a partition-scope alarm here
                    it.evidence.append((f"labels:{p}:{off}:drift:ADWIN", "concept", "served_error", "ADWIN", ts,
                                        LABELS, off))
            parts[p].append(it)
    return parts


def summaries(model: str, p: int, items: list[Item], seed: int, start: int = 0, max_batch: int = 300,
              start_offsets: tuple[int, int] = (0, 0)) -> list[Summary]:
    """The summaries of ``items[start:]`` cut into random micro-batches (sizes 1..max_batch)."""
    rng = random.Random(seed * 1_000_003 + p)
    b = SummaryBuilder(model, p, list(start_offsets))
    out: list[Summary] = []
    nxt = list(start_offsets)
    i = start
    while i < len(items):
        n = rng.randint(1, max_batch)
        for it in items[i:i + n]:
            if it.row is not None:
                feats, types, valid, pred, score = it.row
                b.row(it.ts, it.offset, valid, feats, types, pred, score)
            if it.outcome is not None:
                b.outcome(*it.outcome)
            if it.label is not None:
                b.label(it.ts, it.offset, it.label[0])
            for e in it.evidence:
                b.evidence(*e)
            nxt[it.topic] = it.offset + 1
        last = items[min(i + n, len(items)) - 1]
        # later items of this partition come at or after the last record's event time
        out.append(b.build(list(nxt), math.nextafter(last.ts, -math.inf)))
        i += n
    return out


def resume_point(items: list[Item], k: int) -> tuple[int, int]:
    """Next offsets after items[:k] (what a checkpoint taken there stores)."""
    nxt = [0, 0]
    for it in items[:k]:
        nxt[it.topic] = it.offset + 1
    return nxt[0], nxt[1]


def interleave(streams: list[list[Any]], seed: int) -> list[Any]:
    """One arrival order of several ordered streams (each stream's own order kept)."""
    rng = random.Random(seed)
    heads = [0] * len(streams)
    live = [i for i, s in enumerate(streams) if s]
    out = []
    while live:
        i = rng.choice(live)
        out.append(streams[i][heads[i]])
        heads[i] += 1
        if heads[i] == len(streams[i]):
            live.remove(i)
    return out
