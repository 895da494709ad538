"""A dry run drives each method's own rounds against the cost-only answerer: its request count
must be the run's, and its tokens too wherever a round does not depend on earlier answers. wICI's
difficult probes do: the dry run picks the longest member of each cluster, so its tokens bound
the run's from above (and equal them with top-k probes, which depend on no answer)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import pool_of, samples_from, shortest

from iclselect.lm import Engine, Template
from iclselect.methods.registry import get
from iclselect.run.estimate import planned_cost, token_counter
from iclselect.run.runner import EngineAnswerer, drive, planned_rounds

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


def test_a_large_pool_is_planned_on_a_sample_and_scaled(tmp_path, demo_rows, monkeypatch):
    import iclselect.run.estimate as estimate
    from iclselect.run.config import RunConfig

    data = tmp_path / "pool.json"
    data.write_text(json.dumps(shortest(demo_rows, 40)), encoding="utf-8")

    def planned(sample: int) -> dict[str, int]:
        monkeypatch.setattr(estimate, "PLAN_SAMPLE", sample)
        config = RunConfig(
            data=str(data),
            out=str(tmp_path / "out"),
            method="ifd",
            quiet=True,
            store=str(tmp_path / f"store{sample}.sqlite"),
        )
        text = estimate.dry_run(config)
        assert "dry run: 40 samples, method ifd" in text
        assert ("planned on a seeded sample of 10 of the 40 rows" in text) == (sample == 10)
        requests = re.search(r"requests: (\d+)", text)
        tokens = re.search(r"tokens to run: ~([\d,]+)", text)
        return {"requests": int(requests[1]), "tokens": int(tokens[1].replace(",", ""))}

    whole, sampled = planned(estimate.PLAN_SAMPLE), planned(10)
    assert sampled["requests"] == whole["requests"] == 80  # IFD: two requests a row, exactly
    # Tokens are the sample's mean scaled: within 35% of the whole plan on 10 of 40 rows.
    assert sampled["tokens"] == pytest.approx(whole["tokens"], rel=0.35)
    assert sampled["tokens"] != whole["tokens"]  # it did plan on the sample
