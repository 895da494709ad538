"""iclselect: select the instruction-tuning samples that teach a model most.

    import iclselect
    scores = iclselect.score("data/alpaca_demo_60.json", method="ifd")
    subset = iclselect.select(scores, fraction=0.1)

See iclselect.api. The names load lazily, so `iclselect --help` does not import torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Scores", "Subset", "score", "select"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from iclselect import api

        return getattr(api, name)
    raise AttributeError(f"module 'iclselect' has no attribute {name!r}")
