"""The compiled online model against the River pipeline it replaces, on random streams cut at random.

The reference is River itself: ``(SelectType(int, float) | StandardScaler()) + (SelectType(str) |
OneHotEncoder())`` into ``LinearRegression``, ``OneVsRestClassifier(LogisticRegression)``, or (the
``head="auto"`` binary case) one ``LogisticRegression`` on ``y == first class``, which becomes River's
one-vs-rest, started from that regression and its negation, at a third class. River is fed the features
as the service feeds it (``_river_x``: booleans as strings, nulls left out).
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import numpy as np
import orjson
import pytest
from river import compose, linear_model, multiclass, optim, preprocessing
from river.utils import VectorDict

from stream.config import OnlineModelConfig
from stream.learner import MicroBatch, OnlineLinearModel, build_online_model
from stream.learner import river_pipeline as learner_river_pipeline

TOL = 1e-9


def river_x(features: dict[str, Any]) -> dict[str, Any]:
    # what stream.detect._river_x hands River
    return {k: (str(v) if isinstance(v, bool) else v) for k, v in features.items() if v is not None}


def river_union():
    numeric = compose.SelectType(int, float) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return numeric + categorical


def river_pipeline(task: str, lr: float):
    """The pipeline stream.detect.build_online_model builds (kind "logistic" / "linear")."""
    if task == "regression":
        head = linear_model.LinearRegression(optimizer=optim.SGD(lr))
    else:
        head = multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(lr)))
    return river_union() | head


class RiverAuto:
    """River's counterpart of ``head="auto"``: one LogisticRegression on ``y == first class`` while there are
    at most two classes, then River's OneVsRestClassifier started from it and its negation."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.union = river_union()
        self.lr_head = linear_model.LogisticRegression(optimizer=optim.SGD(lr))
        self.ovr: multiclass.OneVsRestClassifier | None = None
        self.classes: list[Any] = []

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        if y not in self.classes:
            self.classes.append(y)
            if len(self.classes) == 3:
                self.ovr = multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(self.lr)))
                w = self.lr_head._weights.to_dict()
                first = self.lr_head.clone()
                first._weights, first.intercept = VectorDict(dict(w)), self.lr_head.intercept
                second = self.lr_head.clone()
                second._weights, second.intercept = VectorDict({k: -v for k, v in w.items()}), -self.lr_head.intercept
                self.ovr.classifiers = {self.classes[0]: first, self.classes[1]: second}
        self.union.learn_one(x)  # what Pipeline.learn_one does with an unsupervised union
        xt = self.union.transform_one(x)
        if self.ovr is not None:
            self.ovr.learn_one(xt, y)
        else:
            self.lr_head.learn_one(xt, y == self.classes[0])

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        xt = self.union.transform_one(x)
        if self.ovr is not None:
            return self.ovr.predict_proba_one(xt)
        if len(self.classes) < 2:
            return {c: 1.0 for c in self.classes}
        p = self.lr_head.predict_proba_one(xt)
        return {self.classes[0]: p[True], self.classes[1]: p[False]}

    def predict_one(self, x: dict[str, Any]) -> Any:
        if self.ovr is not None:
            return self.ovr.predict_one(self.union.transform_one(x))
        if len(self.classes) < 2:
            return self.classes[0] if self.classes else None
        return self.classes[0] if self.lr_head.predict_one(self.union.transform_one(x)) else self.classes[1]

    def heads(self) -> list[tuple[dict[str, float], float]]:
        if self.ovr is not None:
            return [(c._weights.to_dict(), c.intercept) for c in self.ovr.classifiers.values()]
        return [(self.lr_head._weights.to_dict(), self.lr_head.intercept)]


def river_heads(ref: Any) -> list[tuple[dict[str, float], float]]:
    if isinstance(ref, RiverAuto):
        return ref.heads()
    head = ref.steps[list(ref.steps)[-1]]
    if isinstance(head, multiclass.OneVsRestClassifier):
        return [(c._weights.to_dict(), c.intercept) for c in head.classifiers.values()]
    return [(head._weights.to_dict(), head.intercept)]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def assert_same_heads(model: OnlineLinearModel, ref: Any) -> None:
    heads = river_heads(ref)
    assert model.n_heads == max(len(heads), 1) or not heads
    for h, (rw, rb) in enumerate(heads):
        w, b = model.head_weights(h)
        assert close(b, rb), (h, b, rb)
        for k in set(rw) | set(w):
            assert close(w.get(k, 0.0), rw.get(k, 0.0)), (h, k, w.get(k), rw.get(k))


