"""The configuration reference, generated from the dataclasses in :mod:`stream.config` so it cannot go stale.

``driftstream config-reference`` prints it as Markdown; a test checks that the documented example file
``driftstream.toml`` mentions every key.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Iterator

from stream.config import AppConfig, PASS_THROUGH


def _field_docs(cls: type) -> dict[str, str]:
    """``#:`` comments written just above a field in the class body."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        s = line.strip()
        if s.startswith("#:"):
            pending.append(s[2:].strip())
            continue
        m = re.match(r"^([a-z_][a-z0-9_]*)\s*:", s)
        if m and pending:
            docs[m.group(1)] = " ".join(pending)
        if not s.startswith("#"):
            pending = []
    return docs


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def rows(cls: type = AppConfig, prefix: str = "", instance: Any = None) -> Iterator[tuple[str, str, str, str]]:
    """(key path, type, default, description) for every leaf setting.

    The defaults are those the loader uses: a section's defaults are read from the parent's default instance
    of it (``AppConfig.default_model`` is a ``ModelSpec`` with data drift off, not ``ModelSpec()``), as
    :func:`stream.config.load_config` keeps them for keys a file leaves out; a table of named sections
    (``models.<name>``) gets the class defaults, as the loader builds each entry."""
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    if instance is None:
        instance = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        default = getattr(instance, f.name)
        if dataclasses.is_dataclass(tp):
            yield from rows(tp, path + ".", default)
            continue
        args = typing.get_args(tp)
        if args and len(args) == 2 and dataclasses.is_dataclass(args[1]):
            yield (f"{path}.<name>", f"table of {args[1].__name__}", "{}", docs.get(f.name, ""))
            yield from rows(args[1], f"{path}.<name>.")
            continue
        if f.name in PASS_THROUGH and not prefix:
            yield (f"{path}.*", "pass-through", repr(dict(default)), docs.get(f.name, ""))
            continue
        yield (path, _type_name(tp), shown(default), docs.get(f.name, ""))


def shown(default: Any) -> str:
    """How the reference prints a default value."""
    if isinstance(default, tuple) and default and dataclasses.is_dataclass(default[0]):
        return "[" + ", ".join(f"{{name = {d.name!r}}}" for d in default) + "]"
    if isinstance(default, typing.Mapping):
        return repr(dict(default))
    return repr(default)


def markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, tp, default, doc in rows():
        lines.append(f"| `{path}` | {tp} | `{default}` | {doc} |")
    lines.append("")
    lines.append("Every key can be overridden by `DRIFTSTREAM_<SECTION>__<KEY>` (nested: more `__`).")
    return "\n".join(lines)
