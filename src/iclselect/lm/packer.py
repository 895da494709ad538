"""Tokens into forward passes: jobs grouped into trees by shared prefix, trees packed into units
(one packed row each), and a unit laid out as the row the kernel runs. Plain ints and tuples,
no torch: every rule here is testable without a model.

- A job is one distinct request, tokenised and fitted to the window.
- A tree is jobs behind one shared prefix (the same demo before many probes): the prefix runs
  once and each job's own tokens follow it in the same row, attending to its keys.
- A unit is trees laid end to end in one row up to a token budget, with no padding, largest
  first (an out-of-memory shows on the first pass, and the ETA is pessimistic, not optimistic).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from iclselect.lm.window import fit

if TYPE_CHECKING:
    from iclselect.lm.templates import Encoded

# Shorter shared prefixes are not worth a tree of their own.
MIN_PREFIX = 16


@dataclass(frozen=True)
class Job:
    index: int  # position among the distinct requests
    context: tuple[int, ...]
    target: tuple[int, ...]
    truncated: int
    prefix: int  # leading context tokens shared with other requests (0 = none)

    @property
    def length(self) -> int:
        return len(self.context) + len(self.target)


@dataclass(frozen=True)
class Tree:
    """Jobs run behind one shared prefix (empty: a job on its own)."""

    prefix: tuple[int, ...]
    jobs: tuple[Job, ...]

    @property
    def tokens(self) -> int:
        return len(self.prefix) + sum(job.length - len(self.prefix) for job in self.jobs)


@dataclass(frozen=True)
class Unit:
    """One packed forward pass: trees laid end to end in one row. Kernels compute units."""

    trees: tuple[Tree, ...]

    @property
    def jobs(self) -> list[Job]:
        return [job for tree in self.trees for job in tree.jobs]

    @property
    def tokens(self) -> int:
        return sum(tree.tokens for tree in self.trees)


@dataclass
class Layout:
    """A unit as one packed row: what the kernel feeds the model and reads back.

    segments: (start, stop, prefix_start, prefix_stop) per sequence: queries start..stop attend
    to prefix_start..prefix_stop, then causally to themselves (lm/packed.py's Segment).
    picks[k] is the row position whose hidden state predicts targets[k], a token of job
    owners[k] (its place in unit.jobs)."""

    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[tuple[int, int, int, int]] = field(default_factory=list)
    picks: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    jobs: int = 0


def to_job(index: int, encoded: Encoded, max_length: int, reuse_prefix: bool = True) -> Job:
    """The request `encoded` cut to fit `max_length` (context from the left), or the window its
    reference code's own cut left, with the prefix it may share with other requests (0 when
    that is too short to be worth a tree)."""
    cut = fit(encoded, encoded.max_length or max_length)
    context = encoded.context_ids[cut.context_cut :]
    target = encoded.target_ids[: len(encoded.target_ids) - cut.target_cut]
    dropped = cut.context_cut + cut.target_cut
    # A context cut on the left no longer starts with the prefix other requests share.
    prefix = 0 if cut.context_cut else encoded.prefix_len
    # At least one context token stays out of the prefix: it predicts the first target token.
    prefix = min(prefix, len(context) - 1) if reuse_prefix else 0
    if prefix < MIN_PREFIX:
        prefix = 0
    return Job(index, context, target, dropped, prefix)


def pack(jobs: Sequence[Job], max_tokens: int) -> list[Unit]:
    """Jobs as packed forward passes of at most `max_tokens` tokens (a tree larger than that
    is split, each part running its prefix again), largest trees first."""
    groups, singles = _group_by_prefix(jobs)
    trees = [Tree((), (job,)) for job in singles]
    for prefix, group in groups.items():
        trees += _split(prefix, group, max_tokens)
    trees.sort(key=lambda tree: -tree.tokens)
    units: list[Unit] = []
    row: list[Tree] = []
    size = 0
    for tree in trees:
        if row and size + tree.tokens > max_tokens:
            units.append(Unit(tuple(row)))
            row, size = [], 0
        row.append(tree)
        size += tree.tokens
    return [*units, Unit(tuple(row))] if row else units


def pending(unit: Unit, answered: Sequence[object | None]) -> Unit:
    """`unit` without the jobs already answered (answered[job.index] not None), and without
    trees left with none."""
    trees = [
        Tree(t.prefix, tuple(j for j in t.jobs if answered[j.index] is None)) for t in unit.trees
    ]
    return Unit(tuple(tree for tree in trees if tree.jobs))


def halves(unit: Unit) -> tuple[Unit, Unit]:
    """`unit` as two passes of about half its tokens, its jobs in the same order: whole trees
    where it has several, else its one tree's jobs split behind two copies of the prefix."""
    if len(unit.trees) > 1:
        sizes = [tree.tokens for tree in unit.trees]
        cut = _cut(sizes)
        return Unit(unit.trees[:cut]), Unit(unit.trees[cut:])
    (tree,) = unit.trees
    cut = _cut([job.length - len(tree.prefix) for job in tree.jobs])
    return Unit((Tree(tree.prefix, tree.jobs[:cut]),)), Unit((Tree(tree.prefix, tree.jobs[cut:]),))


