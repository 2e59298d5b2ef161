"""DataQualityChecker on hand-made events, and the config keys that declare features."""

from __future__ import annotations

import orjson
import pytest

from stream.config import ConfigError, DataQualityConfig, FeatureSpec, load_config
from stream.events import InferenceEvent
from stream.events import Origin
from stream.outputs import quality_issue_event
from stream.quality import SEVERITY, DataQualityChecker

SPEC = {
    "amount": FeatureSpec("numeric", nullable=False, min=0.0, max=1000.0),
    "country": FeatureSpec("categorical", categories=("DE", "FR")),
    "vip": FeatureSpec("boolean"),
}


def ev(i: int, **features) -> InferenceEvent:
    return InferenceEvent(id=f"e-{i}", model="m", ts=100.0 + i, features=features, prediction=1)


def good(i: int) -> InferenceEvent:
    return ev(i, amount=float(i % 7), country="DE" if i % 2 else "FR", vip=bool(i % 3))


def checks(issues) -> list[tuple[str, str]]:
    return [(x.check, x.feature) for x in issues]


def test_valid_event_has_no_issues():
    q = DataQualityChecker("m", SPEC, DataQualityConfig())
    assert q.check(good(1)) == (True, [])


@pytest.mark.parametrize("features, expected, valid", [
    ({"country": "DE", "vip": True}, [("missing_feature", "amount")], False),
    ({"amount": 1.0, "country": "DE", "vip": True, "extra": 3}, [("unexpected_feature", "extra")], False),
    ({"amount": "12", "country": "DE", "vip": True}, [("wrong_type", "amount")], False),
    ({"amount": 1.0, "country": "DE", "vip": 1}, [("wrong_type", "vip")], False),
    ({"amount": None, "country": "DE", "vip": True}, [("null_value", "amount")], True),
    ({"amount": 1.0, "country": None, "vip": True}, [], True),  # country is nullable
    ({"amount": -1.0, "country": "DE", "vip": True}, [("out_of_range", "amount")], True),
    ({"amount": 1000.5, "country": "DE", "vip": True}, [("out_of_range", "amount")], True),
    ({"amount": 1.0, "country": "XX", "vip": True}, [("unseen_category", "country")], True),
])
def test_each_check(features, expected, valid):
    q = DataQualityChecker("m", SPEC, DataQualityConfig())
    ok, issues = q.check(ev(0, **features))
    assert checks(issues) == expected and ok is valid


def test_event_shape_and_deterministic_id():
    q = DataQualityChecker("m", SPEC, DataQualityConfig())
    _, issues = q.check(ev(0, amount=-5.0, country="DE", vip=False))
    e = quality_issue_event(Origin("inference", 3, 42), "m", issues[0], SEVERITY[issues[0].check], 100.0, "e-0")
    assert e["id"] == "inference:3:42:dq:out_of_range:amount"
    assert e["type"] == "data-quality" and e["check"] == "out_of_range" and e["feature"] == "amount"
    assert e["model"] == "m" and e["partition"] == 3 and e["offset"] == 42 and e["ts"] == 100.0
    assert e["evidence"]["value"] == -5.0 and e["evidence"]["min"] == 0.0 and e["severity"] == "warning"


def test_rate_limit_counts_suppressed_issues():
    q = DataQualityChecker("m", SPEC, DataQualityConfig(rate_limit_events=10))
    emitted = []
    for i in range(25):
        _, issues = q.check(ev(i, country="DE", vip=True))  # amount missing every time
        emitted += [(i, x.evidence["suppressed_since_last"]) for x in issues]
    assert emitted == [(0, 0), (10, 9), (20, 9)]


def test_rate_limit_is_per_check_and_feature():
    q = DataQualityChecker("m", SPEC, DataQualityConfig(rate_limit_events=100))
    _, a = q.check(ev(0, country="DE", vip=True))
    _, b = q.check(ev(1, amount=1.0, vip=True))
    _, c = q.check(ev(2, country="DE", vip=True))
    assert checks(a) == [("missing_feature", "amount")]
    assert checks(b) == [("missing_feature", "country")]
    assert c == []


def test_constant_feature_once_per_episode():
    q = DataQualityChecker("m", SPEC, DataQualityConfig(constant_window=5, rate_limit_events=1))
    seen = []
    values = ["DE"] * 12 + ["FR"] + ["DE"] * 6
    for i, c in enumerate(values):
        _, issues = q.check(ev(i, amount=float(i), country=c, vip=True))
        seen += [(i, x.feature, x.evidence["value"]) for x in issues if x.check == "constant_feature"]
    # reported when the run reaches 5 values, not again while it lasts; a new run is a new episode
    assert seen == [(4, "country", "DE"), (17, "country", "DE")]


