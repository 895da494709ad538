"""Method options: each method's settings are a frozen dataclass whose fields carry their own
help text, so one parser serves `--set KEY=VALUE` on the command line, YAML keys and the Python
API, and `iclselect methods` documents every option from the same source."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from iclselect.errors import UsageError
from iclselect.infra.values import checked, parsed

T = TypeVar("T")


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
        name: (parsed if isinstance(value, str) else checked)(
            value, hints[name], f"{method}.{name}"
        )
        for name, value in values.items()
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


def _show(default: Any) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    return "none" if default is None else str(default)
