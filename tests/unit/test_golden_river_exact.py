"""Issue 18: the compiled online model is River-exact inside the service. The golden workload (both models,
crash and restart, swaps, challenger) run with River's pipeline (``kind = "river"``) and with the compiled
model in River's one-vs-rest head (``head = "ovr"``) gives the same outputs, id for id and byte for byte;
the default head ("auto", one regression for a binary label) is what the recording holds."""

from __future__ import annotations

from tests.golden import record

RIVER = {"DRIFTSTREAM_MODELS__FRAUD__ONLINE_MODEL__KIND": "river",
         "DRIFTSTREAM_MODELS__PRICE__ONLINE_MODEL__KIND": "river"}
COMPILED_OVR = {"DRIFTSTREAM_MODELS__FRAUD__ONLINE_MODEL__HEAD": "ovr"}


def test_the_compiled_model_with_river_s_head_gives_river_s_outputs():
    river = record.run(record.CRASH_AFTER, environ=RIVER)
    compiled = record.run(record.CRASH_AFTER, environ=COMPILED_OVR)
    diff = record.differences(river.outputs, compiled.outputs)
    assert not diff, "the compiled model (head ovr) and River's pipeline differ in the service:\n" + "\n".join(diff)
    assert record.missing_kinds(record.counts(river.outputs)) == []  # swaps, challenger, online predictions
    # and the default head is another model: the comparison can see a change of the online model
    assert record.differences(river.outputs, record.read())