def layout(unit: Unit) -> Layout:
    """The packed row of `unit`: each tree's prefix once, then each job's own tokens."""
    row = Layout()
    ids, positions = row.ids, row.positions
    for tree in unit.trees:
        start, skip = len(ids), len(tree.prefix)
        if skip:
            ids += tree.prefix
            positions += range(skip)
            row.segments.append((start, start + skip, 0, 0))
        for job in tree.jobs:
            first = len(ids)
            ids += (job.context + job.target)[skip:]
            positions += range(skip, job.length)
            row.segments.append((first, len(ids), start, start + skip))
            # Position p predicts token p + 1:
            #   tokens   c0 c1 c2 | t0 t1 t2      (| = end of context)
            #   hidden   h0 h1 h2   h3 h4         h2 predicts t0, h3 t1, h4 t2; h5 is unused
            # (positions counted after the prefix, which the tree ran once).
            predicting = first + len(job.context) - skip - 1
            row.picks += range(predicting, predicting + len(job.target))
            row.targets += job.target
            row.owners += [row.jobs] * len(job.target)
            row.jobs += 1
    return row


def _group_by_prefix(jobs: Sequence[Job]) -> tuple[dict[tuple[int, ...], list[Job]], list[Job]]:
    """Jobs by shared prefix, and the jobs with none. A job takes the prefix path even when
    no other job shares it, so its tokens, positions and attention never depend on what
    else is asked."""
    groups: dict[tuple[int, ...], list[Job]] = defaultdict(list)
    singles: list[Job] = []
    for job in jobs:
        if job.prefix:
            groups[job.context[: job.prefix]].append(job)
        else:
            singles.append(job)
    return groups, singles


def _split(prefix: tuple[int, ...], jobs: list[Job], max_tokens: int) -> list[Tree]:
    """Trees of at most `max_tokens` tokens (and at least one job each)."""
    trees: list[Tree] = []
    part: list[Job] = []
    size = len(prefix)
    for job in sorted(jobs, key=lambda j: -j.length):
        own = job.length - len(prefix)
        if part and size + own > max_tokens:
            trees.append(Tree(prefix, tuple(part)))
            part, size = [], len(prefix)
        part.append(job)
        size += own
    return [*trees, Tree(prefix, tuple(part))]


def _cut(sizes: list[int]) -> int:
    """Where to cut `sizes` (2 or more) so both sides are non-empty and about equal."""
    total, running = sum(sizes), 0
    for index, size in enumerate(sizes[:-1], start=1):
        running += size
        if 2 * running >= total:
            return index
    return len(sizes) - 1