# -- random streams ---------------------------------------------------------------------------------------
def random_stream(rng: random.Random, n: int, task: str, n_classes: int) -> list[tuple[dict[str, Any], Any]]:
    """Events with numeric features (floats, ints, some missing or absent), categoricals whose vocabulary
    grows mid-stream, booleans, a feature that appears late, and one that is sometimes a number and
    sometimes a string."""
    n_num = rng.randint(0, 5)
    n_cat = rng.randint(0, 4)
    n_bool = rng.randint(0, 2)
    scales = [rng.choice([0.1, 1.0, 50.0]) for _ in range(n_num)]
    vocab = [rng.randint(2, 12) for _ in range(n_cat)]
    late = rng.randint(0, n)
    out = []
    for i in range(n):
        grown = 1 + i * 4 // max(n, 1)  # categories appear over time
        x: dict[str, Any] = {}
        for j in range(n_num):
            r = rng.random()
            if r < 0.05:
                continue  # absent
            if r < 0.1:
                x[f"n{j}"] = None
            elif j % 2:
                x[f"n{j}"] = rng.randint(-3, 3) * int(scales[j])
            else:
                x[f"n{j}"] = rng.gauss(1.0, scales[j])
        for j in range(n_cat):
            if rng.random() < 0.05:
                x[f"c{j}"] = None
            else:
                x[f"c{j}"] = f"v{rng.randrange(max(1, vocab[j] * grown // 4))}"
        for j in range(n_bool):
            x[f"b{j}"] = rng.random() < 0.3 if rng.random() > 0.05 else None
        if i >= late:
            x["late"] = rng.choice(["p", "q", "r"]) if rng.random() < 0.5 else rng.uniform(0, 2)
        if task == "regression":
            y = sum(v for v in x.values() if type(v) in (int, float)) * 0.1 + rng.gauss(0, 0.3)
            y = int(y) if rng.random() < 0.1 else y
        else:
            k = min(n_classes, 1 + i * n_classes // max(n // 2, 1))  # classes appear over time
            score = sum(v for v in x.values() if type(v) is float)
            y = f"k{int(abs(score * 7)) % k}" if rng.random() < 0.8 else f"k{rng.randrange(k)}"
        out.append((x, y))
    return out


def random_ops(rng: random.Random, n: int) -> list[tuple[bool, int]]:
    """(learn?, event) in arrival order: each event is predicted when it arrives and learned when its label
    joins, a random delay later (some labels never come; some events are learned in the same batch)."""
    joins: list[tuple[int, int]] = []
    for i in range(n):
        if rng.random() < 0.9:
            joins.append((i + rng.choice([0, 0, 1, 3, 10, 40]), i))
    joins.sort()
    ops: list[tuple[bool, int]] = []
    j = 0
    for i in range(n):
        ops.append((False, i))
        while j < len(joins) and joins[j][0] <= i:
            ops.append((True, joins[j][1]))
            j += 1
    ops.extend((True, e) for _, e in joins[j:])
    return ops


def orjson_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    # what a checkpoint does with it (stream.partition: orjson with OPT_SERIALIZE_NUMPY)
    return orjson.loads(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))