def test_booleans_are_not_reported_as_constant():
    q = DataQualityChecker("m", SPEC, DataQualityConfig(constant_window=3))
    out = [q.check(ev(i, amount=float(i), country="DE" if i % 2 else "FR", vip=True))[1] for i in range(10)]
    assert all(x == [] for x in out)


def test_undeclared_model_infers_types_from_first_event_and_reports_once():
    q = DataQualityChecker("m", {}, DataQualityConfig())
    ok, issues = q.check(ev(0, a=1.5, b="x", c=True, d=None))
    assert ok and checks(issues) == [("model_undeclared", "*")]
    assert issues[0].evidence["inferred_types"] == {"a": "numeric", "b": "categorical", "c": "boolean", "d": None}
    assert q.check(ev(1, a=2, b="y", c=False, d="now a string")) == (True, [])
    assert q.types["d"] == "categorical"
    ok, issues = q.check(ev(2, a="oops", b="y", c=False, d=3))
    assert not ok and checks(issues) == [("wrong_type", "a"), ("wrong_type", "d")]
    ok, issues = q.check(ev(3, b="y", c=False, d="z", e=1))
    assert not ok and checks(issues) == [("missing_feature", "a"), ("unexpected_feature", "e")]


def test_state_round_trip_through_orjson_continues_identically():
    cfg = DataQualityConfig(constant_window=4, rate_limit_events=5)

    def stream(i):
        f = {"a": 1.0 if i > 3 else float(i), "b": "x"}
        if i % 3 == 0:
            f["extra"] = i
        return ev(i, **f)

    ref = DataQualityChecker("m", {}, cfg)
    out_ref = [checks(ref.check(stream(i))[1]) for i in range(30)]
    first = DataQualityChecker("m", {}, cfg)
    out = [checks(first.check(stream(i))[1]) for i in range(13)]
    second = DataQualityChecker("m", {}, cfg)
    second.load_state(orjson.loads(orjson.dumps(first.to_state())))
    out += [checks(second.check(stream(i))[1]) for i in range(13, 30)]
    assert out == out_ref
    assert any(out_ref) and second.to_state() == ref.to_state()


def test_feature_config_loads_and_validates(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("""
[models.m.features.amount]
type = "numeric"
min = 0
max = 10
[models.m.features.country]
type = "categorical"
categories = ["DE", "FR"]
[models.m.data_drift]
numeric_test = "psi"
categorical_test = "js"
""")
    spec = load_config(p, {}).models["m"]
    assert spec.features["amount"] == FeatureSpec("numeric", True, 0.0, 10.0, ())
    assert isinstance(spec.features["amount"].min, float)
    assert spec.features["country"].categories == ("DE", "FR")
    assert spec.data_drift.numeric_test == "psi" and spec.data_drift.categorical_test == "js"


@pytest.mark.parametrize("body, message", [
    ('[models.m.features.a]\ntype = "text"', "models.m.features.a.type must be one of"),
    ('[models.m.features.a]\ntype = "numeric"\nmin = 5\nmax = 1', "min (5.0) is greater than max"),
    ('[models.m.features.a]\ntype = "categorical"\nmin = 1', "min/max only apply to numeric"),
    ('[models.m.features.a]\ntype = "numeric"\ncategories = ["x"]', "categories only apply to categorical"),
    ('[models.m.features.a]\ntype = "numeric"\nmin = "low"', "expected a number"),
    ('[models.m.data_drift]\nnumeric_test = "t"', "numeric_test must be 'ks' or 'psi'"),
    ('[models.m.data_drift]\ncategorical_test = "ks"', "categorical_test must be 'chi2' or 'js'"),
    ('[models.m.data_drift]\nalpha = 1.5', "alpha must be in (0, 1)"),
    ('[models.m.data_drift]\nwindow_size = 0', "window_size must be >= 1"),
    ('[models.m.data_quality]\nconstant_window = 1', "constant_window must be >= 2"),
])
def test_bad_feature_config_is_a_clear_error(tmp_path, body, message):
    p = tmp_path / "c.toml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(p, {})


def test_undeclared_models_have_data_drift_off_unless_enabled(tmp_path):
    assert not load_config(None, {}).default_model.data_drift.enabled
    cfg = load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__TASK": "regression"})
    assert cfg.default_model.task == "regression" and not cfg.default_model.data_drift.enabled
    cfg = load_config(None, {"DRIFTSTREAM_DEFAULT_MODEL__DATA_DRIFT__ENABLED": "true"})
    assert cfg.default_model.data_drift.enabled
