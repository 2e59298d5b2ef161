"""Issue 16's proof: the golden workload (tests/golden/record.py) gives the recorded outputs, id for id.

The recording in ``tests/golden/outputs.jsonl.gz`` was made from the code before the reshape of
``stream/`` (commit c525bab). A change that alters any output event (its id, key or a byte of its value),
adds one or loses one fails here, with the first differences printed. Re-record only for an intended change
of behaviour, and say so in the commit (see the docstring of record.py).
"""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.golden import record


@pytest.fixture(scope="module")
def crashed() -> record.Run:
    """The workload with a kill -9 in the middle and a restart on the same broker and Redis."""
    return record.run(record.CRASH_AFTER)


@pytest.fixture(scope="module")
def golden() -> dict:
    return record.read()


def test_the_current_code_reproduces_the_recorded_outputs(crashed, golden):
    diff = record.differences(golden, crashed.outputs)
    assert not diff, "the golden workload's outputs changed:\n" + "\n".join(diff)


def test_the_same_workload_without_a_crash_gives_the_same_outputs(crashed):
    plain = record.run(None)
    diff = record.differences(plain.outputs, crashed.outputs)
    assert not diff, "a crash and restart changed the outputs (replay is not deterministic):\n" + "\n".join(diff)
    assert plain.delivered == len(plain.outputs), "without a crash no output is produced twice"


def test_the_crash_happens_mid_stream_and_the_restart_replays(crashed):
    # the crash must cut through work in flight, or the test above would prove nothing about recovery
    total = len(record.workload())
    assert total * 0.3 < crashed.consumed_before_crash < total * 0.8
    assert crashed.lost_in_crash > 0, "some outputs were still queued in the producer when it died"
    assert crashed.delivered > len(crashed.outputs), "the restart replays from the last checkpoint: duplicates"


def test_the_recording_covers_every_output_kind(golden):
    counts = record.counts(golden)
    assert record.missing_kinds(counts) == [], counts
    assert 1000 < len(golden) < 20_000
    # every event of the recording is an output (never an input echoed) with the id it is filed under
    for (topic, ident), (_, value) in golden.items():
        assert topic not in ("inference", "labels")
        assert orjson.loads(value)["id"] == ident


def test_the_recording_is_sorted_and_written_as_record_writes_it(golden, tmp_path):
    lines = gzip.decompress(record.GOLDEN.read_bytes()).splitlines()
    assert lines == record.to_lines(golden)
    assert lines == sorted(lines, key=lambda b: (orjson.loads(b)["topic"], orjson.loads(b)["id"]))
    path = tmp_path / "again.jsonl.gz"
    record.write(golden, path)
    assert gzip.decompress(path.read_bytes()).splitlines() == lines
    assert record.read(path) == golden


def test_differences_name_what_is_missing_added_or_changed(golden):
    # the comparison itself: it must see a changed byte, a lost event and an extra one
    items = sorted(golden.items())
    (k1, v1), (k2, _) = items[0], items[1]
    changed = dict(golden)
    ev = orjson.loads(v1[1])
    ev["_probe"] = 1  # same id, one field more
    changed[k1] = (v1[0], orjson.dumps(ev).decode())
    del changed[k2]
    changed[("dead-letter", "probe:0:0:dead-letter")] = (None, '{"id":"probe:0:0:dead-letter"}')
    text = "\n".join(record.differences(golden, changed))
    assert "1 expected events missing" in text and k2[1] in text
    assert "1 unexpected events" in text and "probe:0:0:dead-letter" in text
    assert "1 events with the same id but other content" in text and "_probe" in text
    assert record.differences(golden, dict(golden)) == []


def test_a_duplicate_output_with_other_content_is_refused():
    from tests import fakes

    class Cfg:
        class topics:
            inference, labels = "inference", "labels"

    broker = fakes.FakeBroker(default_partitions=1)
    broker.append("drift-events", 0, b"m", b'{"id":"a","x":1}')
    broker.append("drift-events", 0, b"m", b'{"id":"a","x":1}')
    outputs, delivered = record.collect(broker, Cfg)
    assert delivered == 2 and list(outputs) == [("drift-events", "a")]
    broker.append("drift-events", 0, b"m", b'{"id":"a","x":2}')
    with pytest.raises(AssertionError, match="two different events with the same id"):
        record.collect(broker, Cfg)
