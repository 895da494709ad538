"""The engine's caching layer: identical requests asked once, answers from the result store,
new answers committed a forward pass at a time, progress and counts of the work.

`distinct` finds the distinct requests (pure: the engine runs it on its tokenising thread);
`lookup` says which of them are still to compute; `answer` takes the computed
(unit, log-probs) pairs as the executor yields them, commits each pass to the store (a run
killed now loses at most the passes in flight, and a rerun computes nothing twice), and returns
one answer per request in request order, asserting that none was lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from iclselect.infra.progress import Progress
from iclselect.lm.packer import Job, Unit
from iclselect.lm.requests import LogprobRequest, LogprobResult
from iclselect.lm.store import ResultStore


@dataclass
class Distinct:
    order: list[int]  # request -> its slot among the distinct requests
    requests: list[LogprobRequest]  # per slot: the first request with that key
    keys: list[str]  # per slot: the request's content key


def distinct(requests: Sequence[LogprobRequest]) -> Distinct:
    """The distinct requests among `requests`, by content key, each key computed once."""
    slots: dict[str, int] = {}
    order: list[int] = []
    firsts: list[LogprobRequest] = []
    for request in requests:
        slot = slots.setdefault(request.key(), len(slots))
        if slot == len(firsts):
            firsts.append(request)
        order.append(slot)
    return Distinct(order, firsts, list(slots))


@dataclass
class Lookup:
    order: list[int]  # request -> its slot among the distinct requests
    requests: list[LogprobRequest]  # per slot: the first request with that key
    answers: list[LogprobResult | None]  # per slot; filled from the store, then by computing
    store_keys: list[str]  # per slot, when there is a store

    @property
    def missing(self) -> int:
        """Distinct requests the store did not answer."""
        return sum(1 for answer in self.answers if answer is None)


class Cache:
    """Deduplication and the result store in front of a kernel, with the engine's counts."""

    def __init__(
        self, store_path: str | Path | None, namespace: str, show_progress: bool = True
    ) -> None:
        self.store = ResultStore(store_path, namespace) if store_path is not None else None
        self.show_progress = show_progress
        # truncated: answers whose sequence was longer than max_length (context cut on the left).
        # oom_splits: forward passes that ran out of device memory and were split in two (the
        # local kernel counts them here).
        self.stats: dict[str, int] = {
            "requests": 0,
            "stored": 0,
            "computed": 0,
            "tokens": 0,
            "truncated": 0,
            "oom_splits": 0,
        }

    def lookup(self, found: Distinct) -> Lookup:
        """The distinct requests `found`, each answered from the store if it holds it."""
        answers: list[LogprobResult | None] = [None] * len(found.keys)
        store_keys = [self.store.key(k) for k in found.keys] if self.store is not None else []
        if self.store is not None:
            stored = self.store.get(store_keys)
            for slot, key in enumerate(store_keys):
                answers[slot] = stored.get(key)
        return Lookup(found.order, found.requests, answers, store_keys)

    def answer(
        self,
        lookup: Lookup,
        units: list[Unit],
        computed: Iterable[tuple[Unit, list[float]]],
        desc: str,
    ) -> list[LogprobResult]:
        """One answer per request of `lookup`, in request order: stored ones, and the units'
        jobs as `computed` yields them (each committed to the store as it comes)."""
        answers, missing = lookup.answers, lookup.missing
        stored = len(answers) - missing
        self.stats["requests"] += len(lookup.order)
        self.stats["stored"] += stored
        self.stats["computed"] += missing
        tokens = sum(unit.tokens for unit in units)
        bar = Progress(
            f"{desc} ({missing} requests)", tokens, len(answers), stored, self.show_progress
        )
        with bar:
            for unit, logprobs in computed:
                self._commit(unit.jobs, logprobs, lookup)
                self.stats["tokens"] += unit.tokens
                bar.update(unit.tokens, len(unit.jobs))
        lost = [i for i, a in enumerate(answers) if a is None]
        assert not lost, f"engine lost {len(lost)} requests"
        return [answers[slot] for slot in lookup.order]  # type: ignore[misc]

    def count_truncated(self, results: Iterable[LogprobResult]) -> None:
        self.stats["truncated"] += sum(1 for r in results if r.truncated)

    def _commit(self, jobs: list[Job], logprobs: list[float], lookup: Lookup) -> None:
        results = [
            LogprobResult(lp, len(j.target), j.truncated)
            for j, lp in zip(jobs, logprobs, strict=True)
        ]
        for job, result in zip(jobs, results, strict=True):
            lookup.answers[job.index] = result
        if self.store is not None:
            # Committed per pass: a run killed now loses at most the passes in flight.
            keys = lookup.store_keys
            self.store.put((keys[job.index], r) for job, r in zip(jobs, results, strict=True))

    def close(self) -> None:
        """Close the store (idempotent)."""
        if self.store is not None:
            self.store.close()
