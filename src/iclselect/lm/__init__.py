"""The language-model layer: requests as plain data, templates that tokenise them, one engine.

The names load lazily, so a module that needs only the requests (every method) does not pull
in the engine, torch and transformers by importing this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "DEFAULT_MODEL": "iclselect.lm.model",
    "load_model": "iclselect.lm.model",
    "Engine": "iclselect.lm.engine",
    "LogprobRequest": "iclselect.lm.requests",
    "LogprobResult": "iclselect.lm.requests",
    "TEMPLATES": "iclselect.lm.templates",
    "Template": "iclselect.lm.templates",
}

__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'iclselect.lm' has no attribute {name!r}")
