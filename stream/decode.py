"""Stage 1, decode: raw bytes -> JSON object. Nothing here knows about the event schema."""

from __future__ import annotations

from typing import Any

import orjson

from stream.errors import InvalidMessage


def decode(value: bytes | None, max_bytes: int) -> dict[str, Any]:
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
