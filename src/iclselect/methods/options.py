"""Method options: each method's settings are a frozen dataclass whose fields carry their own
help text, so one parser serves `--set KEY=VALUE` on the command line, YAML keys and the Python
API, and `iclselect methods` documents every option from the same source."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

from iclselect.errors import UsageError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option(default: Any, help: str) -> Any:
    """A method option: its default and a one-line description."""
    return dataclasses.field(default=default, metadata={"help": help})


def make(config_type: type[T], values: dict[str, Any], method: str) -> T:
    """Build `config_type` from `values`; strings (from the command line) are converted to the
    field's type. Unknown keys and bad values raise UsageError naming the method and option."""
    hints = typing.get_type_hints(config_type)
    known = {f.name for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"{method} has no option {unknown[0]!r}{did_you_mean(unknown[0], known)}; its "
            f"options: {', '.join(sorted(known))} (iclselect methods {method} describes them)"
        )
    typed = {
        name: _convert(value, hints[name], f"{method}.{name}") for name, value in values.items()
    }
    return config_type(**typed)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'fraction'?)" when a choice is a close spelling of `word`, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(config_type: type) -> list[tuple[str, str, str]]:
    """(name, default, help) of every option, in declaration order."""
    return [
        (f.name, _show(f.default), f.metadata.get("help", ""))
        for f in dataclasses.fields(config_type)
    ]


def _convert(value: Any, kind: Any, name: str) -> Any:
    if not isinstance(value, str):
        return _checked(value, kind, name)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        if value not in args:
            raise UsageError(f"{name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null", ""):
            return None
        return _convert(value, next(a for a in args if a is not type(None)), name)
    if kind is bool:
        if value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise UsageError(f"{name} must be true or false; got {value!r}")
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise UsageError(f"{name} must be {what}; got {value!r}") from None
    return value


def _checked(value: Any, kind: Any, name: str) -> Any:
    """A value given already typed (Python API, YAML): refused unless it has the option's type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _checked(value, next(a for a in args if a is not type(None)), name)
    if origin is Literal:
        if value not in args:
            raise UsageError(f"{name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    # bool is an int to Python, never to a user; an int is a fine float.
    fits = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
    }.get(kind, True)
    if not fits:
        raise UsageError(f"{name} must be {kind.__name__}; got {value!r}")
    return float(value) if kind is float else value


def _show(default: Any) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    return "none" if default is None else str(default)