def run_against_river(seed: int, task: str, head: str, n: int = 500, n_classes: int = 2,
                      per_event_share: float = 0.2) -> tuple[int, int]:
    """Replays a random stream through the model (random batches, some events per event, state round trips
    between batches) and River, comparing every prediction and, after every batch, every weight."""
    rng = random.Random(seed)
    lr = rng.choice([0.01, 0.05, 0.2])
    stream = random_stream(rng, n, task, n_classes)
    ops = random_ops(rng, n)
    model = OnlineLinearModel(task, lr, head, recent_rows=rng.choice([0, 3, 50, 16384]))
    handles: dict[int, int] = {}  # event -> the handle of its prediction
    ref = river_pipeline(task, lr) if task == "regression" or head == "ovr" else RiverAuto(lr)
    compared = exact = 0
    k = 0
    while k < len(ops):
        size = rng.choice([1, 2, 5, 17, 64, 200])
        chunk = ops[k: k + size]
        k += size
        expected = []
        for learn, e in chunk:
            x, y = stream[e]
            if learn:
                ref.learn_one(river_x(x), y)
            elif task == "regression":
                expected.append((ref.predict_one(river_x(x)), None))
            else:
                expected.append((ref.predict_one(river_x(x)), ref.predict_proba_one(river_x(x))))
        got: list[tuple[Any, Any]] = []
        if rng.random() < per_event_share:  # River's per-event API
            for learn, e in chunk:
                x, y = stream[e]
                if learn:
                    model.learn_one(x, y)
                elif task == "regression":
                    got.append((model.predict_one(x), None))
                else:
                    got.append((model.predict_one(x), model.predict_proba_one(x)))
        else:
            b = MicroBatch()
            predicted = []
            for learn, e in chunk:
                x, y = stream[e]
                if learn:  # with the handle of its prediction (when it had one), as the service would
                    b.learn(x, y, handles.get(e, -1))
                else:
                    b.predict(x)
                    predicted.append(e)
            out = model.replay(b)
            handles.update(zip(predicted, out.handles))
            got = [(p, out.proba_dict(i) if task != "regression" else None) for i, p in enumerate(out.predictions)]
        assert len(got) == len(expected)
        for (gp, gprob), (ep, eprob) in zip(got, expected):
            if task == "regression":
                assert close(gp, ep), (gp, ep)
                compared += 1
                exact += gp == ep
                continue
            assert list(gprob) == list(eprob)
            for c in eprob:
                assert close(gprob[c], eprob[c]), (c, gprob, eprob)
                compared += 1
                exact += gprob[c] == eprob[c]
            # a tie broken differently within 1e-9 would be the only excuse for another label
            assert gp == ep or abs(max(eprob.values()) - gprob[gp]) <= TOL, (gp, ep, eprob)
        assert_same_heads(model, ref)
        if rng.random() < 0.3:
            model = OnlineLinearModel.from_state(orjson_round_trip(model.to_state()), model.recent_rows)
    return compared, exact


@pytest.mark.parametrize("seed", range(12))
def test_binary_auto_matches_river_logistic_regression(seed: int) -> None:
    compared, exact = run_against_river(seed, "classification", "auto", n_classes=2)
    assert compared > 0
    assert exact == compared  # bit-identical, not only within 1e-9 (same libm for exp and pow)


@pytest.mark.parametrize("seed", range(8))
def test_ovr_matches_river_one_vs_rest(seed: int) -> None:
    compared, exact = run_against_river(100 + seed, "classification", "ovr", n_classes=2 + seed % 4)
    assert exact == compared > 0


@pytest.mark.parametrize("seed", range(8))
def test_auto_with_new_classes_becomes_river_one_vs_rest(seed: int) -> None:
    compared, exact = run_against_river(200 + seed, "classification", "auto", n_classes=3 + seed % 3)
    assert exact == compared > 0


@pytest.mark.parametrize("seed", range(10))
def test_regression_matches_river_linear_regression(seed: int) -> None:
    compared, exact = run_against_river(300 + seed, "regression", "auto")
    assert exact == compared > 0


def test_a_third_class_switches_to_one_vs_rest() -> None:
    m = OnlineLinearModel("classification", 0.1)
    for i in range(50):
        m.learn_one({"a": float(i % 5)}, "x" if i % 2 else "y")
    assert m.n_heads == 1
    w, b = m.head_weights(0)
    m.learn_one({"a": 1.0}, "z")
    assert m.n_heads == 3
    assert m.classes == ["y", "x", "z"]
    assert set(m.predict_proba_one({"a": 2.0})) == {"y", "x", "z"}


# -- edge cases against River ---------------------------------------------------------------------------
def replay_pairs(model: OnlineLinearModel, ref: Any, events: list[tuple[dict[str, Any], Any]]) -> None:
    for x, y in events:
        assert model.predict_proba_one(x) == ref.predict_proba_one(river_x(x))
        assert model.predict_one(x) == ref.predict_one(river_x(x))
        model.learn_one(x, y)
        ref.learn_one(river_x(x), y)
    assert_same_heads(model, ref)


