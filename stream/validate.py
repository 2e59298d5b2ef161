"""Stage 2, validate: a decoded mapping -> typed event, or :class:`InvalidMessage` with a precise reason.

Format-independent: any input format (see :mod:`stream.formats`) decodes bytes into a mapping of JSON-like
values first, then these checks make the event.

Limits keep memory and metric label cardinality bounded: ids, model names, feature names and string
values have maximum lengths, feature dicts a maximum size, and numbers must be finite.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any

from stream.errors import InvalidMessage
from stream.events import InferenceEvent, LabelEvent

MAX_ID = 256
MAX_NAME = 128
MAX_STRING = 1024
MAX_FEATURES = 256
_MODEL_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def _str_field(obj: dict[str, Any], key: str, limit: int) -> str:
    if key not in obj:
        raise InvalidMessage(f"missing_{key}", f"field {key!r} is required")
    v = obj[key]
    if not isinstance(v, str) or not v:
        raise InvalidMessage(f"bad_{key}", f"field {key!r} must be a non-empty string, got {type(v).__name__}")
    if len(v) > limit:
        raise InvalidMessage(f"bad_{key}", f"field {key!r} is {len(v)} characters, limit {limit}")
    return v


def _finite(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 48, 48


def _preview(v: Any) -> str:
    """A short repr of any decoded JSON value for an error message (bounded depth: a deeply nested value
    must not turn into a RecursionError)."""
    return _REPR.repr(v)[:64]


def _ts(obj: dict[str, Any]) -> float:
    if "ts" not in obj:
        raise InvalidMessage("missing_ts", "field 'ts' (epoch seconds) is required")
    v = obj["ts"]
    if not _finite(v) or v < 0 or v > 1e11:
        raise InvalidMessage("bad_ts", f"field 'ts' must be epoch seconds, got {_preview(v)}")
    return float(v)


def _model(obj: dict[str, Any]) -> str:
    m = _str_field(obj, "model", MAX_NAME)
    if not _MODEL_RE.match(m):
        raise InvalidMessage("bad_model", "model names use letters, digits, '_', '.', '-' only")
    return m


def _scalar(obj: dict[str, Any], key: str) -> Any:
    if key not in obj:
        raise InvalidMessage(f"missing_{key}", f"field {key!r} is required")
    v = obj[key]
    if isinstance(v, bool) or _finite(v):
        return v
    if isinstance(v, str) and 0 < len(v) <= MAX_NAME:
        return v
    raise InvalidMessage(f"bad_{key}", f"field {key!r} must be a finite number, a boolean or a short string")


def _features(obj: dict[str, Any]) -> dict[str, Any]:
    if "features" not in obj:
        raise InvalidMessage("missing_features", "field 'features' is required")
    f = obj["features"]
    if not isinstance(f, dict):
        raise InvalidMessage("bad_features", f"field 'features' must be an object, got {type(f).__name__}")
    if len(f) > MAX_FEATURES:
        raise InvalidMessage("bad_features", f"{len(f)} features, limit {MAX_FEATURES}")
    for k, v in f.items():
        if len(k) > MAX_NAME or not k:
            raise InvalidMessage("bad_features", f"feature name of length {len(k)} (1..{MAX_NAME})")
        t = type(v)
        if t is float:  # the common case first (hot path)
            if v - v == 0.0:  # finite: inf - inf and nan - nan are nan
                continue
            raise InvalidMessage("bad_features", f"feature {k!r} must be a finite number, string, boolean or null")
        if v is None or t is bool or _finite(v):  # an int too large for a float is not finite
            continue
        if isinstance(v, str):
            if len(v) > MAX_STRING:
                raise InvalidMessage("bad_features", f"feature {k!r} string is {len(v)} characters, limit {MAX_STRING}")
            continue
        raise InvalidMessage("bad_features", f"feature {k!r} must be a finite number, string, boolean or null")
    return f


def validate_inference(obj: dict[str, Any], *, json_bytes: int | None = None) -> InferenceEvent:
    """``json_bytes``: pass ``len(raw)`` only when ``obj`` is exactly what ``orjson.loads(raw)`` returned.
    The checks that such an object passes by construction are then skipped (see :func:`_inference_fast`)."""
    return _inference_fast(obj, json_bytes) or _inference_careful(obj)


def validate_label(obj: dict[str, Any]) -> LabelEvent:
    return _label_fast(obj) or _label_careful(obj)


def _inference_careful(obj: dict[str, Any]) -> InferenceEvent:
    score = obj.get("score")
    if score is not None and not _finite(score):
        raise InvalidMessage("bad_score", "field 'score' must be a finite number when present")
    return InferenceEvent(
        id=_str_field(obj, "id", MAX_ID),
        model=_model(obj),
        ts=_ts(obj),
        features=_features(obj),
        prediction=_scalar(obj, "prediction"),
        score=None if score is None else float(score),
    )


def _label_careful(obj: dict[str, Any]) -> LabelEvent:
    return LabelEvent(
        id=_str_field(obj, "id", MAX_ID),
        model=_model(obj),
        ts=_ts(obj),
        label=_scalar(obj, "label"),
    )


# -- the hot path: well-formed events in as few Python steps as possible --------------------------------
# Each returns None as soon as anything is unusual; the careful path above then finds the precise reason
# (or accepts the event), so the results are the same. Tests compare both paths.
#
# Two memos, bounded by clearing them when full. They are caches of pure functions, so their contents never
# change a result, only its cost. Keys must be exact ``str`` (tuples of them): equal means same length and
# characters, which is all the checks look at.
_CACHE_LIMIT = 1024
_MODEL_OK: dict[str, bool] = {}  # model name -> matches _MODEL_RE
_GOOD_NAMES: set[tuple[str, ...]] = set()  # feature-name tuples all of length 1..MAX_NAME
_CONTAINERS = frozenset({dict, list})
#: ints the fast paths accept without a float conversion (orjson's range); larger ones go the careful way
_INT_RANGE = 2**64


def _model_ok(m: str) -> bool:
    """Only for ``type(m) is str`` and ``len(m) <= MAX_NAME``, which keeps the memo small."""
    if len(_MODEL_OK) >= _CACHE_LIMIT:
        _MODEL_OK.clear()
    ok = _MODEL_OK[m] = _MODEL_RE.match(m) is not None
    return ok


def _scalar_ok(v: Any) -> bool:
    t = type(v)
    return ((t is float and v - v == 0.0) or (t is int and -_INT_RANGE < v < _INT_RANGE) or t is bool
            or (t is str and 0 < len(v) <= MAX_NAME))


def _inference_fast(obj: dict[str, Any], json_bytes: int | None = None) -> InferenceEvent | None:
    get = obj.get
    i, m, ts = get("id"), get("model"), get("ts")
    if not (type(i) is str and 0 < len(i) <= MAX_ID and type(ts) is float and 0.0 <= ts <= 1e11
            and type(m) is str and len(m) <= MAX_NAME and (_MODEL_OK.get(m) or _model_ok(m))):
        return None
    f, pred, score = get("features"), get("prediction"), get("score")
    if type(f) is not dict or len(f) > MAX_FEATURES or not _scalar_ok(pred):
        return None
    if score is not None and not (type(score) is float and score - score == 0.0):
        return None
    if json_bytes is None:  # any dict: check every name and value
        if f and ("" in f or max(map(len, f)) > MAX_NAME):
            return None
        for v in f.values():
            t = type(v)
            if t is float:
                if v - v != 0.0:
                    return None
            elif t is str:
                if len(v) > MAX_STRING:
                    return None
            elif not (v is None or (t is int and -_INT_RANGE < v < _INT_RANGE) or t is bool):
                return None
        return InferenceEvent(i, m, ts, f, pred, score)
    # Decoded by orjson: names are exact str (so the memo is safe), numbers are finite (orjson refuses NaN,
    # Infinity and overflow), values are str, int, float, bool, None, list or dict, and no string is longer
    # than the payload it came from.
    names = tuple(f)
    if names not in _GOOD_NAMES:
        if "" in f or (f and max(map(len, f)) > MAX_NAME):
            return None
        if len(_GOOD_NAMES) >= _CACHE_LIMIT:
            _GOOD_NAMES.clear()
        _GOOD_NAMES.add(names)
    if json_bytes <= MAX_STRING:
        if not _CONTAINERS.isdisjoint(map(type, f.values())):
            return None
    else:
        for v in f.values():
            t = type(v)
            if t is str:
                if len(v) > MAX_STRING:
                    return None
            elif t is dict or t is list:
                return None
    return InferenceEvent(i, m, ts, f, pred, score)


def _label_fast(obj: dict[str, Any]) -> LabelEvent | None:
    get = obj.get
    i, m, ts, label = get("id"), get("model"), get("ts"), get("label")
    if not (type(i) is str and 0 < len(i) <= MAX_ID and type(ts) is float and 0.0 <= ts <= 1e11
            and type(m) is str and len(m) <= MAX_NAME and (_MODEL_OK.get(m) or _model_ok(m))
            and _scalar_ok(label)):
        return None
    return LabelEvent(i, m, ts, label)
