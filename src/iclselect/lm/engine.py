"""The engine: answers log-likelihood requests in batches, in request order.

Every method's cost is here, so every speed trick lives here once:
- identical requests (same key) are computed once;
- requests that share a prefix (the same demo before many probes) run that prefix once and
  score their suffixes, batched, on its KV cache;
- requests are sorted longest first (an out-of-memory shows on the first batch, and the ETA is
  pessimistic rather than optimistic) and packed into batches by a padded-token budget;
- the LM head and log-softmax run only at the positions that predict target tokens, never over
  the whole padded batch (on 2 CPU cores the full-vocabulary logits cost more than batching saves).
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import DynamicCache

from iclselect.lm.executors import Executor, LocalExecutor
from iclselect.lm.flops import FlopModel
from iclselect.lm.model import LoadedModel
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.lm.store import ResultStore
from iclselect.lm.templates import Encoded, Template

# Rows of the (positions x vocabulary) logit matrix computed at once: bounds memory at
# about 200 MB for a 50k vocabulary in float32, whatever the batch size.
_HEAD_CHUNK = 1024
# Shorter shared prefixes are not worth a separate forward pass and a cache copy.
_MIN_PREFIX = 16
# A job joins a batch only if it fills at least this share of the batch's padded width. Padding
# is computed like real tokens, and on a CPU, where one sequence already keeps the cores busy,
# it buys nothing: padding the suffixes of one demo to the longest made the wICI workload 1.34x
# slower than this rule (and 1.15x slower than no batching at all).
_MIN_FILL = 0.8
# Batches without a shared prefix are handed out this many at a time.
_SINGLES_PER_UNIT = 4


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
    groups: dict[tuple[int, ...], list[_Job]]  # jobs by shared prefix
    singles: list[_Job]  # jobs with no shared prefix
    n_jobs: int

    @property
    def tokens(self) -> int:
        """Tokens run: each shared prefix once, then every job's own tokens."""
        shared = sum(len(prefix) for prefix in self.groups)
        suffixes = sum(j.length - j.prefix for group in self.groups.values() for j in group)
        return shared + suffixes + sum(j.length for j in self.singles)


