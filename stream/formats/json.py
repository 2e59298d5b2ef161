"""The JSON input format: bytes -> typed event, or :class:`InvalidMessage` with its reason.

Two paths with the same results (tested differentially): a well-formed message is decoded and checked in one
msgspec pass into a typed Struct; anything else is decoded by orjson and validated by
:mod:`stream.validate`, which gives the precise reason (or accepts it).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec
import orjson
from msgspec import Meta, Struct

from stream.errors import InvalidMessage
from stream.events import InferenceEvent, LabelEvent
from stream.validate import MAX_FEATURES, MAX_ID, MAX_NAME, MAX_STRING, _model_ok, _MODEL_OK, validate_inference, \
    validate_label

_loads = orjson.loads


def decode(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Raw bytes -> JSON object, or the precise reason it is not one."""
    if value is None:
        raise InvalidMessage("empty_value", "message has no value (tombstone)")
    if len(value) > max_bytes:
        raise InvalidMessage("oversized", f"message is {len(value)} bytes, limit {max_bytes}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage("invalid_json", str(exc)) from None
    if not isinstance(obj, dict):
        raise InvalidMessage("not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


class JsonFormat:
    """Inference events, label events and control commands as JSON objects (UTF-8)."""

    name = "json"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def inference(self, value: bytes | None) -> "InferenceEvent | TypedInference":
        small = value is not None and len(value) <= self.max_bytes
        ev = typed_inference(value) if small else None  # a well-formed message in one step
        return ev or validate_inference(self._object(value, small), json_bytes=len(value))

    def label(self, value: bytes | None) -> "LabelEvent | TypedLabel":
        small = value is not None and len(value) <= self.max_bytes
        ev = typed_label(value) if small else None
        return ev or validate_label(self._object(value, small))

    def command(self, value: bytes | None) -> dict[str, Any]:
        return decode(value, self.max_bytes)

    def _object(self, value: bytes | None, small: bool) -> dict[str, Any]:
        try:  # the usual case in one step; anything unusual gets its precise reason from decode()
            obj = _loads(value) if small else None
        except orjson.JSONDecodeError:
            obj = None
        return obj if type(obj) is dict else decode(value, self.max_bytes)


# -- the one-step path: bytes -> event for well-formed messages (decode and validate in C) ---------------
# msgspec decodes straight into these Structs, checking types and limits as it goes. Anything it refuses
# (for any reason: an extra key, a value out of range, invalid JSON, ...) takes the two-step path,
# ``orjson.loads`` then :func:`validate_inference` / :func:`validate_label`, which accepts or gives the
# precise reason; what the one-step path accepts, the two-step path accepts with the same values (types
# and key order included; tested differentially on mutated payloads).
# * unknown keys are refused: msgspec skips their values without checking them as orjson would;
# * ints must fit int64: beyond it orjson (and so the two-step path) yields floats, msgspec exact ints;
# * a JSON int for ``ts`` or ``score`` becomes a float, as the careful path makes it;
# * the model name's pattern is checked through the memo of :func:`_model_ok` (cheaper than per message).
_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
_Scalar = Union[float, _Int, bool, _Name]
_FeatureValue = Union[float, _Int, bool, None, Annotated[str, Meta(max_length=MAX_STRING)]]


class TypedInference(Struct, gc=False, forbid_unknown_fields=True):
    """An inference event as the one-step path decodes it (the attributes of :class:`InferenceEvent`)."""

    id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
    model: _Name
    ts: Annotated[float, Meta(ge=0.0, le=1e11)]
    features: Annotated[dict[_Name, _FeatureValue], Meta(max_length=MAX_FEATURES)]
    prediction: _Scalar
    score: Union[float, None] = None


class TypedLabel(Struct, gc=False, forbid_unknown_fields=True):
    """A label event as the one-step path decodes it (the attributes of :class:`LabelEvent`)."""

    id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
    model: _Name
    ts: Annotated[float, Meta(ge=0.0, le=1e11)]
    label: _Scalar


_decode_inference = msgspec.json.Decoder(TypedInference).decode
_decode_label = msgspec.json.Decoder(TypedLabel).decode


def typed_inference(raw: bytes) -> TypedInference | None:
    """The event if ``raw`` is a well-formed inference event, else None (then use the two-step path)."""
    try:
        ev = _decode_inference(raw)
    except Exception:  # ValidationError, DecodeError, also UnicodeDecodeError and RecursionError
        return None
    m = ev.model
    return ev if _MODEL_OK.get(m) or _model_ok(m) else None


def typed_label(raw: bytes) -> TypedLabel | None:
    """The label if ``raw`` is a well-formed label event, else None (then use the two-step path)."""
    try:
        ev = _decode_label(raw)
    except Exception:
        return None
    m = ev.model
    return ev if _MODEL_OK.get(m) or _model_ok(m) else None
