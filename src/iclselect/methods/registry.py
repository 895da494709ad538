"""Every selection method iclselect runs, by name, in the order `iclselect methods` lists them.

Importing a method's module registers it (methods.method.register); this module imports them
all. Model methods are generators of request rounds that the runner answers with one engine
(so a shared store answers a request any method already made); the others need only the
samples or their embeddings. All score so that higher is better, and all go through the same
selector.
"""

from __future__ import annotations

from iclselect.errors import UsageError
from iclselect.methods import baselines, icon, ifd, miwv, nuggets, rds, wici  # noqa: F401  (register)
from iclselect.methods.method import REGISTERED, Method
from iclselect.methods.options import did_you_mean

ORDER = (
    "wici",
    "miwv",
    "icon",
    "ifd",
    "nuggets",
    "rds",
    "perplexity",
    "length",
    "random",
    "diversity",
)

if set(ORDER) != set(REGISTERED):
    raise RuntimeError(f"registry ORDER {ORDER} does not list exactly {sorted(REGISTERED)}")

METHODS: dict[str, Method] = {name: REGISTERED[name] for name in ORDER}


def get(name: str) -> Method:
    if name not in METHODS:
        raise UsageError(
            f"unknown method {name!r}{did_you_mean(name, METHODS)}; choose one of "
            f"{', '.join(METHODS)}"
        )
    return METHODS[name]
