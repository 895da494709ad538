"""Every selection method iclselect runs, by name, in the order `iclselect methods` lists them.

Importing this module imports every module of the `iclselect.methods` package, and a method's
module registers it on import (methods.method.register): adding a method is one new module
here, nothing else. Listings follow each method's `rank`, then the unranked ones by name.
Model methods are generators of request rounds that the runner answers with one engine (so a
shared store answers a request any method already made); the others need only the samples or
their embeddings. All score so that higher is better, and all go through the same selector.
"""

from __future__ import annotations

import importlib
import pkgutil

import iclselect.methods
from iclselect.errors import UsageError
from iclselect.methods.method import METHODS, Method
from iclselect.methods.options import did_you_mean

__all__ = ["METHODS", "Method", "discover", "get"]


def discover() -> None:
    """Import every module of the methods package, so each one that registers a method has."""
    package = iclselect.methods
    for module in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
        importlib.import_module(module.name)


def get(name: str) -> Method:
    if name not in METHODS:
        raise UsageError(
            f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose one of "
            f"{', '.join(METHODS)}"
        )
    return METHODS[name]


discover()