def test_one_hot_names_that_collide_share_a_weight_as_in_river() -> None:
    # "a" = "b_c" and "a_b" = "c" are both River's column "a_b_c"
    events = [({"a": "b_c", "a_b": "c", "n": 1.0}, "u"), ({"a": "z", "a_b": "c", "n": 2.0}, "v"),
              ({"a": "b_c", "a_b": "d", "n": 0.5}, "u")] * 20
    replay_pairs(OnlineLinearModel("classification", 0.1, "ovr"), river_pipeline("classification", 0.1), events)


def test_booleans_missing_and_other_types() -> None:
    events = []
    rng = random.Random(3)
    for i in range(300):
        x = {"flag": rng.random() < 0.5, "s": "True" if i % 7 == 0 else "no", "n": rng.gauss(0, 1),
             "gone": None, "lst": [1, 2], "i": rng.randint(0, 3)}
        if i % 5 == 0:
            del x["n"]
        events.append((x, x["flag"] ^ (i % 3 == 0)))
    replay_pairs(OnlineLinearModel("classification", 0.05, "ovr"), river_pipeline("classification", 0.05), events)
    replay_pairs(OnlineLinearModel("classification", 0.05), RiverAuto(0.05), events)


def test_categories_seen_only_in_predictions_are_not_learned() -> None:
    m, ref = OnlineLinearModel("classification", 0.1, "ovr"), river_pipeline("classification", 0.1)
    b = MicroBatch()
    b.predict({"c": "new", "n": 1.0})
    b.learn({"c": "old", "n": 1.0}, "a")
    b.predict({"c": "new", "n": 2.0})
    b.learn({"c": "other", "n": 3.0}, "b")
    out = m.replay(b)
    assert out.predictions == [None, "a"]
    for x, y in [({"c": "old", "n": 1.0}, "a"), ({"c": "other", "n": 3.0}, "b")]:
        ref.learn_one(x, y)
    assert m.to_state()["slots"] == ["c_old", "c_other"]
    assert_same_heads(m, ref)


def test_new_category_registered_in_river_order_within_a_batch() -> None:
    # two new categories first learned by the same event register in its feature order; one predicted
    # before its first learn is registered at the learn
    m = OnlineLinearModel("classification", 0.1, "ovr")
    b = MicroBatch()
    b.predict({"y": "p", "x": "q"})
    b.learn({"x": "a", "y": "b"}, 1)
    b.learn({"y": "p", "x": "q"}, 0)
    m.replay(b)
    assert m.to_state()["slots"] == ["x_a", "y_b", "y_p", "x_q"]


def test_predictions_before_anything_is_learned() -> None:
    assert OnlineLinearModel("classification").predict_one({"a": 1.0}) is None
    assert OnlineLinearModel("classification").predict_proba_one({"a": 1.0}) == {}
    assert OnlineLinearModel("regression").predict_one({"a": 1.0}) == 0.0
    m = OnlineLinearModel("classification")
    m.learn_one({"a": 1.0}, True)
    assert m.predict_proba_one({"a": 1.0}) == {True: 1.0}
    assert m.predict_one({}) is True


def test_micro_batch_and_plain_lists_replay_the_same() -> None:
    ops = [(False, {"a": 1.0, "c": "u"}, None), (True, {"a": 1.0, "c": "u"}, 1), (False, {"a": 2.0}, None),
           (True, {"a": 3.0, "c": "v"}, 0), (False, {"c": "v"}, None)]
    b = MicroBatch()
    for learn, x, y in ops:
        b.learn(x, y) if learn else b.predict(x)
    assert len(b) == 5 and b.learn_flags == [False, True, False, True, False] and b.labels == [1, 0]
    one, two = OnlineLinearModel(), OnlineLinearModel()
    r1 = one.replay(b)
    r2 = two.replay_ops([x for _, x, _ in ops], [learn for learn, _, _ in ops], [y for learn, _, y in ops if learn])
    assert r1.predictions == r2.predictions and np.array_equal(r1.proba, r2.proba)


