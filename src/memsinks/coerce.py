"""One coercer for every ``key=value`` a user types into a dataclass: a study config's sections,
an unlearning method's parameters (``--param``), the linear toy's settings.

A value arrives as YAML reads it (``1e-3`` is a string, ``1`` an int, ``[a,b]`` a list) and
leaves as the field's type says: ``int``, ``float``, ``bool``, ``str``, a ``Literal`` of choices,
a ``list`` or ``tuple`` of those (a single value, or a comma-separated string, is a list of
one or more), and any of them ``| None``. Anything else stops with one sentence that names the
key and gives a valid example.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, Union


class _Mismatch(Exception):
    """A value that does not fit the type; ``expected`` says what would."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of dataclass ``cls``."""
    return typing.get_type_hints(cls)


def coerce(cls: type, key: str, value: Any, prefix: str = "", subject: str | None = None) -> Any:
    """``value`` as field ``key`` of dataclass ``cls`` holds it, or a ValueError of one sentence.

    The sentence calls the field ``subject`` (default ``prefix + key``, as in ``train.steps``)
    and ends with an example, ``prefix + key=`` the field's default.
    """
    kind = field_types(cls)[key]
    try:
        return _coerced(kind, value)
    except _Mismatch as mismatch:
        example = _example(cls, key, kind)
        raise ValueError(f"{subject or prefix + key} = {_written(value)} is not "
                         f"{mismatch.expected}; use for example {prefix}{key}={example}") from None


def _coerced(kind: Any, value: Any, optional: bool = False) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            return value  # no field has a wider union; leave it to the field's validate()
        if value is None:
            return None
        try:
            return _coerced(inner[0], value, optional=True)
        except _Mismatch as mismatch:
            raise _Mismatch(f"{mismatch.expected} or null") from None
    if value is None:
        raise _Mismatch(_expected(kind))
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise _Mismatch(_expected(kind))
    if origin in (list, tuple):
        item = args[0] if args else Any
        if isinstance(value, str):  # `stories` or `stories,facts`, as the toy's seeds=0,1,2
            values = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            values = list(value)
        elif isinstance(value, dict):
            raise _Mismatch(_expected(kind))
        else:
            values = [value]
        try:
            return origin(_coerced(item, v) for v in values)
        except _Mismatch:
            raise _Mismatch(_expected(kind)) from None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif kind is int:
        number = _number(value)
        if number is not None and float(number).is_integer():
            return int(number)
    elif kind is float:
        number = _number(value)
        if number is not None:
            # an optional number keeps an int as written: it always did, and method
            # fingerprints hash it so (data.in_domain_share=0)
            return number if optional and isinstance(number, int) else float(number)
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # YAML reads name=2024 as a number
    else:
        return value  # a type this coercer does not know: as it came
    raise _Mismatch(_expected(kind))


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value.strip())
            except ValueError:
                pass
    return None


def _expected(kind: Any, many: bool = False) -> str:
    """What a value of type ``kind`` is, in words (``many``: what a list of them holds)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return ("values among " if many else "one of ") + ", ".join(map(str, args))
    if origin in (list, tuple):
        return f"a list of {_expected(args[0], many=True) if args else 'values'}"
    words = {bool: ("true or false", "booleans"), int: ("a whole number", "whole numbers"),
             float: ("a number", "numbers"), str: ("a string", "strings")}
    one, several = words.get(kind, (f"a {getattr(kind, '__name__', kind)}", "values"))
    return several if many else one


_SAMPLES = {bool: "true", int: "1", float: "0.5", str: "text"}


def _example(cls: type, key: str, kind: Any) -> str:
    """The field's default as it is typed, or a sample of its type when the default is null."""
    spec = next(f for f in dataclasses.fields(cls) if f.name == key)
    default = (spec.default_factory() if spec.default_factory is not dataclasses.MISSING
               else spec.default)
    if default is not None and default is not dataclasses.MISSING:
        return _written(default, bare=True)
    inner = [a for a in typing.get_args(kind) if a is not type(None)]
    return _SAMPLES.get(inner[0] if inner else kind, "null")


def _written(value: Any, bare: bool = False) -> str:
    """A value as it is typed after ``key=``: true, null, 0.002, stories,facts."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)) and bare:
        return ",".join(_written(v, bare=True) for v in value)
    if isinstance(value, str) and bare:
        return value
    return repr(value)
