"""The partitions' summaries keep the model stage's view of their input positions current.

The model stage tells a partition catching up on a backlog (waited for) from an idle one by comparing the end
positions of its last summary with the input topics' high watermarks (``scope.stalled_partition_seconds``).
A partition whose input moves on without items for a model (other models' records, bad input) sent no summary
to that model while its watermark stood still, so the stage saw a backlog that was not there and waited for a
partition that was idle. Now an empty summary carries the new end positions once ``HEARTBEAT_SECONDS`` of wall
clock have passed since the model's last summary."""

from __future__ import annotations

import dataclasses

import orjson
from prometheus_client import CollectorRegistry

from stream.config import load_config
from stream.events import Record
from stream.metrics import Metrics
from stream.partition import PartitionProcessor
from tests.fakes import MemoryPublisher


def _inference(i: int, model: str, ts: float) -> Record:
    v = {"id": f"{model}{i}", "model": model, "ts": ts, "features": {"amount": 1.0}, "prediction": 1}
    return Record("inference", 0, i, int(ts * 1000), None, orjson.dumps(v))


def _label(i: int, model: str, ts: float) -> Record:
    v = {"id": f"{model}{i}", "model": model, "ts": ts, "label": 1}
    return Record("labels", 0, i, int(ts * 1000), None, orjson.dumps(v))


def _processor():
    cfg = load_config(None, {})
    # one summary per micro-batch (none held over batches: tests/unit/test_summary_hold.py)
    cfg = dataclasses.replace(cfg, scope=dataclasses.replace(cfg.scope, summary_flush_seconds=0.0))
    sent = []
    proc = PartitionProcessor(0, cfg, 1, MemoryPublisher(), Metrics(CollectorRegistry()), summaries=sent.append)
    return proc, sent


def test_input_that_moves_without_items_for_a_model_reaches_its_stage_as_an_empty_summary():
    proc, sent = _processor()
    proc.process([_inference(0, "a", 100.0), _label(0, "a", 100.5)], now=0.0)
    assert [s.model for s in sent] == ["a"]
    # then only bad input for a while: the watermark stands still, the positions move
    bad = lambda i: Record("inference", 0, i, 0, None, b"not json")  # noqa: E731
    proc.process([bad(1), bad(2)], now=1.0)
    assert len(sent) == 1  # not yet: within HEARTBEAT_SECONDS of the last summary
    proc.process([bad(3)], now=1.0 + proc.HEARTBEAT_SECONDS)
    assert len(sent) == 2
    s = sent[-1]
    assert s.model == "a" and s.end == [4, 1] and s.watermark == sent[0].watermark
    assert not len(s.outcomes) and not s.rows.ts and not s.labels.ts and not s.evidence
    # nothing moved: no heartbeat, however long the silence
    proc.process([], now=100.0)
    assert len(sent) == 2


def test_without_a_wall_clock_only_items_and_the_watermark_send_summaries():
    proc, sent = _processor()
    proc.process([_inference(0, "a", 100.0), _label(0, "a", 100.5)])
    proc.process([Record("inference", 0, 1, 0, None, b"not json")])
    assert len(sent) == 1
