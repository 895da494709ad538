"""The engine: answers log-likelihood requests in packed forward passes, in request order.

Every method's cost is here, so every speed trick lives here once:
- identical requests (same key) are computed once;
- requests that share a prefix (the same demo before many probes) form a tree: the prefix runs
  once and each request's own tokens follow it in the same row, attending to its keys;
- trees are laid end to end in one row per forward pass up to a token budget, with no padding
  (lm/packed.py), largest first (an out-of-memory shows on the first pass, and the ETA is
  pessimistic rather than optimistic);
- the LM head and log-softmax run only at the positions that predict target tokens, in chunks
  small enough to stay in cache, never over the whole row.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from iclselect.lm.executors import Executor, LocalExecutor
from iclselect.lm.flops import FlopModel
from iclselect.lm.model import LoadedModel
from iclselect.lm.packed import (
    KERNELS,
    Row,
    Segment,
    bucket,
    check_all_layers,
    default_kernel,
    packed,
    to_device,
)
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.lm.store import ResultStore
from iclselect.lm.templates import Encoded, Template
from iclselect.lm.window import fit
from iclselect.progress import Progress

# Target positions whose full-vocabulary logits are computed at once. On a CPU the log-softmax
# is bound by memory traffic: 128 rows (25 MB of float32 logits for a 49k vocabulary) ran the
# head 1.9x faster than 1024 rows; on a GPU larger chunks keep the device busy.
_HEAD_CHUNK_CPU = 128
_HEAD_CHUNK_GPU = 1024
# Tokens per packed forward pass by default. On 2 CPU cores the wICI workload in bf16 ran at
# 524 / 569 / 549 / 465 model GFLOP/s with rows of 1024 / 2048 / 4096 / 8192 tokens (taller
# rows push each layer's activations out of cache); a GPU wants rows as tall as memory allows.
_ROW_TOKENS_CPU = 2048
_ROW_TOKENS_GPU = 16384
# Shorter shared prefixes are not worth a tree of their own.
_MIN_PREFIX = 16


@dataclass(frozen=True)
class _Job:
    index: int  # position among the unique requests
    context: tuple[int, ...]
    target: tuple[int, ...]
    truncated: int
    prefix: int  # leading context tokens shared with other requests (0 = none)

    @property
    def length(self) -> int:
        return len(self.context) + len(self.target)


@dataclass
class _Plan:
    order: list[int]  # request -> its slot among the distinct requests
    answers: list[LogprobResult | None]  # per slot; filled from the store, then by computing
    store_keys: list[str]
    units: list[Unit]  # the forward passes still to run
    n_jobs: int  # requests still to compute


@dataclass(frozen=True)
class Tree:
    """Jobs run behind one shared prefix (empty: a job on its own)."""

    prefix: tuple[int, ...]
    jobs: tuple[_Job, ...]

    @property
    def tokens(self) -> int:
        return len(self.prefix) + sum(job.length - len(self.prefix) for job in self.jobs)


@dataclass(frozen=True)
class Unit:
    """One packed forward pass: trees laid end to end in one row. Executors compute units."""

    trees: tuple[Tree, ...]

    @property
    def jobs(self) -> list[_Job]:
        return [job for tree in self.trees for job in tree.jobs]

    @property
    def tokens(self) -> int:
        return sum(tree.tokens for tree in self.trees)


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
    ) -> None:
        self.model = loaded.model
        self.model_id = loaded.model_id
        self.template = template
        self.max_length = max_length
        self.show_progress = show_progress
        self.reuse_prefix = reuse_prefix
        self._base = self.model.base_model
        self._head = self.model.get_output_embeddings()
        self.device = next(self.model.parameters()).device
        on_cpu = self.device.type == "cpu"
        self.max_batch_tokens = max_batch_tokens or (_ROW_TOKENS_CPU if on_cpu else _ROW_TOKENS_GPU)
        self._head_chunk = _HEAD_CHUNK_CPU if on_cpu else _HEAD_CHUNK_GPU
        if attention not in ("auto", *KERNELS):
            raise ValueError(f"attention must be auto, {' or '.join(KERNELS)}; got {attention!r}")
        # The kernels agree to float rounding (tests/test_packed.py), as two devices do: the
        # store key does not name the kernel.
        self.attention = default_kernel(self.device) if attention == "auto" else attention
        dtype = str(self.model.dtype).removeprefix("torch.")
        namespace = f"{self.model_id}|{template.fingerprint}|{dtype}|{max_length}"
        self.executor = executor or LocalExecutor()
        # Another backend's numbers differ by kernel rounding: they get their own store entries.
        backend = getattr(self.executor, "backend", "hf")
        namespace += f"|{backend}" if backend != "hf" else ""
        self.store = ResultStore(store_path, namespace) if store_path is not None else None
        self.chunk = chunk
        # truncated: answers whose sequence was longer than max_length (context cut on the left).
        # oom_splits: forward passes that ran out of device memory and were split in two.
        self.stats: dict[str, int] = {
            "requests": 0, "stored": 0, "computed": 0, "tokens": 0, "truncated": 0,
            "oom_splits": 0,
        }  # fmt: skip
        # Model FLOPs of the useful work done (padding excluded), for utilisation figures.
        self.flops = 0.0
        self._flop_model = FlopModel.of(self.model)

    def loglikelihood(
        self, requests: Sequence[LogprobRequest], desc: str = "scoring"
    ) -> list[LogprobResult]:
        """One result per request, in the same order; a progress bar in tokens on a terminal.
        Requests are tokenised and run `chunk` at a time, so memory does not grow with the
        number of requests beyond the requests and answers themselves."""
        results: list[LogprobResult] = []
        chunks = range(0, len(requests), self.chunk)
        for n, start in enumerate(chunks, start=1):
            label = f"{desc} {n}/{len(chunks)}" if len(chunks) > 1 else desc
            results += self._run(requests[start : start + self.chunk], label)
        self.stats["truncated"] += sum(1 for r in results if r.truncated)
        return results

    def _run(self, requests: Sequence[LogprobRequest], desc: str) -> list[LogprobResult]:
        plan = self._plan(requests)
        units, answers = plan.units, plan.answers
        self.stats["requests"] += len(requests)
        self.stats["stored"] += len(answers) - plan.n_jobs
        self.stats["computed"] += plan.n_jobs
        self.flops += self._flops(units)
        tokens, stored = sum(unit.tokens for unit in units), len(answers) - plan.n_jobs
        desc = f"{desc} ({plan.n_jobs} requests)"
        bar = Progress(desc, tokens, len(answers), stored, self.show_progress)
        with bar:
            for unit, logprobs in self.executor.run(self, units):
                self._answer(unit.jobs, logprobs, answers, plan.store_keys)
                self._count(bar, unit.tokens, len(unit.jobs))
        missing = [i for i, a in enumerate(answers) if a is None]
        assert not missing, f"engine lost {len(missing)} requests"
        return [answers[slot] for slot in plan.order]  # type: ignore[misc]

    def cost(self, requests: Sequence[LogprobRequest]) -> Cost:
        """What loglikelihood(requests) would compute, without computing it (chunk by chunk,
        as it runs: a request repeated in a later chunk counts again)."""
        total = Cost(0, 0, 0, 0, 0.0)
        for start in range(0, len(requests), self.chunk):
            chunk = requests[start : start + self.chunk]
            plan = self._plan(chunk)
            total = Cost(
                total.requests + len(chunk),
                total.distinct + len(plan.answers),
                total.stored + len(plan.answers) - plan.n_jobs,
                total.tokens + sum(unit.tokens for unit in plan.units),
                total.flops + self._flops(plan.units),
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

    def _plan(self, requests: Sequence[LogprobRequest]) -> _Plan:
        """Deduplicate, answer what the store holds, and pack the rest into forward passes.

        The passes are packed from *all* the distinct requests, answered or not, and then
        reduced to the requests still missing: answers are committed a pass at a time, so a
        run killed and resumed runs exactly the passes the uninterrupted run would have, and
        its numbers are the same to the bit (in fp32 a request's log-prob moves by ~1e-6 with
        what else shares its row)."""
        unique: dict[str, int] = {}
        order = [unique.setdefault(r.key(), len(unique)) for r in requests]
        firsts: dict[int, LogprobRequest] = {}
        for request, slot in zip(requests, order, strict=True):
            firsts.setdefault(slot, request)
        answers: list[LogprobResult | None] = [None] * len(unique)
        store_keys = [self.store.key(k) for k in unique] if self.store is not None else []
        if self.store is not None:
            stored = self.store.get(store_keys)
            for slot, key in enumerate(store_keys):
                answers[slot] = stored.get(key)
        missing = sum(1 for answer in answers if answer is None)
        units: list[Unit] = []
        if missing:
            jobs = [self._job(slot, self.template.encode(firsts[slot])) for slot in firsts]
            units = [_pending(unit, answers) for unit in self._units(*self._group_by_prefix(jobs))]
        return _Plan(order, answers, store_keys, [u for u in units if u.trees], missing)

    def _units(self, groups: dict[tuple[int, ...], list[_Job]], singles: list[_Job]) -> list[Unit]:
        """Jobs as packed forward passes of at most max_batch_tokens tokens (a tree larger than
        that is split, each part running its prefix again), largest trees first."""
        trees = [Tree((), (job,)) for job in singles]
        for prefix, group in groups.items():
            trees += self._split(prefix, group)
        trees.sort(key=lambda tree: -tree.tokens)
        units: list[Unit] = []
        row: list[Tree] = []
        size = 0
        for tree in trees:
            if row and size + tree.tokens > self.max_batch_tokens:
                units.append(Unit(tuple(row)))
                row, size = [], 0
            row.append(tree)
            size += tree.tokens
        return [*units, Unit(tuple(row))] if row else units

    def _split(self, prefix: tuple[int, ...], jobs: list[_Job]) -> list[Tree]:
        """Trees of at most max_batch_tokens tokens (and at least one job each)."""
        trees: list[Tree] = []
        part: list[_Job] = []
        size = len(prefix)
        for job in sorted(jobs, key=lambda j: -j.length):
            own = job.length - len(prefix)
            if part and size + own > self.max_batch_tokens:
                trees.append(Tree(prefix, tuple(part)))
                part, size = [], len(prefix)
            part.append(job)
            size += own
        return [*trees, Tree(prefix, tuple(part))]

    def compute(self, unit: Unit) -> list[float]:
        """Sum of target log-probs of every job of `unit`, in unit.jobs order."""
        return self.launch(unit).tolist()

    def launch(self, unit: Unit) -> torch.Tensor:
        """compute(unit) as float64 sums on the model's device, queued and not waited for: on a
        GPU the host lays out the next pass while this one runs. A pass that runs out of device
        memory is split into two halves of its row, each retried the same way."""
        try:
            return self._forward(unit)
        except torch.OutOfMemoryError:
            if len(unit.jobs) == 1:
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if not self.stats["oom_splits"]:
            tqdm.write(
                f"out of memory on a {unit.tokens}-token row: splitting such rows in halves "
                f"(a smaller --max-batch-tokens than {self.max_batch_tokens} avoids the retries)",
                file=sys.stderr,
            )
        self.stats["oom_splits"] += 1
        return torch.cat([self.launch(half) for half in _halves(unit)])

    @torch.inference_mode()
    def _forward(self, unit: Unit) -> torch.Tensor:
        ids: list[int] = []
        positions: list[int] = []
        segments: list[Segment] = []
        picks: list[int] = []
        targets: list[int] = []
        owners: list[int] = []  # per target token: its job's place in unit.jobs
        jobs = 0
        for tree in unit.trees:
            start, skip = len(ids), len(tree.prefix)
            if skip:
                ids += tree.prefix
                positions += range(skip)
                segments.append(Segment(start, start + skip))
            for job in tree.jobs:
                first = len(ids)
                ids += (job.context + job.target)[skip:]
                positions += range(skip, job.length)
                segments.append(Segment(first, len(ids), start, start + skip))
                # Position p predicts token p + 1:
                #   tokens   c0 c1 c2 | t0 t1 t2      (| = end of context)
                #   hidden   h0 h1 h2   h3 h4         h2 predicts t0, h3 t1, h4 t2; h5 is unused
                # (positions counted after the prefix, which the tree ran once).
                predicting = first + len(job.context) - skip - 1
                picks += range(predicting, predicting + len(job.target))
                targets += job.target
                owners += [jobs] * len(job.target)
                jobs += 1
        position_ids = to_device(torch.tensor(positions), self.device)
        with packed(self.model, self.attention):
            hidden = self._base(
                input_ids=to_device(torch.tensor([ids]), self.device),
                position_ids=position_ids[None],
                use_cache=False,
                row=Row(segments, position_ids),
            ).last_hidden_state[0]
        check_all_layers(self.model)
        token_logprobs = self._target_logprobs(
            hidden[to_device(torch.tensor(picks), self.device)],
            to_device(torch.tensor(targets), self.device),
        )
        sums = torch.zeros(jobs, dtype=torch.float64, device=self.device)
        sums.index_add_(0, to_device(torch.tensor(owners), self.device), token_logprobs.double())
        return sums

    def _target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) at each row of `hidden`, a chunk of rows at a time."""
        out = torch.empty(len(targets), dtype=torch.float32, device=self.device)
        for start in range(0, len(targets), self._head_chunk):
            stop = start + self._head_chunk
            logits = self._head(hidden[start:stop]).float()
            # log_softmax's value at the target, without writing the whole log_softmax out.
            picked = logits.gather(1, targets[start:stop, None]).squeeze(1)
            out[start:stop] = picked - torch.logsumexp(logits, dim=-1)
        return out

    def _answer(
        self,
        batch: list[_Job],
        logprobs: list[float],
        answers: list[LogprobResult | None],
        store_keys: list[str],
    ) -> None:
        results = [
            LogprobResult(lp, len(j.target), j.truncated)
            for j, lp in zip(batch, logprobs, strict=True)
        ]
        for job, result in zip(batch, results, strict=True):
            answers[job.index] = result
        if self.store is not None:
            # Committed per batch: a run killed now loses at most the batch in flight.
            self.store.put(
                (store_keys[job.index], r) for job, r in zip(batch, results, strict=True)
            )

    def _count(self, bar: Progress, tokens: int, answers: int) -> None:
        self.stats["tokens"] += tokens
        bar.update(tokens, answers)

    def _job(self, index: int, encoded: Encoded) -> _Job:
        cut = fit(encoded, self.max_length)
        context = encoded.context_ids[cut.context_cut :]
        target = encoded.target_ids[: len(encoded.target_ids) - cut.target_cut]
        dropped = cut.context_cut + cut.target_cut
        # A context cut on the left no longer starts with the prefix other requests share.
        prefix = 0 if cut.context_cut else encoded.prefix_len
        # At least one context token stays out of the prefix: it predicts the first target token.
        prefix = min(prefix, len(context) - 1) if self.reuse_prefix else 0
        if prefix < _MIN_PREFIX:
            prefix = 0
        return _Job(index, context, target, dropped, prefix)

    def _group_by_prefix(
        self, jobs: list[_Job]
    ) -> tuple[dict[tuple[int, ...], list[_Job]], list[_Job]]:
        """Jobs by shared prefix, and the jobs with none. A job takes the prefix path even when
        no other job shares it, so its tokens, positions and attention never depend on what
        else is asked."""
        groups: dict[tuple[int, ...], list[_Job]] = defaultdict(list)
        singles: list[_Job] = []
        for job in jobs:
            if job.prefix:
                groups[job.context[: job.prefix]].append(job)
            else:
                singles.append(job)
        return groups, singles


