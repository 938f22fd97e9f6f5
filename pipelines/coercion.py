"""Config values -> typed dataclass fields: one check per annotation, one line per mistake.

:func:`build_dataclass` checks a mapping against a params dataclass (unknown keys, missing
keys, limits from ``param(min=..., choices=...)``) and :func:`coerce` checks one value against
its annotation (unions, literals, lists, tuples, dicts, nested dataclasses, scalars).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any


class ConfigError(Exception):
    """A bad config; the message is the whole story, on one line."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _limits_text(meta: Mapping[str, Any]) -> str:
    parts = []
    if "choices" in meta:
        parts.append("one of " + ", ".join(repr(c) for c in meta["choices"]))
    if "min" in meta:
        parts.append(f">= {meta['min']}")
    if "min_exclusive" in meta:
        parts.append(f"> {meta['min_exclusive']}")
    if "max" in meta:
        parts.append(f"<= {meta['max']}")
    return " and ".join(parts)


def _check_limits(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        bad = (
            ("choices" in meta and item not in meta["choices"])
            or ("min" in meta and item is not None and item < meta["min"])
            or ("min_exclusive" in meta and item is not None and item <= meta["min_exclusive"])
            or ("max" in meta and item is not None and item > meta["max"])
        )
        if bad:
            raise ConfigError(f"{key}: {item!r} is not allowed; expected {_limits_text(meta)}")


def _coerce_union(key: str, value: Any, args: tuple) -> Any:
    if value is None and type(None) in args:
        return None
    for arg in (a for a in args if a is not type(None)):
        try:
            return coerce(key, value, arg)
        except ConfigError:
            continue
    raise ConfigError(f"{key}: {value!r} is not a {' or '.join(map(_type_name, args))}")


def _coerce_literal(key: str, value: Any, args: tuple) -> Any:
    if value not in args:
        raise ConfigError(f"{key}: {value!r} is not allowed; expected one of {list(args)}")
    return value


def _coerce_sequence(key: str, value: Any, origin: type, args: tuple) -> list | tuple:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{key}: {value!r} is not a list")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{key}: {value!r} must have {len(args)} items")
        return tuple(
            coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    item_tp = args[0] if args else Any
    items = [coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce_mapping(key: str, value: Any, args: tuple) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: {value!r} is not a mapping")
    vt = args[1] if args else Any
    return {str(k): coerce(f"{key}.{k}", v, vt) for k, v in value.items()}


def _coerce_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a bool (true or false)")
    return value


def _coerce_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: {value!r} is not an int")
    return value


def _coerce_float(key: str, value: Any) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: {value!r} is not a number")
    if not math.isfinite(value):  # .nan passes every min/max comparison
        raise ConfigError(f"{key}: {value!r} is not a finite number")
    return float(value)


def _coerce_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not a string")
    return value


_SCALARS = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Checks ``value`` against the annotation ``tp`` and returns it in that type.

    Raises:
        ConfigError: one line naming ``key``, the value and the type it should have.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(key, value, args)
    if origin is typing.Literal:
        return _coerce_literal(key, value, args)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return build_dataclass(tp, value, key)
    if origin in (list, tuple):
        return _coerce_sequence(key, value, origin, args)
    if origin is dict or tp is dict:
        return _coerce_mapping(key, value, args)
    scalar = _SCALARS.get(tp) if isinstance(tp, type) else None
    if scalar is not None:
        return scalar(key, value)
    raise ConfigError(f"{key}: unsupported config type {_type_name(tp)}")


def build_dataclass(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    """Builds a frozen dataclass from a mapping, checking keys, types and limits."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix}.{unknown[0]}: unknown key; allowed keys: {', '.join(sorted(fields))}"
        )
    values = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}"
        if name in data:
            value = coerce(key, data[name], hints[name])
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        else:
            raise ConfigError(f"{key}: missing; {f.metadata.get('help') or 'required'}")
        _check_limits(key, value, f.metadata)
        values[name] = value
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:  # a params __post_init__ cross-field check
        raise ConfigError(f"{prefix}: {e}") from None
