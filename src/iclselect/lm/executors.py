"""Where the engine's units of work run: in this process, or on Ray workers.

The engine plans (deduplicates, answers from the store, tokenises, packs) and commits answers
to the store; an executor only hands units (packed forward passes) to kernels (lm/kernel.py),
so every executor computes the very same passes and a lost worker costs only the units it held,
which go to another worker. A Ray worker builds a kernel, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from iclselect.infra.cluster import Actor, ActorPool

if TYPE_CHECKING:
    from iclselect.lm.kernel import Kernel, KernelSpec
    from iclselect.lm.packer import Unit


class Executor(Protocol):
    def run(self, kernel: Kernel, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """Each unit with its log-probs (one per job, in unit.jobs order), in any order.
        `kernel` is the driver's own; an executor with kernels of its own leaves it idle."""
        ...


class LocalExecutor:
    """The driver's kernel, in this process."""

    def run(self, kernel: Kernel, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        return kernel.run(units)


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """What a worker loads: the driver's model, resolved dtype, template and limits."""

    model: str
    model_id: str  # the driver's, weights fingerprint included: a worker must match it
    dtype: str  # resolved (fp32, bf16, fp16), never auto: every worker computes alike
    device: str
    template: str  # the driver's; workers get token ids, so only the record names it
    max_batch_tokens: int | None  # None: the kernel's default for the worker's device
    max_length: int
    threads: int

    def kernel(self) -> KernelSpec:
        from iclselect.lm.kernel import KernelSpec

        return KernelSpec(
            model=self.model,
            model_id=self.model_id,
            dtype=self.dtype,
            device=self.device,
            max_batch_tokens=self.max_batch_tokens,
            threads=self.threads,
            max_length=self.max_length,
        )


class _Worker(Actor):
    """One model copy; computes units for the driver."""

    def __init__(self, spec: WorkerSpec) -> None:
        from iclselect.lm.kernel import make_kernel

        self.kernel = make_kernel(spec.kernel())

    def compute(self, unit: Unit) -> list[float]:
        return self.kernel.compute(unit)


class RayExecutor:
    """Units spread over `workers` Ray actors, each holding one model copy, `in_flight` units
    queued per worker. A worker that dies is replaced and its units go back in the queue."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        workers: int = 2,
        address: str | None = None,
        gpus_per_worker: float = 0.0,
        in_flight: int = 2,
    ) -> None:
        self.spec = spec
        self.pool = ActorPool(
            _Worker,
            (spec,),
            workers=workers,
            address=address,
            cpus=spec.threads,
            gpus=gpus_per_worker,
            in_flight=in_flight,
        )

    @property
    def workers(self) -> list[Any]:
        return self.pool.workers

    @property
    def restarts(self) -> int:
        return self.pool.restarts

    def run(self, kernel: Kernel, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """The units on the workers' kernels (the driver's own `kernel` stays idle)."""
        for index, result in self.pool.map("compute", units):
            yield units[index], result

    def close(self) -> None:
        """Kill the workers (their model copies go with them)."""
        self.pool.shutdown()