def _halves(unit: Unit) -> tuple[Unit, Unit]:
    """`unit` as two passes of about half its tokens, its jobs in the same order: whole trees
    where it has several, else its one tree's jobs split behind two copies of the prefix."""
    if len(unit.trees) > 1:
        sizes = [tree.tokens for tree in unit.trees]
        cut = _cut(sizes)
        return Unit(unit.trees[:cut]), Unit(unit.trees[cut:])
    (tree,) = unit.trees
    cut = _cut([job.length - len(tree.prefix) for job in tree.jobs])
    return Unit((Tree(tree.prefix, tree.jobs[:cut]),)), Unit((Tree(tree.prefix, tree.jobs[cut:]),))


def _cut(sizes: list[int]) -> int:
    """Where to cut `sizes` (2 or more) so both sides are non-empty and about equal."""
    total, running = sum(sizes), 0
    for index, size in enumerate(sizes[:-1], start=1):
        running += size
        if 2 * running >= total:
            return index
    return len(sizes) - 1


def _pending(unit: Unit, answers: list[LogprobResult | None]) -> Unit:
    """`unit` without the jobs already answered (and without trees left with none)."""
    trees = [
        Tree(t.prefix, tuple(j for j in t.jobs if answers[j.index] is None)) for t in unit.trees
    ]
    return Unit(tuple(tree for tree in trees if tree.jobs))
