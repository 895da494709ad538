"""The packer without a model: jobs into trees into units, halving, and a unit's row layout."""

from __future__ import annotations

from iclselect.lm.packer import MIN_PREFIX, Job, Tree, Unit, halves, layout, pack, pending, to_job
from iclselect.lm.templates import Encoded

PREFIX = tuple(range(1000, 1000 + MIN_PREFIX))


def probe(index: int, own: int, target: int = 2, prefix: tuple[int, ...] = PREFIX) -> Job:
    """A job of `own` context tokens after `prefix`, then `target` target tokens."""
    context = prefix + tuple(range(index * 100, index * 100 + own))
    return Job(index, context, tuple(range(50, 50 + target)), 0, len(prefix))


def test_jobs_sharing_a_prefix_form_one_tree_and_rows_respect_the_budget():
    jobs = [probe(i, 4) for i in range(3)] + [probe(3, 10, prefix=())]
    (unit,) = pack(jobs, 1000)
    assert [len(tree.prefix) for tree in unit.trees] == [MIN_PREFIX, 0]  # largest first
    assert unit.tokens == MIN_PREFIX + 3 * 6 + 12
    units = pack(jobs, 30)  # the tree is split, each part running the prefix again
    assert all(u.tokens <= 30 for u in units)
    assert sorted(j.index for u in units for j in u.jobs) == [0, 1, 2, 3]
    assert sum(1 for u in units for t in u.trees if t.prefix) == 2


def test_to_job_keeps_short_prefixes_out_and_one_context_token_to_predict():
    encoded = Encoded(tuple(range(40)), (7, 8), prefix_len=39)
    assert to_job(0, encoded, 2048).prefix == 39
    assert to_job(0, encoded, 2048, reuse_prefix=False).prefix == 0
    assert to_job(0, Encoded(tuple(range(40)), (7,), prefix_len=MIN_PREFIX - 1), 2048).prefix == 0
    cut = to_job(0, encoded, 30)  # context cut on the left: the prefix is gone
    assert (cut.prefix, cut.truncated, len(cut.context)) == (0, 12, 28)


def test_halves_split_trees_then_jobs_and_keep_job_order():
    jobs = (probe(0, 8), probe(1, 8), probe(2, 8))
    one_tree = Unit((Tree(PREFIX, jobs),))
    left, right = halves(one_tree)
    assert [j.index for j in left.jobs + right.jobs] == [0, 1, 2]
    assert left.trees[0].prefix == right.trees[0].prefix == PREFIX
    two = Unit((Tree((), (jobs[0],)), Tree((), (jobs[1],))))
    assert halves(two) == (Unit(two.trees[:1]), Unit(two.trees[1:]))


def test_pending_drops_answered_jobs_and_empty_trees():
    unit = Unit((Tree(PREFIX, (probe(0, 4), probe(1, 4))), Tree((), (probe(2, 4, prefix=()),))))
    left = pending(unit, [None, "done", "done"])
    assert [j.index for j in left.jobs] == [0] and len(left.trees) == 1


def test_layout_runs_the_prefix_once_and_picks_the_predicting_positions():
    """Prefix p0..p15 at 0..15; job 0 (own c0 c1, targets t0 t1) at 16..19; job 1 likewise
    at 20..23. h17 predicts t0 of job 0 (the last context token), h18 its t1."""
    unit = Unit((Tree(PREFIX, (probe(0, 2), probe(1, 2))),))
    row = layout(unit)
    n = MIN_PREFIX
    assert row.ids[:n] == list(PREFIX) and len(row.ids) == n + 8
    assert row.positions == [*range(n), *range(n, n + 4), *range(n, n + 4)]
    assert row.segments == [(0, n, 0, 0), (n, n + 4, 0, n), (n + 4, n + 8, 0, n)]
    assert row.picks == [n + 1, n + 2, n + 5, n + 6]
    assert row.targets == [50, 51, 50, 51] and row.owners == [0, 0, 1, 1] and row.jobs == 2
