"""The engine: answers log-likelihood requests in batches, in request order.

Every method's cost is here, so every speed trick lives here once:
- identical requests (same key) are computed once;
- requests are sorted longest first (an out-of-memory shows on the first batch, and the ETA is
  pessimistic rather than optimistic) and packed into batches by a padded-token budget;
- the LM head and log-softmax run only at the positions that predict target tokens, never over
  the whole padded batch (on 2 CPU cores the full-vocabulary logits cost more than batching saves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from iclselect.lm.model import LoadedModel
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.lm.templates import Encoded, Template

# Rows of the (positions x vocabulary) logit matrix computed at once: bounds memory at
# about 200 MB for a 50k vocabulary in float32, whatever the batch size.
_HEAD_CHUNK = 1024


@dataclass(frozen=True)
class _Job:
    index: int  # position among the unique requests
    context: tuple[int, ...]
    target: tuple[int, ...]
    truncated: int

    @property
    def length(self) -> int:
        return len(self.context) + len(self.target)


class Engine:
    """Teacher-forced log-likelihood of request targets under one model and template."""

    def __init__(
        self,
        loaded: LoadedModel,
        template: Template,
        max_batch_tokens: int = 8192,
        max_length: int = 2048,
        show_progress: bool = True,
    ) -> None:
        self.model = loaded.model
        self.model_id = loaded.model_id
        self.template = template
        self.max_batch_tokens = max_batch_tokens
        self.max_length = max_length
        self.show_progress = show_progress
        self._base = self.model.base_model
        self._head = self.model.get_output_embeddings()

    def loglikelihood(
        self, requests: Sequence[LogprobRequest], desc: str = "scoring"
    ) -> list[LogprobResult]:
        """One result per request, in the same order; a progress bar in tokens on a terminal."""
        unique: dict[str, int] = {}
        order = [unique.setdefault(r.key(), len(unique)) for r in requests]
        firsts: dict[int, LogprobRequest] = {}
        for request, slot in zip(requests, order, strict=True):
            firsts.setdefault(slot, request)
        jobs = [self._job(slot, self.template.encode(firsts[slot])) for slot in range(len(unique))]
        answers: list[LogprobResult | None] = [None] * len(jobs)
        bar = tqdm(
            total=sum(job.length for job in jobs),
            desc=f"{desc} ({len(jobs)} requests)",
            unit="tok",
            unit_scale=True,
            # None hides the bar when stderr is not a terminal (CI logs, redirected output).
            disable=None if self.show_progress else True,
        )
        with bar:
            for batch in self._batches(jobs):
                for job, logprob in zip(batch, self._score_batch(batch), strict=True):
                    answers[job.index] = LogprobResult(logprob, len(job.target), job.truncated)
                bar.update(sum(job.length for job in batch))
        missing = [i for i, a in enumerate(answers) if a is None]
        assert not missing, f"engine lost {len(missing)} requests"
        return [answers[slot] for slot in order]

    def token_count(self, requests: Sequence[LogprobRequest]) -> int:
        """Tokens the engine will run for these requests (after deduplication)."""
        seen = {r.key(): r for r in requests}
        return sum(self._job(0, self.template.encode(r)).length for r in seen.values())

    def _job(self, index: int, encoded: Encoded) -> _Job:
        context, target = encoded.context_ids, encoded.target_ids
        target = target[: self.max_length - 1]
        # Drop context from the left: the demos go first, then earlier turns, never the target.
        room = self.max_length - len(target)
        dropped = max(0, len(context) - room) + len(encoded.target_ids) - len(target)
        if len(context) > room:
            context = context[len(context) - room :]
        return _Job(index, context, target, dropped)

    def _batches(self, jobs: list[_Job]) -> list[list[_Job]]:
        batches: list[list[_Job]] = []
        for job in sorted(jobs, key=lambda j: -j.length):
            # Sorted longest first, so the first job of a batch sets its padded width.
            if batches and (len(batches[-1]) + 1) * batches[-1][0].length <= self.max_batch_tokens:
                batches[-1].append(job)
            else:
                batches.append([job])
        return batches

    @torch.inference_mode()
    def _score_batch(self, batch: list[_Job]) -> list[float]:
        width = batch[0].length
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols, targets, owner = [], [], [], []
        for i, job in enumerate(batch):
            tokens = job.context + job.target
            input_ids[i, : len(tokens)] = torch.tensor(tokens)
            attention[i, : len(tokens)] = 1
            # Position p predicts token p + 1:
            #   tokens   c0 c1 c2 | t0 t1 t2      (| = end of context)
            #   hidden   h0 h1 h2   h3 h4         h2 predicts t0, h3 t1, h4 t2; h5 is unused
            first = len(job.context) - 1
            rows += [i] * len(job.target)
            cols += range(first, first + len(job.target))
            targets += job.target
            owner += [i] * len(job.target)
        hidden = self._base(input_ids=input_ids, attention_mask=attention).last_hidden_state
        picked = hidden[torch.tensor(rows), torch.tensor(cols)]
        target_ids = torch.tensor(targets)
        token_logprobs = torch.empty(len(targets), dtype=torch.float32)
        for start in range(0, len(targets), _HEAD_CHUNK):
            stop = start + _HEAD_CHUNK
            logits = self._head(picked[start:stop]).float()
            token_logprobs[start:stop] = (
                torch.log_softmax(logits, dim=-1).gather(1, target_ids[start:stop, None]).squeeze(1)
            )
        sums = torch.zeros(len(batch), dtype=torch.float64)
        sums.index_add_(0, torch.tensor(owner), token_logprobs.double())
        return sums.tolist()
