"""The default online model selects its numeric features by concrete type (int, float): on every input the
service gives it, that must be exactly River's ``SelectType(numbers.Number)`` pipeline."""

from __future__ import annotations

import numbers
import random

import pytest
from river import compose, linear_model, multiclass, optim, preprocessing

from stream.config import OnlineModelConfig
from stream.detect import _river_x, build_online_model


def _reference(cfg: OnlineModelConfig, task: str):
    numeric = compose.SelectType(numbers.Number) | preprocessing.StandardScaler()
    categorical = compose.SelectType(str) | preprocessing.OneHotEncoder()
    if task == "regression":
        head = linear_model.LinearRegression(optimizer=optim.SGD(cfg.learning_rate))
    else:
        head = multiclass.OneVsRestClassifier(linear_model.LogisticRegression(optimizer=optim.SGD(cfg.learning_rate)))
    return (numeric + categorical) | head


def _features(rng: random.Random) -> dict:
    # what validation lets through: JSON ints and floats, strings, booleans and nulls, in varying key order
    f = {"amount": rng.uniform(0, 500), "age": rng.randint(18, 90), "country": rng.choice(["DE", "FR", "NL"]),
         "vip": rng.random() < 0.3, "note": None if rng.random() < 0.5 else "x", "big": rng.randint(-2**62, 2**62)}
    keys = list(f)
    rng.shuffle(keys)
    return {k: f[k] for k in keys if rng.random() > 0.05}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_default_model_equals_select_type_number(task: str) -> None:
    cfg = OnlineModelConfig(head="ovr")  # River's one-vs-rest (the default head "auto" is one regression)
    model, ref = build_online_model(cfg, task), _reference(cfg, task)
    rng = random.Random(7)
    for _ in range(600):
        x = _river_x(_features(rng))
        y = rng.choice(["fraud", "ok", "review"]) if task == "classification" else rng.gauss(3.0, 1.0)
        if task == "classification":
            assert model.predict_proba_one(x) == ref.predict_proba_one(x)
        else:
            assert model.predict_one(x) == ref.predict_one(x)
        model.learn_one(x, y)
        ref.learn_one(x, y)
