from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stream.formats.json import decode
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
    st.sampled_from([2**64, -(2**64), 2**1023, 10**400, -(10**400)]),  # beyond orjson's range, past a float's
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


# -- the orjson shortcut (json_bytes) and the memos agree with the careful path too ---------------------
import stream.validate as validate_module  # noqa: E402

def _mostly(good, other):
    return st.integers(0, 7).flatmap(lambda k: other if k == 0 else good)


_names = st.sampled_from(["a", "b", "c", "", "k" * 128, "k" * 129])
_near_valid = st.fixed_dictionaries({
    "id": _mostly(st.sampled_from(["e-1", "e-2"]), _values),
    "model": _mostly(st.sampled_from(["m", "fraud-v2.1"]), st.sampled_from(["m 1", "a" * 129, 1])),
    "ts": _mostly(st.floats(0.0, 1e11), _values),
    "features": _mostly(st.dictionaries(_names, _mostly(st.floats(allow_nan=False, allow_infinity=False)
                                                        | st.integers(-2**63, 2**63 - 1) | st.text(max_size=3),
                                                        _values), max_size=5), _values),
    "prediction": _mostly(st.integers(0, 1), _values),
}, optional={"score": _mostly(st.floats(0.0, 1.0), _values)})
_padded = st.tuples(_near_valid | _fields, st.sampled_from([0, 10, 1000, 2000]))


@settings(max_examples=2000, deadline=None)
@given(_padded, st.sampled_from([1, 2, 1024]))
def test_orjson_shortcut_accepts_exactly_what_the_careful_path_accepts(fields_and_pad, cache_limit):
    """Payloads on both sides of MAX_STRING bytes; tiny memo limits so that eviction happens all the time,
    and the same feature names come back with other values, other names and other models in between."""
    fields, pad = fields_and_pad
    try:
        raw = orjson.dumps({**fields, "pad": "p" * pad} if pad else fields)
    except TypeError:  # an int beyond 64 bits: not JSON that orjson reads
        assume(False)
    obj = orjson.loads(raw)
    saved = validate_module._CACHE_LIMIT
    validate_module._CACHE_LIMIT = cache_limit
    if len(validate_module._GOOD_NAMES) > cache_limit or len(validate_module._MODEL_OK) > cache_limit:
        validate_module._GOOD_NAMES.clear()  # filled under a larger limit by an earlier example
        validate_module._MODEL_OK.clear()
    try:
        for _ in range(2):  # the second time the memos are warm
            trusted = _inference_fast(obj, len(raw))
            assert trusted == _inference_fast(obj)  # the shortcut never costs an event the plain path takes
            if trusted is not None:
                assert trusted == _outcome(_inference_careful, obj)
                assert validate_inference(obj, json_bytes=len(raw)) == trusted
            assert len(validate_module._GOOD_NAMES) <= cache_limit
            assert len(validate_module._MODEL_OK) <= cache_limit
    finally:
        validate_module._CACHE_LIMIT = saved


def test_memoised_names_do_not_hide_bad_values_or_bad_names():
    good = {"id": "e-1", "model": "m", "ts": 5.0, "features": {"a": 1.0, "b": "x"}, "prediction": 1}
    bad_values = [{"a": [1.0], "b": "x"}, {"a": 1.0, "b": {"c": 1}}, {"a": 1.0, "b": "x" * 1025}]
    for features in [good["features"], *bad_values, {"a": 1.0, "k" * 129: "x"}, {"a": 1.0, "": "x"},
                     good["features"]]:
        raw = orjson.dumps({**good, "features": features})
        obj = orjson.loads(raw)
        assert _outcome(lambda o: validate_inference(o, json_bytes=len(raw)), obj) == _outcome(_inference_careful, obj)
        assert _outcome(validate_inference, obj) == _outcome(_inference_careful, obj)
    for model in ["m", "m 1", "m", "m 1"]:  # the model memo remembers rejections as well
        obj = {**good, "model": model}
        assert _outcome(validate_inference, obj) == _outcome(_inference_careful, obj)
        assert _outcome(validate_label, {**obj, "label": 1}) == _outcome(_label_careful, {**obj, "label": 1})


def test_an_int_too_large_for_a_float_is_invalid_input_not_a_crash():
    # orjson never yields such ints, but validate_* are public: a caller's dict must get a clear reason
    for field, reason in (("ts", "bad_ts"), ("label", "bad_label")):
        with pytest.raises(InvalidMessage) as exc:
            validate_label({"id": "a", "model": "m", "ts": 1.0, "label": 1, field: 10**400})
        assert exc.value.reason == reason
    with pytest.raises(InvalidMessage) as exc:
        validate_inference({**GOOD, "prediction": -(10**400)})
    assert exc.value.reason == "bad_prediction"
    with pytest.raises(InvalidMessage) as exc:
        validate_inference({**GOOD, "features": {"a": 10**400}})
    assert exc.value.reason == "bad_features"


def test_a_deeply_nested_value_gets_a_reason_not_a_recursion_error():
    # orjson decodes up to 1024 levels; the error message must not repr the whole value
    raw = b'{"id":"a","model":"m","ts":' + b"[" * 1000 + b"]" * 1000 + b',"label":1}'
    for validate in (validate_inference, validate_label):
        with pytest.raises(InvalidMessage) as exc:
            validate(decode(raw, 10**6))
        assert exc.value.reason == "bad_ts" and len(exc.value.detail) < 200
