"""What a setting's value must be: one rule for run settings (RunConfig) and method options.

A value typed as text (the command line, `--set KEY=VALUE`) is parsed to the field's type; a
value given already typed (a config file, YAML, the Python API) must have it. Either way a bad
value is a UsageError naming the setting, so `max_length: long` in a config file is refused
before anything runs, not deep inside the run.
"""

from __future__ import annotations

import os
import types
import typing
from typing import Any, Literal

from iclselect.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_WHAT = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def parsed(value: str, kind: Any, name: str) -> Any:
    """`value`, text from the command line, as the type `kind` of setting `name`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and value.lower() in ("none", "null", ""):
            return None
        return parsed(value, _not_none(args), name)
    if origin is Literal or kind not in (bool, int, float):
        return checked(value, kind, name)
    if kind is bool:
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise UsageError(f"{name} must be true or false; got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{name} must be {_WHAT[kind]}; got {value!r}") from None


def checked(value: Any, kind: Any, name: str) -> Any:
    """`value`, given already typed, if it has the type `kind` of setting `name` (an int is a
    fine float, a path a fine string); types other than these plain ones are their readers' to
    check."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return checked(value, _not_none(args), name)
    if origin is Literal:
        if value not in args:
            raise UsageError(f"{name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if kind not in _WHAT:
        return value
    if kind is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    if not _fits(value, kind):
        raise UsageError(f"{name} must be {_WHAT[kind]}; got {value!r}")
    return float(value) if kind is float else value


def _fits(value: Any, kind: type) -> bool:
    if isinstance(value, bool):  # an int to Python, never to a user
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _not_none(args: tuple[Any, ...]) -> Any:
    """The type of an optional setting (`int | None` -> int)."""
    return next(arg for arg in args if arg is not type(None))
