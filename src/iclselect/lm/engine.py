"""The engine: answers log-likelihood requests in packed forward passes, in request order.

Every method's cost is here, so every speed trick lives here once, behind one call,
`Engine.loglikelihood(requests)`, in three layers:
- the caching layer (lm/caching.py): identical requests (same key) are computed once, the
  result store answers what an earlier run computed, and new answers are committed a pass at
  a time, with progress and counts;
- the packer (lm/packer.py, no torch): requests that share a prefix (the same demo before many
  probes) form a tree whose prefix runs once; trees are laid end to end in one row per forward
  pass up to a token budget, with no padding, largest first;
- the forward kernel (lm/kernel.py): computes a pass, the LM head and log-softmax only at the
  positions that predict target tokens; built by one factory here, on Ray workers and for vLLM.
An executor (lm/executors.py) decides where the passes run: this process or Ray workers.
`close()` (or `with Engine(...) as engine:`) closes the store and stops the workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch

from iclselect.infra.stages import stage
from iclselect.lm.caching import Cache, Distinct, Lookup, distinct
from iclselect.lm.executors import Executor, LocalExecutor
from iclselect.lm.flops import FlopModel
from iclselect.lm.kernel import KernelSpec, make_kernel, row_tokens
from iclselect.lm.model import LoadedModel
from iclselect.lm.packed import bucket
from iclselect.lm.packer import Unit, pack, pending, to_job
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.lm.store import ResultStore
from iclselect.lm.templates import Encoded, Template


@dataclass(frozen=True)
class _Plan:
    lookup: Lookup  # the distinct requests, and the answers the store holds
    units: list[Unit]  # the forward passes still to run


@dataclass(frozen=True)
class Cost:
    requests: int
    distinct: int
    stored: int  # answered by the store, not recomputed
    tokens: int  # tokens the engine will run
    flops: float  # model FLOPs of that work


class Engine:
    """Teacher-forced log-likelihood of request targets under one model and template."""

    def __init__(
        self,
        loaded: LoadedModel,
        template: Template,
        max_batch_tokens: int | None = None,
        max_length: int = 2048,
        show_progress: bool = True,
        reuse_prefix: bool = True,
        store_path: str | Path | None = None,
        chunk: int = 65_536,
        executor: Executor | None = None,
        attention: str = "auto",
        kernel: str = "hf",
    ) -> None:
        self.model = loaded.model
        self.model_id = loaded.model_id
        self.template = template
        self.max_length = max_length
        self.reuse_prefix = reuse_prefix
        self.device = next(self.model.parameters()).device
        self.max_batch_tokens = max_batch_tokens or row_tokens(self.device)
        dtype = str(self.model.dtype).removeprefix("torch.")
        namespace = f"{self.model_id}|{template.fingerprint}|{dtype}|{max_length}"
        self.executor = executor or LocalExecutor()
        # Another backend's numbers differ by kernel rounding: they get their own store entries.
        backend = getattr(self.executor, "backend", kernel)
        namespace += f"|{backend}" if backend != "hf" else ""
        self.cache = Cache(store_path, namespace, show_progress)
        self.stats = self.cache.stats
        spec = KernelSpec(
            model=self.model_id,
            model_id=self.model_id,
            dtype=dtype,
            device=self.device.type,
            max_batch_tokens=self.max_batch_tokens,
            attention=attention,
            backend=kernel,
        )
        try:
            self.kernel = make_kernel(spec, loaded, self.stats)
        except BaseException:
            self.cache.close()  # an engine that failed to start leaves no store open
            raise
        self.attention = getattr(self.kernel, "attention", "none")
        self.chunk = chunk
        # Model FLOPs of the useful work done (padding excluded), for utilisation figures.
        self.flops = 0.0
        self._flop_model = FlopModel.of(self.model)

    @property
    def store(self) -> ResultStore | None:
        return self.cache.store

    def loglikelihood(
        self, requests: Sequence[LogprobRequest], desc: str = "scoring"
    ) -> list[LogprobResult]:
        """One result per request, in the same order; a progress bar in tokens on a terminal.
        Requests are tokenised and run `chunk` at a time, so memory does not grow with the
        number of requests beyond the requests and answers themselves. While one chunk's
        passes run, the next chunk is tokenised on a thread: a GPU would otherwise wait for it
        between chunks."""
        results: list[LogprobResult] = []
        chunks = [requests[s : s + self.chunk] for s in range(0, len(requests), self.chunk)]
        with ThreadPoolExecutor(1, thread_name_prefix="iclselect-tokenise") as thread:
            ahead: Future[tuple[Distinct, list[Encoded]]] | None = None
            for n, chunk in enumerate(chunks, start=1):
                plan = self._plan(chunk, ahead)
                ahead = None
                if n < len(chunks) and plan.units:
                    ahead = thread.submit(self._encode_distinct, chunks[n])
                label = f"{desc} {n}/{len(chunks)}" if len(chunks) > 1 else desc
                results += self._execute(plan, label)
        self.cache.count_truncated(results)
        return results

    def _execute(self, plan: _Plan, desc: str) -> list[LogprobResult]:
        self.flops += self._flops(plan.units)
        computed = self.executor.run(self.kernel, plan.units)
        with stage("store"):
            return self.cache.answer(plan.lookup, plan.units, computed, desc)

    def _encode_distinct(
        self, requests: Sequence[LogprobRequest]
    ) -> tuple[Distinct, list[Encoded]]:
        """The distinct requests and their tokens. It runs on the tokenising thread, so it
        touches neither the store nor the stage records (iclselect.infra.stages)."""
        found = distinct(requests)
        return found, [self.template.encode(request) for request in found.requests]

    def cost(self, requests: Sequence[LogprobRequest]) -> Cost:
        """What loglikelihood(requests) would compute, without computing it (chunk by chunk,
        as it runs: a request repeated in a later chunk counts again)."""
        total = Cost(0, 0, 0, 0, 0.0)
        for start in range(0, len(requests), self.chunk):
            chunk = requests[start : start + self.chunk]
            plan = self._plan(chunk)
            lookup, units = plan.lookup, plan.units
            total = Cost(
                total.requests + len(chunk),
                total.distinct + len(lookup.answers),
                total.stored + len(lookup.answers) - lookup.missing,
                total.tokens + sum(unit.tokens for unit in units),
                total.flops + self._flops(units),
            )
        return total

    def warm_up(self, requests: Sequence[LogprobRequest]) -> None:
        """Run one of `requests`' passes per padded row size, answering nothing: flex
        attention compiles once per size, and a benchmark must not time that."""
        sizes: set[int] = set()
        for unit in self._plan(requests).units:
            if bucket(unit.tokens) not in sizes:
                sizes.add(bucket(unit.tokens))
                self.compute(unit)

    def compute(self, unit: Unit) -> list[float]:
        """Sum of target log-probs of every job of `unit`, in unit.jobs order (this process's
        kernel)."""
        return self.kernel.compute(unit)

    def launch(self, unit: Unit) -> torch.Tensor:
        """compute(unit) queued on the device and not waited for (lm/kernel.py)."""
        return self.kernel.launch(unit)

    def close(self) -> None:
        """Close the result store and stop the executor's workers. Idempotent."""
        self.cache.close()
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _flops(self, units: list[Unit]) -> float:
        """Model FLOPs of the forward passes that run: each tree's prefix, then each job's own
        tokens after it, with the LM head at target positions only."""
        flops = 0.0
        for tree in [tree for unit in units for tree in unit.trees]:
            skip = len(tree.prefix)
            flops += self._flop_model.forward(skip)
            for job in tree.jobs:
                flops += self._flop_model.forward(job.length - skip, skip)
                flops += self._flop_model.head(len(job.target))
        return flops

    def _plan(
        self,
        requests: Sequence[LogprobRequest],
        ahead: Future[tuple[Distinct, list[Encoded]]] | None = None,
    ) -> _Plan:
        """Deduplicate, answer what the store holds, and pack the rest into forward passes.

        The passes are packed from *all* the distinct requests, answered or not, and then
        reduced to the requests still missing: answers are committed a pass at a time, so a
        run killed and resumed runs exactly the passes the uninterrupted run would have, and
        its numbers are the same to the bit (in fp32 a request's log-prob moves by ~1e-6 with
        what else shares its row). `ahead`: these requests deduplicated and tokenised on the
        tokenising thread while the previous chunk ran (a request's key is hashed once);
        waiting for it counts as tokenising."""
        if ahead is not None:
            with stage("tokenise"):
                # Waited for even when nothing is missing: the template is never used by two
                # threads at once.
                found, encoded = ahead.result()
        else:
            with stage("store"):
                found, encoded = distinct(requests), None
        with stage("store"):
            lookup = self.cache.lookup(found)
        if not lookup.missing:
            return _Plan(lookup, [])
        if encoded is None:
            with stage("tokenise"):
                encoded = [self.template.encode(request) for request in lookup.requests]
        with stage("pack"):
            jobs = [
                to_job(slot, tokens, self.max_length, self.reuse_prefix)
                for slot, tokens in enumerate(encoded)
            ]
            units = [pending(unit, lookup.answers) for unit in pack(jobs, self.max_batch_tokens)]
        return _Plan(lookup, [unit for unit in units if unit.trees])
