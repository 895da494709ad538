"""What a run needs from this machine, checked before any data is read or model loaded: a run
that would fail an hour in (no CUDA, a missing optional package) fails in its first second."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from iclselect.errors import UsageError
from iclselect.run.config import DEFAULT_MODEL

if TYPE_CHECKING:
    from iclselect.methods.registry import Method
    from iclselect.run.config import RunConfig


def check_run(config: RunConfig, methods: list[Method]) -> None:
    """Raise UsageError, one line naming the fix, for what this machine lacks (the values of
    the settings themselves are checked by RunConfig). --device cuda is checked for every
    method, those without a model too: the user asked for a GPU this machine does not have."""
    uses_model = any(method.uses_model for method in methods)
    if config.device.startswith("cuda") and config.executor != "vllm":
        import torch

        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {config.device}: torch sees no CUDA GPU on this machine; "
                "use --device cpu (or auto)"
            )
    if uses_model and config.model != DEFAULT_MODEL:
        # A missing directory or an unknown hub id is refused here, not after the pool has
        # been read and embedded.
        from iclselect.lm.model import resolve

        resolve(config.model)
    if uses_model and config.executor in ("ray", "vllm"):
        _need(config.executor, f"--executor {config.executor}", config.executor)
    if any(method.name == "icon" for method in methods) and _lora_selector(config):
        _need("peft", "icon.selector=lora", "lora")


def _lora_selector(config: RunConfig) -> bool:
    return any(
        key in ("selector", "icon.selector") and str(value) == "lora"
        for key, value in config.options.items()
    )


def _need(module: str, what: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise UsageError(
            f"{what} needs the package {module!r}, which is not installed: "
            f"pip install 'iclselect[{extra}]'"
        )