def test_rows_with_other_feature_sets_in_one_batch() -> None:
    # same number of features but other names (the transposition falls back), other key orders
    events = [({"a": 1.0, "b": "x"}, 1), ({"a": 2.0, "c": "y"}, 0), ({"c": "z", "a": 0.5}, 1),
              ({"b": "x", "c": "y", "a": 3.0}, 0)] * 30
    m, ref = OnlineLinearModel("classification", 0.1, "ovr"), river_pipeline("classification", 0.1)
    for start in range(0, len(events), 7):
        b = MicroBatch()
        expected = []
        for x, y in events[start: start + 7]:
            expected.append(ref.predict_proba_one(river_x(x)))
            ref.learn_one(river_x(x), y)
            b.predict(x)
            b.learn(x, y)
        out = m.replay(b)
        for i, e in enumerate(expected):
            got = out.proba_dict(i)
            assert list(got) == list(e) and all(close(got[c], e[c]) for c in e)
    assert_same_heads(m, ref)


def test_labels_must_match_learn_operations() -> None:
    b = MicroBatch()
    b.learn({"a": 1.0}, 1)
    b.labels.append(2)
    with pytest.raises(ValueError, match="1 learn operations but 2 labels"):
        OnlineLinearModel().replay(b)


def test_empty_batch() -> None:
    m = OnlineLinearModel("classification")
    out = m.replay(MicroBatch())
    assert out.predictions == [] and out.proba is not None and out.proba.shape == (0, 0)


# -- state ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task,head", [("classification", "auto"), ("classification", "ovr"), ("regression", "auto")])
def test_restored_model_continues_bit_identically(task: str, head: str) -> None:
    rng = random.Random(11)
    stream = random_stream(rng, 800, task, 4)
    a = OnlineLinearModel(task, 0.05, head)
    for x, y in stream[:400]:
        a.learn_one(x, y)
    state = orjson_round_trip(a.to_state())
    assert orjson_round_trip(state) == state  # plain data
    b = OnlineLinearModel.from_state(state)
    batch_a, batch_b = MicroBatch(), MicroBatch()
    for x, y in stream[400:]:
        for batch in (batch_a, batch_b):
            batch.predict(x)
            batch.learn(x, y)
    ra, rb = a.replay(batch_a), b.replay(batch_b)
    assert ra.predictions == rb.predictions
    if ra.proba is not None:
        assert np.array_equal(ra.proba, rb.proba)
    sa, sb = orjson_round_trip(a.to_state()), orjson_round_trip(b.to_state())
    assert sa == sb


def test_state_is_refused_when_it_is_not_this_model() -> None:
    state = OnlineLinearModel().to_state()
    with pytest.raises(ValueError, match="not an online linear model"):
        OnlineLinearModel.from_state({**state, "kind": "river"})
    with pytest.raises(ValueError, match="version"):
        OnlineLinearModel.from_state({**state, "version": 99})


def test_to_state_is_a_copy() -> None:
    m = OnlineLinearModel("regression", 0.05)
    m.learn_one({"a": 1.0, "b": 2.0}, 1.0)
    m.learn_one({"a": 3.0, "b": 1.0}, 2.0)
    state = m.to_state()
    saved = copy.deepcopy(state)
    m.learn_one({"a": 2.0, "b": 0.0}, 3.0)
    assert orjson_round_trip(state) == orjson_round_trip(saved)


def test_regression_predictions_are_floats() -> None:
    m = OnlineLinearModel("regression", 0.05)
    m.learn_one({"a": 1}, 2)
    assert type(m.predict_one({"a": 1})) is float
    assert not math.isnan(m.predict_one({"a": 1}))


# -- River checkpoints, the service's builder -------------------------------------------------------------
@pytest.mark.parametrize("task,n_classes", [("classification", 2), ("classification", 4), ("regression", 0)])
def test_a_trained_river_pipeline_converts_and_continues_exactly(task: str, n_classes: int) -> None:
    rng = random.Random(21 + n_classes)
    stream = random_stream(rng, 700, task, max(n_classes, 2))
    ref = river_pipeline(task, 0.05)
    for x, y in stream[:400]:
        ref.learn_one(river_x(x), y)
    m = OnlineLinearModel.from_river(ref, head="ovr")
    assert_same_heads(m, ref)
    for x, y in stream[400:]:
        if task == "regression":
            assert m.predict_one(x) == ref.predict_one(river_x(x))
        else:
            assert m.predict_proba_one(x) == ref.predict_proba_one(river_x(x))
        m.learn_one(x, y)
        ref.learn_one(river_x(x), y)
    assert_same_heads(m, ref)


