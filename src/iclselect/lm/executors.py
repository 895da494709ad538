"""Where the engine's units of work run: in this process, or on Ray workers.

The engine plans (deduplicates, answers from the store, tokenises, batches) and commits answers
to the store; an executor only computes units, so every executor computes the very same batches
and a lost worker costs only the units it held, which go to another worker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from iclselect.lm.engine import Engine, Unit


class Executor(Protocol):
    def run(self, engine: Engine, units: list[Unit]) -> Iterator[tuple[Unit, list[list[float]]]]:
        """Each unit with its log-probs (one list per batch), in any order."""
        ...


class LocalExecutor:
    def run(self, engine: Engine, units: list[Unit]) -> Iterator[tuple[Unit, list[list[float]]]]:
        for unit in units:
            yield unit, engine.compute(unit)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker loads: the driver's model, resolved dtype, template and limits."""

    model: str
    model_id: str  # the driver's, weights fingerprint included: a worker must match it
    dtype: str  # resolved (fp32, bf16, fp16), never auto: every worker computes alike
    device: str
    template: str
    max_batch_tokens: int
    max_length: int
    threads: int


class _Worker:
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

    def compute(self, unit: Unit) -> list[list[float]]:
        return self.engine.compute(unit)

    def pid(self) -> int:
        import os

        return os.getpid()


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
        try:
            import ray
        except ImportError:
            raise ValueError("--executor ray needs Ray: pip install 'iclselect[ray]'") from None
        if not ray.is_initialized():
            local = {"num_cpus": max(workers * spec.threads, 1)} if address is None else {}
            ray.init(
                address=address, include_dashboard=False, log_to_driver=False,
                ignore_reinit_error=True, **local,
            )  # fmt: skip
        self._ray = ray
        self._remote = ray.remote(num_cpus=spec.threads, num_gpus=gpus_per_worker)(_Worker)
        self.spec = spec
        self.in_flight = in_flight
        self.workers: list[Any] = [self._spawn() for _ in range(workers)]
        self.restarts = 0

    def _spawn(self) -> Any:
        return self._remote.remote(self.spec)

    def run(self, engine: Engine, units: list[Unit]) -> Iterator[tuple[Unit, list[list[float]]]]:
        ray = self._ray
        queue = deque(units)
        pending: dict[Any, tuple[Unit, int]] = {}  # object ref -> (unit, worker slot)
        load = [0] * len(self.workers)

        def fill() -> None:
            for slot in range(len(self.workers)):
                while queue and load[slot] < self.in_flight:
                    unit = queue.popleft()
                    pending[self.workers[slot].compute.remote(unit)] = (unit, slot)
                    load[slot] += 1

        fill()
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            unit, slot = pending.pop(ref)
            load[slot] -= 1
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                queue.appendleft(unit)
                self._replace(slot, pending, queue, load)
            else:
                yield unit, result
            fill()

    def _replace(
        self, slot: int, pending: dict[Any, tuple[Unit, int]], queue: deque, load: list[int]
    ) -> None:
        """A dead worker's other units go back in the queue; a fresh worker takes its slot."""
        for ref, (unit, owner) in list(pending.items()):
            if owner == slot:
                del pending[ref]
                queue.appendleft(unit)
        load[slot] = 0
        self.workers[slot] = self._spawn()
        self.restarts += 1