@dataclass(frozen=True)
class Unit:
    """Work one executor worker does at once: batches that share `prefix` (None: no prefix)."""

    prefix: tuple[int, ...] | None
    batches: list[list[_Job]]

    @property
    def tokens(self) -> int:
        skip = len(self.prefix) if self.prefix is not None else 0
        return skip + sum(job.length - skip for batch in self.batches for job in batch)


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
        max_batch_tokens: int = 8192,
        max_length: int = 2048,
        show_progress: bool = True,
        reuse_prefix: bool = True,
        store_path: str | Path | None = None,
        chunk: int = 65_536,
        executor: Executor | None = None,
    ) -> None:
        self.model = loaded.model
        self.model_id = loaded.model_id
        self.template = template
        self.max_batch_tokens = max_batch_tokens
        self.max_length = max_length
        self.show_progress = show_progress
        self.reuse_prefix = reuse_prefix
        self._base = self.model.base_model
        self._head = self.model.get_output_embeddings()
        # transformers 5.2x renamed past_key_values to cache (the old name warns, then goes).
        parameters = inspect.signature(self._base.forward).parameters
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self.device = next(self.model.parameters()).device
        dtype = str(self.model.dtype).removeprefix("torch.")
        namespace = f"{self.model_id}|{template.fingerprint}|{dtype}|{max_length}"
        self.executor = executor or LocalExecutor()
        # Another backend's numbers differ by kernel rounding: they get their own store entries.
        backend = getattr(self.executor, "backend", "hf")
        namespace += f"|{backend}" if backend != "hf" else ""
        self.store = ResultStore(store_path, namespace) if store_path is not None else None
        self.chunk = chunk
        # truncated: answers whose sequence was longer than max_length (context cut on the left).
        self.stats: dict[str, int] = {
            "requests": 0, "stored": 0, "computed": 0, "tokens": 0, "truncated": 0
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
        answers = plan.answers
        self.stats["requests"] += len(requests)
        self.stats["stored"] += len(answers) - plan.n_jobs
        self.stats["computed"] += plan.n_jobs
        self.flops += self._flops(plan)
        bar = tqdm(
            total=plan.tokens,
            desc=f"{desc} ({plan.n_jobs} requests)",
            unit="tok",
            unit_scale=True,
            # None hides the bar when stderr is not a terminal (CI logs, redirected output).
            disable=None if self.show_progress else True,
        )
        with bar:
            for unit, logprobs in self.executor.run(self, self._units(plan)):
                for batch, batch_logprobs in zip(unit.batches, logprobs, strict=True):
                    self._answer(batch, batch_logprobs, answers, plan.store_keys)
                self._count(bar, unit.tokens)
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
                total.tokens + plan.tokens,
                total.flops + self._flops(plan),
            )
        return total

    def _flops(self, plan: _Plan) -> float:
        """Model FLOPs of a plan: each shared prefix once, then every job's own tokens, with the
        LM head at target positions only (padding is not useful work and is not counted)."""
        flops = sum(self._flop_model.forward(len(prefix)) for prefix in plan.groups)
        for job in [j for group in plan.groups.values() for j in group] + plan.singles:
            flops += self._flop_model.forward(job.length - job.prefix, job.prefix)
            flops += self._flop_model.head(len(job.target))
        return flops

    def _plan(self, requests: Sequence[LogprobRequest]) -> _Plan:
        """Deduplicate, answer what the store holds, tokenise the rest and group by prefix."""
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
        jobs = [
            self._job(slot, self.template.encode(firsts[slot]))
            for slot in range(len(unique))
            if answers[slot] is None
        ]
        groups, singles = self._group_by_prefix(jobs)
        return _Plan(order, answers, store_keys, groups, singles, len(jobs))

    def _units(self, plan: _Plan) -> list[Unit]:
        """The plan as units of work an executor can hand out: one per shared prefix (its cache
        is computed once, where the unit runs), and the rest in runs of a few batches."""
        units = [
            Unit(prefix, self._batches(group, skip=len(prefix)))
            for prefix, group in plan.groups.items()
        ]
        singles = self._batches(plan.singles, skip=0)
        for start in range(0, len(singles), _SINGLES_PER_UNIT):
            units.append(Unit(None, singles[start : start + _SINGLES_PER_UNIT]))
        return units

    def compute(self, unit: Unit) -> list[list[float]]:
        """Sum of target log-probs of every job of every batch of `unit`."""
        cache = self._prefix_cache(unit.prefix) if unit.prefix is not None else None
        return [self._score(batch, cache) for batch in unit.batches]

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

    def _count(self, bar: tqdm, tokens: int) -> None:
        self.stats["tokens"] += tokens
        bar.update(tokens)

    def _job(self, index: int, encoded: Encoded) -> _Job:
        context, target = encoded.context_ids, encoded.target_ids
        target = target[: self.max_length - 1]
        # Drop context from the left: the demos go first, then earlier turns, never the target.
        room = self.max_length - len(target)
        dropped = max(0, len(context) - room) + len(encoded.target_ids) - len(target)
        prefix = encoded.prefix_len
        if len(context) > room:
            context = context[len(context) - room :]
            prefix = 0
        # At least one context token stays out of the prefix: it predicts the first target token.
        prefix = min(prefix, len(context) - 1) if self.reuse_prefix else 0
        if prefix < _MIN_PREFIX:
            prefix = 0
        return _Job(index, context, target, dropped, prefix)

    def _group_by_prefix(
        self, jobs: list[_Job]
    ) -> tuple[dict[tuple[int, ...], list[_Job]], list[_Job]]:
        """Jobs by shared prefix, and the jobs with none. A job takes the prefix path even when
        no other pending job shares it, so its numbers never depend on what else is pending
        (a resumed run computes exactly what the uninterrupted run did)."""
        groups: dict[tuple[int, ...], list[_Job]] = defaultdict(list)
        singles: list[_Job] = []
        for job in jobs:
            if job.prefix:
                groups[job.context[: job.prefix]].append(job)
            else:
                singles.append(job)
        return groups, singles

    def _batches(self, jobs: list[_Job], skip: int) -> list[list[_Job]]:
        """Longest first; `skip` leading tokens of each job are already in a cache."""
        batches: list[list[_Job]] = []
        for job in sorted(jobs, key=lambda j: -j.length):
            # Sorted longest first, so the first job of a batch sets its padded width.
            width = batches[-1][0].length - skip if batches else 0
            fits = (len(batches[-1]) + 1) * width <= self.max_batch_tokens if batches else False
            if fits and job.length - skip >= _MIN_FILL * width:
                batches[-1].append(job)
            else:
                batches.append([job])
        return batches

    @torch.inference_mode()
    def _prefix_cache(self, prefix: tuple[int, ...]) -> DynamicCache:
        out = self._base(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
        return getattr(out, self._cache_arg)

    @torch.inference_mode()
    def _score(self, batch: list[_Job], prefix: DynamicCache | None) -> list[float]:
        """Sum of target log-probs per job; with `prefix`, each job's first job.prefix tokens
        are taken from that cache and only the rest runs."""
        skip = batch[0].prefix if prefix is not None else 0
        width = batch[0].length - skip
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        attention = torch.zeros((len(batch), skip + width), dtype=torch.long)
        attention[:, :skip] = 1
        rows, cols, targets = [], [], []
        for i, job in enumerate(batch):
            tokens = (job.context + job.target)[skip:]
            input_ids[i, : len(tokens)] = torch.tensor(tokens)
            attention[i, skip : skip + len(tokens)] = 1
            # Position p predicts token p + 1:
            #   tokens   c0 c1 c2 | t0 t1 t2      (| = end of context)
            #   hidden   h0 h1 h2   h3 h4         h2 predicts t0, h3 t1, h4 t2; h5 is unused
            # (positions counted after the `skip` cached tokens).
            first = len(job.context) - skip - 1
            rows += [i] * len(job.target)
            cols += range(first, first + len(job.target))
            targets += job.target
        kwargs = {}
        if prefix is not None:
            positions = torch.arange(skip, skip + width, device=self.device)
            kwargs = {
                self._cache_arg: _expanded(prefix, len(batch), self.model.config),
                "position_ids": positions.expand(len(batch), -1),
            }
        hidden = self._base(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
        )
        rows_t = torch.tensor(rows, device=self.device)
        picked = hidden.last_hidden_state[rows_t, torch.tensor(cols, device=self.device)]
        target_ids = torch.tensor(targets, device=self.device)
        token_logprobs = torch.empty(len(targets), dtype=torch.float32, device=self.device)
        for start in range(0, len(targets), _HEAD_CHUNK):
            stop = start + _HEAD_CHUNK
            logits = self._head(picked[start:stop]).float()
            token_logprobs[start:stop] = (
                torch.log_softmax(logits, dim=-1).gather(1, target_ids[start:stop, None]).squeeze(1)
            )
        sums = torch.zeros(len(batch), dtype=torch.float64, device=self.device)
        sums.index_add_(0, rows_t, token_logprobs.double())
        return sums.tolist()


def _expanded(cache: DynamicCache, batch: int, config: object) -> DynamicCache:
    """A cache holding `batch` views of a one-row cache; the forward pass concatenates new keys
    onto these views, so the shared prefix itself is never copied or modified."""
    return DynamicCache(
        [
            (layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
            for layer in cache.layers
        ],
        config=config,
    )