def test_a_binary_river_checkpoint_becomes_the_binary_head_of_its_first_class() -> None:
    rng = random.Random(5)
    stream = random_stream(rng, 300, "classification", 2)
    ref = river_pipeline("classification", 0.05)
    for x, y in stream:
        ref.learn_one(river_x(x), y)
    m = OnlineLinearModel.from_river(ref, head="auto")
    first = ref.steps[list(ref.steps)[-1]].classifiers[m.classes[0]]
    assert m.n_heads == 1 and m.head_weights(0) == (first._weights.to_dict() | {
        k: 0.0 for k in m.head_weights(0)[0] if k not in first._weights.to_dict()}, first.intercept)


def test_other_river_models_are_refused_with_a_reason() -> None:
    from river import linear_model, optim, preprocessing, tree

    with pytest.raises(ValueError, match="expected"):
        OnlineLinearModel.from_river(tree.HoeffdingTreeClassifier())
    with pytest.raises(ValueError, match="L1/L2"):
        OnlineLinearModel.from_river(river_union() | linear_model.LinearRegression(optimizer=optim.SGD(0.1), l2=0.1))
    with pytest.raises(ValueError, match="union member"):
        OnlineLinearModel.from_river(
            (compose.SelectType(int, float) | preprocessing.MinMaxScaler()) + (compose.SelectType(str) |
                                                                              preprocessing.OneHotEncoder())
            | linear_model.LinearRegression())


def test_the_learner_module_reference_is_the_test_reference() -> None:
    a, b = learner_river_pipeline("classification", 0.05), river_pipeline("classification", 0.05)
    assert str(a) == str(b)
    for x, y in random_stream(random.Random(8), 200, "classification", 3):
        assert a.predict_proba_one(river_x(x)) == b.predict_proba_one(river_x(x))
        a.learn_one(river_x(x), y)
        b.learn_one(river_x(x), y)


def test_build_online_model_by_kind() -> None:
    m = build_online_model(OnlineModelConfig(kind="logistic", learning_rate=0.2), "classification")
    assert isinstance(m, OnlineLinearModel) and m.learning_rate == 0.2 and m.head == "auto"
    assert build_online_model(OnlineModelConfig(kind="linear"), "regression").task == "regression"
    assert type(build_online_model(OnlineModelConfig(kind="river"), "regression")).__name__ == "Pipeline"
    assert type(build_online_model(OnlineModelConfig(kind="hoeffding_tree"), "classification")).__name__ \
        == "HoeffdingTreeClassifier"
    with pytest.raises(ValueError, match="kind"):
        build_online_model(OnlineModelConfig(kind="svm"), "classification")


def test_a_handle_of_another_model_or_an_evicted_row_is_not_used() -> None:
    x1, x2 = {"a": 1.0, "c": "u"}, {"a": 5.0, "c": "v"}
    one, other, ref = OnlineLinearModel(recent_rows=2), OnlineLinearModel(recent_rows=2), RiverAuto(0.01)
    for i in range(6):  # categories known, the scaler has a variance: x1 and x2 encode differently
        x = {"a": float(i), "c": "uv"[i % 2]}
        for m in (one, other):
            m.learn_one(x, i % 2)
        ref.learn_one(river_x(x), i % 2)
    b = MicroBatch()
    b.predict(x1)
    handle = one.replay(b).handles[0]
    b = MicroBatch()
    b.predict(x2)
    other.replay(b)
    b = MicroBatch()
    b.learn(x1, 1, handle)  # one's handle: other encodes x1 itself
    other.replay(b)
    ref.learn_one(river_x(x1), 1)
    assert_same_heads(other, ref)
    for _ in range(3):  # one's ring keeps 2 rows: the handle's row is overwritten
        b = MicroBatch()
        b.predict(x2)
        one.replay(b)
    b = MicroBatch()
    b.learn(x1, 1, handle)
    one.replay(b)
    assert_same_heads(one, ref)
