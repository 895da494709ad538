"""Ray actors doing one kind of work for the driver: started once, fed a queue of items, and
replaced when one dies (its items go back in the queue). The engine's model workers and the
sharded embedder both run on this."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from iclselect.errors import UsageError


def connect(address: str | None, num_cpus: int) -> Any:
    """The ray module, connected: to `address`, or to a local cluster of `num_cpus` CPUs."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'iclselect[ray]'") from None
    if not ray.is_initialized():
        local = {"num_cpus": max(num_cpus, 1)} if address is None else {}
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
            **local,
        )
    return ray


class Actor:
    """Base of every actor an ActorPool runs."""

    def pid(self) -> int:
        """Its process id: lets a driver (or a test) find, or kill, the process behind it."""
        import os

        return os.getpid()


class ActorPool:
    """`workers` copies of `actor(*args)`, each with `cpus` CPUs and `gpus` GPUs, at most
    `in_flight` items queued per actor."""

    def __init__(
        self,
        actor: type,
        args: tuple,
        *,
        workers: int,
        address: str | None = None,
        cpus: int = 1,
        gpus: float = 0.0,
        in_flight: int = 2,
    ) -> None:
        self._ray = connect(address, workers * cpus)
        self._remote = self._ray.remote(num_cpus=cpus, num_gpus=gpus)(actor)
        self._args = args
        self.in_flight = in_flight
        self.workers: list[Any] = [self._spawn() for _ in range(workers)]
        self.restarts = 0

    def _spawn(self) -> Any:
        return self._remote.remote(*self._args)

    def map(self, method: str, items: list[Any]) -> Iterator[tuple[int, Any]]:
        """(index, actor.method(item)) for every item, in completion order."""
        ray = self._ray
        queue = deque(range(len(items)))
        pending: dict[Any, tuple[int, int]] = {}  # object ref -> (item index, worker slot)
        load = [0] * len(self.workers)

        def fill() -> None:
            for slot in range(len(self.workers)):
                while queue and load[slot] < self.in_flight:
                    index = queue.popleft()
                    call = getattr(self.workers[slot], method)
                    pending[call.remote(items[index])] = (index, slot)
                    load[slot] += 1

        fill()
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            index, slot = pending.pop(ref)
            load[slot] -= 1
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                queue.appendleft(index)
                self._replace(slot, pending, queue, load)
            else:
                yield index, result
            fill()

    def _replace(
        self, slot: int, pending: dict[Any, tuple[int, int]], queue: deque, load: list[int]
    ) -> None:
        """A dead worker's other items go back in the queue; a fresh worker takes its slot."""
        for ref, (index, owner) in list(pending.items()):
            if owner == slot:
                del pending[ref]
                queue.appendleft(index)
        load[slot] = 0
        self.workers[slot] = self._spawn()
        self.restarts += 1

    def shutdown(self) -> None:
        for worker in self.workers:
            self._ray.kill(worker)
        self.workers = []
