"""Typed pass options: each pass declares a dataclass whose fields are its options.

    @dataclass
    class Options:
        weight_bits: int | None = option(None, "weight mantissa bits incl. sign (2..9)", check=lambda v: 2 <= v <= 9)

``validate_options`` checks a dict of options against the passes of a pipeline before any pass
runs: an option no pass knows, or one of the wrong type or out of range, is an error naming it.
``resolve`` gives a pass its typed options from the shared dict.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Iterable

from snc.errors import InvalidOption

OptionError = InvalidOption


def option(default: Any, help: str, *, choices: Iterable[Any] | None = None,
           check: Callable[[Any], bool] | None = None, expect: str | None = None) -> Any:
    """A documented option field. ``check`` returns False for a value out of range; ``expect``
    says in words what is accepted (shown in errors)."""
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "check": check, "expect": expect}
    if isinstance(default, (dict, list, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _accepts(tp: Any, value: Any) -> bool:
    """Does ``value`` match the annotation ``tp`` (simple types, unions, Any)?"""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is not None:
        tp = origin
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool) or (hasattr(value, "dtype") and getattr(value, "dtype").kind in "iu" and getattr(value, "ndim", 1) == 0)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        f.type = hints.get(f.name, f.type)
        out[f.name] = f
    return out


def check_value(owner: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    expect = meta.get("expect") or _type_name(f.type)
    if not _accepts(f.type, value):
        raise OptionError(f"pass {owner!r}: option {f.name!r} must be {expect}, got {value!r}")
    if value is None:
        return
    if meta.get("choices") and value not in meta["choices"]:
        raise OptionError(f"pass {owner!r}: option {f.name!r} must be one of {', '.join(map(repr, meta['choices']))}, got {value!r}")
    check = meta.get("check")
    if check is not None and not check(value):
        raise OptionError(f"pass {owner!r}: option {f.name!r} must be {expect}, got {value!r}")


def resolve(owner: str, cls: type, options: dict[str, Any]) -> Any:
    """The typed options of one pass from the shared dict (its own keys only), validated."""
    fs = fields_of(cls)
    given = {k: v for k, v in options.items() if k in fs}
    for k, v in given.items():
        check_value(owner, fs[k], v)
    return cls(**given)


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) of every option, for ``snc passes``."""
    rows = []
    for name, f in fields_of(cls).items():
        default = f.default if f.default is not dataclasses.MISSING else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        rows.append((name, f.metadata.get("expect") or _type_name(f.type), repr(default), f.metadata.get("help", "")))
    return rows
