"""The compiled online model encodes a learn's features once: from its prediction's encoding (a handle into
the model's ring, when the prediction was in an earlier micro-batch) or from the same dict predicted earlier in
the same replay. Only the work changes: same encodings, same outputs."""

from __future__ import annotations

import random

import numpy as np
import orjson

from stream.detect import ModelMonitor
from stream.learner import OnlineLinearModel
from tests.golden import record


def _rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        r = {"a": rng.uniform(-3, 3), "b": rng.choice(["x", "y", f"new{i // 40}"]), "c": rng.random() < 0.5,
             "d": rng.randint(0, 9)}
        if rng.random() < 0.1:
            r["a"] = None
        if rng.random() < 0.05:
            del r["d"]
        rows.append(r)
    return rows


def _state(m: OnlineLinearModel) -> bytes:
    return orjson.dumps(m.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)


def test_each_dict_is_encoded_once_to_the_same_rows():
    rng = random.Random(3)
    for trial in range(30):
        base = OnlineLinearModel("classification", 0.05)
        for r in _rows(rng, 50):
            base.learn_one(r, rng.choice("pq"))
        distinct = _rows(rng, rng.randint(1, 60))
        # a batch: each dict predicted, some of them learnt again later (the same object), in random order
        rows = list(distinct) + [rng.choice(distinct) for _ in range(rng.randint(0, 60))]
        rng.shuffle(rows)
        learn_rows = np.flatnonzero(np.array([rng.random() < 0.5 for _ in rows], dtype=np.bool_))
        one, two = (OnlineLinearModel.from_state(base.to_state()) for _ in range(2))
        want = one._encode_rows(rows, learn_rows)
        got = two._encode_unique(rows, learn_rows)
        for w, g in zip(want, got):
            assert w.dtype == g.dtype and w.shape == g.shape, trial
        (idx_w, xn_w, mn_w, cat_w, ok_w), (idx_g, xn_g, mn_g, cat_g, ok_g) = want, got
        assert np.array_equal(idx_w, idx_g) and np.array_equal(mn_w, mn_g), trial
        assert np.array_equal(xn_w[mn_w], xn_g[mn_g]), trial  # (a missing value's slot is not read)
        assert np.array_equal(cat_w, cat_g) and np.array_equal(ok_w, ok_g), trial
        assert _state(one) == _state(two), trial  # the same categories registered, in the same order


def test_the_service_learns_take_their_predictions_encodings(monkeypatch):
    """The golden workload (model swaps included): with the learns taking their predictions' encodings, far
    fewer rows are encoded, and every output is the same as with every learn encoding its features again."""
    encoded: list[int] = []
    encode_rows = OnlineLinearModel._encode_rows

    def counting(self, rows, learn_rows):
        encoded.append(len(rows))
        return encode_rows(self, rows, learn_rows)

    monkeypatch.setattr(OnlineLinearModel, "_encode_rows", counting)
    assert ModelMonitor.batch_online
    reused = record.run(None).outputs
    n_reused = sum(encoded)
    encoded.clear()

    replay_ops = OnlineLinearModel.replay_ops
    monkeypatch.setattr(OnlineLinearModel, "replay_ops",
                        lambda self, rows, learn, labels, handles=(): replay_ops(self, rows, learn, labels))
    # every row encoded, repeated dicts too
    monkeypatch.setattr(OnlineLinearModel, "_encode_distinct",
                        lambda self, rows, learn_rows: (*counting(self, rows, learn_rows), None))
    plain = record.run(None).outputs
    n_plain = sum(encoded)

    diff = record.differences(plain, reused)
    assert not diff, "\n".join(diff)
    assert record.counts(plain)["model-swap"]
    assert n_reused < 0.6 * n_plain, (n_reused, n_plain)
