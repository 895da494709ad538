"""A dry run drives each method's own rounds against the cost-only answerer: its request count
must be the run's, and its tokens too wherever a round does not depend on earlier answers. wICI's
difficult probes do: the dry run picks the longest member of each cluster, so its tokens bound
the run's from above (and equal them with top-k probes, which depend on no answer)."""

from __future__ import annotations

import pytest
from conftest import pool_of, samples_from, shortest

from iclselect.estimate import planned_cost, token_counter
from iclselect.lm import Engine, Template
from iclselect.methods.registry import get
from iclselect.runner import EngineAnswerer, drive, planned_rounds

CASES = [
    ("wici", {}),
    ("wici", {"probes": "topk"}),
    ("miwv", {}),
    ("ifd", {}),
    ("nuggets", {"anchors": 3}),
    ("perplexity", {}),
    ("icon", {"selector": "none"}),
]


@pytest.fixture(scope="module")
def setting(demo_rows, embedder, lm):
    pool = pool_of(samples_from(shortest(demo_rows, 8)), embedder)
    return pool, Engine(lm, Template("chat", lm.tokenizer), show_progress=False)


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}{o}" for n, o in CASES])
def test_dry_run_plans_what_the_run_computes(setting, short_assessment, name, options):
    pool, engine = setting
    method = get(name)
    if name == "icon":
        options = {**options, "assessment": str(short_assessment)}
    config = method.configure(options)
    planned = planned_cost(engine, planned_rounds(method, pool, config, token_counter(engine)))
    answerer = EngineAnswerer(engine)
    drive(method, pool, config, answerer)
    assert answerer.stats["requests"] == planned.requests
    if name == "wici" and config.probes == "difficult":
        assert answerer.stats["tokens"] <= planned.tokens
    else:
        assert answerer.stats["tokens"] == planned.tokens
