"""Loading: one TOML file (or none) plus environment overrides into :class:`AppConfig`; see :mod:`stream.config`."""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from stream.config.sections import AppConfig, ConfigError, _default_kafka, _default_redis

ENV_PREFIX = "DRIFTSTREAM_"

PASS_THROUGH = {"kafka", "redis"}


# -- loading --------------------------------------------------------------------------------------
def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn ``DRIFTSTREAM_A__B__C=v`` variables into a nested dict ``{"a": {"b": {"c": v}}}``."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = name[len(ENV_PREFIX):].split("__")
        section = parts[0].lower()
        if section in PASS_THROUGH and len(parts) == 2:
            key = parts[1].lower()
            if section == "kafka":
                key = key.replace("_", ".")
            path = [section, key]
        else:
            path = [p.lower() for p in parts]
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = _parse_env_value(raw)
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
            merged[k] = _merge(dict(merged[k]), v)
        else:
            merged[k] = v
    return merged


def _build(cls: type, data: Any, where: str, base: Any = None) -> Any:
    """Build ``cls`` from a table; keys left out keep their value in ``base`` (the field's default
    instance, e.g. ``AppConfig.default_model``), else the class default. Then the section checks itself."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        at = f"{where}.{f.name}" if where else f.name
        inner = getattr(base, f.name) if base is not None else f.default
        if dataclasses.is_dataclass(inner) and not isinstance(inner, type):
            kwargs[f.name] = _build(type(inner), data[f.name], at, inner)
        else:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], at)
    try:
        built = dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"{where}: {exc}") from exc
    check = getattr(built, "check", None)
    if check is not None:
        check(where)
    return built


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Annotated:  # Annotated[Literal[...], "what is chosen"]
        inner, noun = typing.get_args(tp)[:2]
        return _choice(typing.get_args(inner), value, where, noun)
    if origin is Literal:
        return _choice(typing.get_args(tp), value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        (item,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, collections.abc.Mapping) or tp is Mapping:
        args = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        if args and dataclasses.is_dataclass(args[1]):
            return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:
            return _convert(args[0], value, where)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _choice(choices: tuple[Any, ...], value: Any, where: str, noun: str | None = None) -> Any:
    """``value`` if it is one of ``choices`` (same type too: ``1`` is not ``"1"`` nor ``True``), else an error
    that lists them."""
    if any(value == c and type(value) is type(c) for c in choices):
        return value
    shown = [repr(c) for c in choices]
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    if len(shown) > 2:
        listed = f"one of {listed}"
    if noun:
        raise ConfigError(f"{where}: unknown {noun} {value!r}; must be {listed}")
    raise ConfigError(f"{where} must be {listed}, got {value!r}")


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Load ``path`` (TOML; optional) and apply ``DRIFTSTREAM_*`` overrides from ``environ``."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    environ = os.environ if environ is None else environ
    data = _merge(data, env_overrides(environ))
    # pass-through sections merge over their defaults so that e.g. only a password can be added
    for section, default in (("kafka", _default_kafka()), ("redis", _default_redis())):
        if section in data:
            data[section] = {**default, **data[section]}
    return _build(AppConfig, data, "")


def redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings with secrets replaced, for logs and ``state show``."""
    secret_words = ("password", "secret", "key", "token", "sasl.jaas")
    out = {}
    for k, v in settings.items():
        if any(w in k.lower() for w in secret_words) and "location" not in k.lower():
            out[k] = "***"
        elif k == "url" and isinstance(v, str) and "@" in v:
            scheme, rest = v.split("://", 1) if "://" in v else ("", v)
            out[k] = f"{scheme}://***@{rest.split('@', 1)[1]}"
        else:
            out[k] = v
    return out
