from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.decode import decode
from stream.errors import InvalidMessage
from stream.validate import validate_inference, validate_label

GOOD = {"id": "e-1", "model": "fraud", "ts": 1732400000.5, "features": {"amount": 12.5, "country": "DE", "vip": True,
                                                                       "x": None}, "prediction": 1, "score": 0.83}


def test_good_inference_and_label():
    ev = validate_inference(decode(orjson.dumps(GOOD), 10_000))
    assert (ev.id, ev.model, ev.ts, ev.prediction, ev.score) == ("e-1", "fraud", 1732400000.5, 1, 0.83)
    lab = validate_label({"id": "e-1", "model": "fraud", "ts": 1.0, "label": "fraud"})
    assert lab.label == "fraud"


@pytest.mark.parametrize("raw,reason", [
    (None, "empty_value"), (b"{", "invalid_json"), (b"[1]", "not_an_object"), (b"x" * 101, "oversized"),
])
def test_decode_errors(raw, reason):
    with pytest.raises(InvalidMessage) as e:
        decode(raw, 100)
    assert e.value.reason == reason


@pytest.mark.parametrize("patch,reason", [
    ({"id": None}, "bad_id"), ({"id": ""}, "bad_id"), ({"id": "x" * 300}, "bad_id"),
    ({"model": "has space"}, "bad_model"), ({"ts": "now"}, "bad_ts"), ({"ts": True}, "bad_ts"),
    ({"features": []}, "bad_features"), ({"features": {"a": [1]}}, "bad_features"),
    ({"features": {"a": "x" * 2000}}, "bad_features"), ({"prediction": None}, "bad_prediction"),
    ({"prediction": {"a": 1}}, "bad_prediction"), ({"score": "high"}, "bad_score"),
])
def test_inference_schema_violations(patch, reason):
    with pytest.raises(InvalidMessage) as e:
        validate_inference({**GOOD, **patch})
    assert e.value.reason == reason


@pytest.mark.parametrize("missing", ["id", "model", "ts", "features", "prediction"])
def test_missing_fields(missing):
    obj = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(InvalidMessage) as e:
        validate_inference(obj)
    assert e.value.reason == f"missing_{missing}"


def test_non_finite_numbers_rejected():
    # orjson refuses NaN in JSON, but Python callers and other encoders may produce them
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidMessage):
            validate_inference({**GOOD, "features": {"a": bad}})
        with pytest.raises(InvalidMessage):
            validate_label({"id": "a", "model": "m", "ts": 1.0, "label": bad})


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=50),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)))
def test_arbitrary_input_never_crashes(raw):
    """Any bytes either decode and validate, or raise InvalidMessage - never anything else."""
    for validate in (validate_inference, validate_label):
        try:
            validate(decode(raw, 10_000))
        except InvalidMessage as exc:
            assert exc.reason and exc.detail


# -- the hot path agrees with the careful one ---------------------------------------------------------
from stream.validate import _inference_careful, _inference_fast, _label_careful, _label_fast  # noqa: E402

_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3), st.sampled_from(["", "x" * 1025, "x" * 129, "ok"]), st.just([1]), st.just({"a": 1}),
)
_fields = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.sampled_from(["e-1", "", "i" * 257]), _values),
    "model": st.one_of(st.sampled_from(["m", "m 1", "m\n", "a" * 129, "fraud-v2.1"]), _values),
    "ts": st.one_of(st.sampled_from([1.0, 1e11, 1e11 + 1, -0.5, 0.0]), _values),
    "features": st.one_of(st.dictionaries(st.sampled_from(["a", "b", "", "k" * 129]), _values, max_size=4), _values),
    "prediction": _values,
    "score": _values,
    "label": _values,
})


def _outcome(fn, obj):
    try:
        return fn(obj)
    except InvalidMessage as exc:
        return exc.reason


@settings(max_examples=3000, deadline=None)
@given(_fields)
def test_fast_validation_accepts_exactly_what_the_careful_path_accepts(obj):
    fast = _inference_fast(obj)
    careful = _outcome(_inference_careful, obj)
    if fast is not None:
        assert fast == careful
    fast_label = _label_fast(obj)
    careful_label = _outcome(_label_careful, obj)
    if fast_label is not None:
        assert fast_label == careful_label


def test_fast_validation_takes_the_normal_event():
    obj = {"id": "e-1", "model": "m", "ts": 5.0, "features": {"a": 1.0, "b": "x", "c": None, "d": 3, "e": True},
           "prediction": 1, "score": 0.5}
    assert _inference_fast(obj) == _inference_careful(obj)
    assert _label_fast({"id": "e-1", "model": "m", "ts": 5.0, "label": "yes"}) is not None
