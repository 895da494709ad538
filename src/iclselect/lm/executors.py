"""Where the engine's units of work run: in this process, or on Ray workers.

The engine plans (deduplicates, answers from the store, tokenises, packs) and commits answers
to the store; an executor only computes units (packed forward passes), so every executor
computes the very same passes and a lost worker costs only the units it held, which go to
another worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from iclselect.cluster import Actor, ActorPool

if TYPE_CHECKING:
    from iclselect.lm.engine import Engine, Unit


class Executor(Protocol):
    def run(self, engine: Engine, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """Each unit with its log-probs (one per job, in unit.jobs order), in any order."""
        ...


class LocalExecutor:
    def run(self, engine: Engine, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        """Each pass is launched before the previous one's answers are read back, so a GPU is
        never idle while the host lays out the next row."""
        previous = None
        for unit in units:
            launched = (unit, engine.launch(unit))
            if previous is not None:
                yield previous[0], previous[1].tolist()
            previous = launched
        if previous is not None:
            yield previous[0], previous[1].tolist()


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker loads: the driver's model, resolved dtype, template and limits."""

    model: str
    model_id: str  # the driver's, weights fingerprint included: a worker must match it
    dtype: str  # resolved (fp32, bf16, fp16), never auto: every worker computes alike
    device: str
    template: str
    max_batch_tokens: int | None  # None: the engine's default for the worker's device
    max_length: int
    threads: int


class _Worker(Actor):
    """One model copy; computes units for the driver."""

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        from iclselect.lm.engine import Engine
        from iclselect.lm.model import load_model
        from iclselect.lm.templates import Template

        torch.set_num_threads(spec.threads)
        loaded = load_model(spec.model, spec.dtype, spec.device)
        if loaded.model_id != spec.model_id:
            raise RuntimeError(f"worker loaded {loaded.model_id}, the driver {spec.model_id}")
        template = Template(spec.template, loaded.tokenizer)
        self.engine = Engine(
            loaded, template, spec.max_batch_tokens, spec.max_length, show_progress=False
        )

    def compute(self, unit: Unit) -> list[float]:
        return self.engine.compute(unit)


class RayExecutor:
    """Units spread over `workers` Ray actors, each holding one model copy, `in_flight` units
    queued per worker. A worker that dies is replaced and its units go back in the queue."""

    def __init__(
        self,
        spec: WorkerSpec,
        workers: int = 2,
        address: str | None = None,
        gpus_per_worker: float = 0.0,
        in_flight: int = 2,
    ) -> None:
        self.spec = spec
        self.pool = ActorPool(
            _Worker, (spec,), workers, address, spec.threads, gpus_per_worker, in_flight
        )

    @property
    def workers(self) -> list[Any]:
        return self.pool.workers

    @property
    def restarts(self) -> int:
        return self.pool.restarts

    def run(self, engine: Engine, units: list[Unit]) -> Iterator[tuple[Unit, list[float]]]:
        for index, result in self.pool.map("compute", units):
            yield units[index], result
