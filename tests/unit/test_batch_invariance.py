"""Issue 20's core guarantee: the same input gives the same outputs, whatever the micro-batch size and
wherever checkpoints fall. The golden workload (two models, model swaps, challenger verdicts, expired joins,
poison, concept and feature drift) runs through the real service loop over the in-memory fakes."""

from __future__ import annotations

import pytest

from tests.golden import record


def _run(micro_batch: int, checkpoint_every: int) -> dict:
    cfg = record.CONFIG.replace("micro_batch_records = 64", f"micro_batch_records = {micro_batch}").replace(
        "checkpoint_every_messages = 600", f"checkpoint_every_messages = {checkpoint_every}")
    assert cfg != record.CONFIG or (micro_batch, checkpoint_every) == (64, 600)
    saved, record.CONFIG = record.CONFIG, cfg
    try:
        return record.run(None).outputs
    finally:
        record.CONFIG = saved


@pytest.fixture(scope="module")
def reference() -> dict:
    return _run(64, 600)


def test_the_workload_has_the_outputs_that_depend_on_position(reference):
    kinds = record.counts(reference)
    assert kinds["challenger-better"] and kinds["model-swap"] and kinds["data-quality:label_missing"]
    assert kinds["retrain"] and kinds["dead-letter:label_without_prediction"]


@pytest.mark.parametrize("micro_batch,checkpoint_every", [(1, 600), (37, 600), (500, 600), (256, 600),
                                                          (64, 7), (64, 1_000_000)])
def test_outputs_do_not_depend_on_batch_or_checkpoint_boundaries(reference, micro_batch, checkpoint_every):
    diff = record.differences(reference, _run(micro_batch, checkpoint_every))
    assert not diff, "\n".join(diff)
