"""The Quix Streams baseline's own functions (no broker): the join hands the model the prediction's
features and the label, and the model predicts each event before it learns it."""

from __future__ import annotations

import random

from benchmarks.quix_baseline import DriftJob, river_model


class _State:
    """Quix's per-key state, as the stateful ``apply`` sees it."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    def get(self, key: str) -> object:
        return self.data.get(key)

    def set(self, key: str, value: object) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        del self.data[key]


def _events(n: int) -> list[tuple[dict, dict]]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        x = {"amount": rng.uniform(0, 200), "age": rng.randint(18, 80), "country": rng.choice("ABC")}
        y = int(x["amount"] > 100 or x["country"] == "A")
        out.append(({"id": f"e{i}", "model": "m", "features": x, "prediction": 1, "score": 0.9},
                    {"id": f"e{i}", "model": "m", "ts": float(i), "label": y}))
    return out


def test_join_carries_features_and_label_only_with_the_model():
    for model in (False, True):
        job, state = DriftJob(expect=10, model=model), _State()
        prediction, label = _events(1)[0]
        assert job.join(label, state) is None  # the label came first: it waits in the state
        joined = job.join(prediction, state)
        assert joined["error"] == float(1 != label["label"]) and state.data == {}
        assert ("features" in joined) is model
        if model:
            assert joined["features"] is prediction["features"] and joined["label"] == label["label"]


def test_model_predicts_each_joined_event_before_learning_it_one_model_per_key():
    job, state = DriftJob(expect=10**6, model=True), _State()
    reference = river_model()
    expected_errors = 0
    for prediction, label in _events(300):
        job.join(prediction, state)
        joined = job.join(label, state)
        job.learn((0, "m"), joined)
        x, y = prediction["features"], label["label"] == 1
        expected_errors += (reference.predict_proba_one(x).get(True, 0.0) >= 0.5) != y
        reference.learn_one(x, y)
    assert job.model_errors == expected_errors
    assert 0 < job.model_errors < 150  # it learns: well under half wrong on a rule of the features
    head = job.models[(0, "m")]["LogisticRegression"]
    assert head.weights == reference["LogisticRegression"].weights
    job.learn((1, "m"), joined)
    assert len(job.models) == 2
