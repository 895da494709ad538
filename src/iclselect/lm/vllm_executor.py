"""`--executor vllm`: the engine's units computed in this process by the vLLM kernel
(lm/vllm_kernel.py, built by the one kernel factory, lm/kernel.make_kernel)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from iclselect.lm.kernel import KernelSpec, make_kernel

if TYPE_CHECKING:
    from iclselect.lm.packer import Unit


class VllmExecutor:
    backend = "vllm"

    def __init__(
        self, model_dir: str, dtype: str, max_length: int, gpu_memory_utilization: float = 0.85
    ) -> None:
        spec = KernelSpec(
            model=model_dir,
            model_id=None,
            dtype=dtype,
            device="cuda",
            backend="vllm",
            max_length=max_length,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.kernel = make_kernel(spec)

    def run(self, kernel: Any, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """The units on vLLM (the driver's own `kernel` stays idle)."""
        return self.kernel.run(units)
