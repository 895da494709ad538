"""bench quality: eval sets disjoint from the pool, seeded runs repeat exactly, and an arm
killed mid-training resumes to the same numbers. Real model, real rows, tiny sizes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import shortest, write_json

from iclselect.bench.quality import QualityConfig, markdown, run_quality
from iclselect.bench.quality.stats import Interval
from iclselect.io import InputError
from iclselect.tune.evalsets import check_disjoint, final_number, held_out, load_eval_set

# 12 pool rows, 3 per subset (one optimizer step), the whole pool in 3 steps, fp32, a
# checkpoint after every step, 4 held-out rows (a fifth of the 20-row file), no eval files.
TINY = {
    "pool_rows": 12,
    "budgets": (0.25,),
    "seeds": 2,
    "heldout": 8,
    "eval_files": (),
    "generate_tokens": 0,
    "batch_size": 4,
    "precision": "fp32",
    "checkpoint_every": 1,
    "max_length": 256,
}


@pytest.fixture(scope="module")
def tiny_pool(demo_rows, tmp_path_factory) -> Path:
    return write_json(tmp_path_factory.mktemp("pool") / "pool.json", shortest(demo_rows, 20))


def tiny_config(pool: Path, out: Path, store: Path | None = None) -> QualityConfig:
    return QualityConfig(
        out=str(out),
        pool=str(pool),
        methods=("longest",),
        quiet=True,
        overrides=dict(TINY),
        store=str(store) if store else None,
    )


@pytest.fixture(scope="module")
def first_run(tiny_pool, tmp_path_factory):
    return run_quality(tiny_config(tiny_pool, tmp_path_factory.mktemp("first")))


def numbers(summary: dict) -> list[tuple]:
    return [
        (a["arm"], a["pool_rows"], a["eval"], a.get("train", {}).get("losses"))
        for a in summary["arms"]
    ]


def test_same_seed_gives_identical_subsets_and_eval_numbers(first_run, tiny_pool, tmp_path):
    again = run_quality(tiny_config(tiny_pool, tmp_path / "again", tmp_path / "other.sqlite"))
    names = [a["arm"] for a in first_run.summary["arms"]]
    assert names == ["untuned", "longest@25%", "random-s0@25%", "random-s1@25%", "full"]
    # fp32 on the same machine: bit-identical, not merely close.
    assert numbers(again.summary) == numbers(first_run.summary)
    random_rows = [a["pool_rows"] for a in first_run.summary["arms"] if a["method"] == "random"]
    assert random_rows[0] != random_rows[1]  # the seeds draw different subsets
    longest = first_run.summary["arms"][1]
    assert longest["mean_response_chars"] >= max(
        a["mean_response_chars"] for a in first_run.summary["arms"][2:4]
    )
    for arm in first_run.summary["arms"]:
        for values in arm["eval"].values():
            # The set's number is the mean of the per-item values the bootstrap resamples.
            assert math.isfinite(values["nll"]) and len(values["item_nll"]) == values["n"]
            assert values["nll"] == pytest.approx(sum(values["item_nll"]) / values["n"])


def test_outputs_table_csv_json_and_plot(first_run):
    out = {path.name: path for path in first_run.files}
    assert set(out) == {"quality.json", "quality.md", "quality.csv", "quality.png"}
    assert out["quality.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = out["quality.md"].read_text()
    assert "| random@25% (mean ± sd, 2 seeds) | 3 |" in table
    saved = json.loads(out["quality.json"].read_text())
    (versus,) = [c for c in saved["comparisons"] if c["set"] == "pool-heldout"]
    assert (versus["arm"], versus["reference"], versus["reference_arms"]) == (
        "longest@25%",
        "random",
        2,
    )
    assert versus["low"] <= versus["gain"] <= versus["high"]
    shown = Interval(versus["gain"], versus["low"], versus["high"]).text()
    assert f"| longest@25% | {shown}" in table
    assert "**Recommendation.** " + saved["recommendation"]["text"] in table
    rows = out["quality.csv"].read_text().splitlines()
    assert rows[0].startswith("arm,method,of,budget,seed,rows,mean_response_chars,train_seconds")
    assert "pool-heldout.nll.vs_random_low" in rows[0]
    assert len(rows) == 1 + 5
    assert saved["eval_sets"][0]["disjoint_from_pool"] is True
    assert markdown(saved) == first_run.table


def test_finished_arms_are_read_back_not_rerun(first_run, tiny_pool):
    out = Path(first_run.summary["config"]["out"])
    started = time.perf_counter()
    again = run_quality(tiny_config(tiny_pool, out))
    assert numbers(again.summary) == numbers(first_run.summary)
    assert time.perf_counter() - started < 60  # no training: every arm is read back


def test_killed_arm_resumes_from_its_checkpoint(first_run, tiny_pool, tmp_path):
    out = tmp_path / "killed"
    script = (
        "from iclselect.bench.quality import QualityConfig, run_quality\n"
        f"run_quality(QualityConfig(**{asdict(tiny_config(tiny_pool, out))!r}))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    deadline = time.monotonic() + 300
    checkpoint = None
    while checkpoint is None and time.monotonic() < deadline and process.poll() is None:
        checkpoint = next((out / "arms" / "full").glob("*/checkpoint.pt"), None)
        time.sleep(0.05)
    assert checkpoint is not None, "the full arm never wrote a checkpoint"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not next((out / "arms" / "full").glob("*/result.json"), None)

    resumed = run_quality(tiny_config(tiny_pool, out))
    full = resumed.summary["arms"][-1]
    assert full["train"]["resumed_from"] >= 1
    assert numbers(resumed.summary) == numbers(first_run.summary)
    assert not list((out / "arms" / "full").glob("*/checkpoint.pt"))  # removed when done


def test_an_eval_set_overlapping_the_pool_is_refused(tiny_pool, tmp_path, demo_rows):
    rows = shortest(demo_rows, 20)
    overlap = write_json(tmp_path / "overlap.json", [rows[20 - 1], dict(rows[3], output="x")])
    config = tiny_config(tiny_pool, tmp_path / "out")
    config.evals = (str(overlap),)
    with pytest.raises(InputError, match=r"overlap.json: .*1 of 2 prompts are also in the pool"):
        run_quality(config)
    assert not (tmp_path / "out" / "arms").exists()  # refused before any scoring or training


def test_disjointness_folds_case_and_spacing(tiny_pool, tmp_path):
    pool = load_eval_set(tiny_pool).items
    from iclselect.records import Sample, Turn

    samples = [
        Sample(i, (*item.prompt, Turn("assistant", item.reference)))
        for i, item in enumerate(pool[:5])
    ]
    first = pool[0].prompt[0].content
    shouted = write_json(
        tmp_path / "e.json", [{"instruction": "  " + first.upper() + " ", "output": "y"}]
    )
    with pytest.raises(InputError, match="also in the pool"):
        check_disjoint(load_eval_set(shouted), samples)
    rest = [
        Sample(i, (*item.prompt, Turn("assistant", item.reference))) for i, item in enumerate(pool)
    ]
    held = held_out(rest, samples, 100, "held", str(tiny_pool))
    # The first five are the pool's own rows (same content id): left out.
    assert check_disjoint(held, samples) == len(held.items) == len(pool) - 5


def test_eval_file_kinds(tmp_path):
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "2+2?", "answer": "2+2=4\n#### 4"}) + "\n")
    mmlu = tmp_path / "mmlu.jsonl"
    mmlu.write_text(
        json.dumps(
            {"question": "q", "choices": ["a", "b", "c", "d"], "answer": "C", "answer_index": 2}
        )
        + "\n"
    )
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        json.dumps({"instruction": "say hi", "instances": [{"input": "", "output": "hi"}]})
        + "\n"
        + json.dumps({"instruction": "list", "instances": [{"input": "x", "output": " "}]})
        + "\n"
    )
    assert load_eval_set(gsm).items[0].number == "4"
    choice = load_eval_set(mmlu).items[0]
    assert (choice.reference, choice.choices) == ("C", ("A", "B", "C", "D"))
    instruct = load_eval_set(tasks)
    assert (len(instruct.items), instruct.n_empty, instruct.n_rows) == (1, 1, 2)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("so 48+24 = 72.\n#### 72", "72"),
        ("The answer is 1,250.", "1250"),
        ("#### -3.50", "-3.5"),
        ("no digits", None),
        ("3 apples, then 7", "7"),
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_lora_arm_trains_and_merges_into_a_plain_model(demo_rows, tmp_path):
    pytest.importorskip("peft", reason="--lora needs the lora extra")
    from conftest import samples_from

    from iclselect.lm import Template, load_model
    from iclselect.tune.finetune import TrainConfig, examples, finetune

    loaded = load_model()
    before = loaded.model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    data = examples(samples_from(shortest(demo_rows, 2)), Template("chat", loaded.tokenizer), 128)
    config = TrainConfig(lora=True, lr=1e-2, batch_size=2, precision="fp32")
    model, log = finetune(loaded.model, data, config, tmp_path, show_progress=False)
    assert type(model).__name__ == type(loaded.model).__name__  # merged: no peft wrapper left
    after = model.model.layers[0].self_attn.q_proj.weight
    assert not after.equal(before)  # the merged LoRA update moved the frozen weight
    assert log.steps == 1 and len(log.losses) == 1 and math.isfinite(log.losses[0])


def test_greedy_answers_batched_equal_one_at_a_time(lm, tmp_path):
    """GSM8K exact match reads greedy answers generated in left-padded batches: padding must
    not change them."""
    from iclselect.lm import Template
    from iclselect.tune.evaluate import evaluate, generate

    rows = [
        {"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"},
        {
            "question": "Tom has 4 apples and buys 6 more. How many apples does he have now?",
            "answer": "4 + 6 = 10\n#### 10",
        },
        {"question": "Compute 7 times 8.", "answer": "#### 56"},
    ]
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    eval_set = load_eval_set(path)
    template = Template("chat", lm.tokenizer)
    batched = generate(lm, template, eval_set.items, 12)
    single = [generate(lm, template, [item], 12)[0] for item in eval_set.items]
    assert batched == single
    assert all(isinstance(text, str) and text for text in batched)
    result = evaluate(lm, template, [eval_set], 12, show_progress=False)["gsm"]
    hits = [final_number(t) == item.number for t, item in zip(batched, eval_set.items, strict=True)]
    assert result["accuracy"] == sum(hits) / 3 and result["n"] == 3


def test_a_malformed_eval_row_names_file_row_and_field(tmp_path):
    bad = tmp_path / "gsm.jsonl"
    bad.write_text(
        json.dumps({"question": "2+2?", "answer": "#### 4"})
        + "\n"
        + json.dumps({"question": "3+3?", "answer": 6})
        + "\n"
    )
    with pytest.raises(InputError, match=r"gsm.jsonl: row 1: field 'answer': missing or not a"):
        load_eval_set(bad)


def test_mmlu_choices_in_one_pass_agree_with_one_request_per_choice(lm):
    """The fast path reads the reference's NLL and all four letters off one forward pass; the
    engine path scores the reference and each letter as requests of their own. Same model,
    same items: the same answers."""
    from importlib import resources

    from iclselect.lm import Engine, LogprobRequest, Template
    from iclselect.tune.evaluate import _choice_hits, choice_pass

    path = resources.files("iclselect").joinpath("assets/eval/mmlu_dev_5shot.jsonl.gz")
    items = load_eval_set(Path(str(path)), 6).items
    template = Template("chat", lm.tokenizer)
    engine = Engine(lm, template, show_progress=False)
    losses, hits = choice_pass(lm, template, items, 512)
    assert hits == _choice_hits(engine, items, "mmlu")
    answers = engine.loglikelihood([LogprobRequest(i.prompt, i.reference) for i in items])
    assert losses == pytest.approx([a.loss for a in answers], abs=1e-4)


def test_dirty_run_reports_planted_rows_and_recovered_shares(tiny_pool, tmp_path):
    from iclselect.bench.quality.defects import CLEAN, plant

    config = tiny_config(tiny_pool, tmp_path / "dirty")
    config.overrides["corrupt"] = 0.3
    summary = run_quality(config).summary
    rows = json.loads(tiny_pool.read_text())[:12]
    labels = plant(rows, 0.3, 0).labels  # the same seeded plant the run made
    planted = summary["planted"]
    assert planted["pool_share"] == pytest.approx(4 / 12)
    assert sum(planted["kinds"].values()) == 4
    for arm in summary["arms"]:
        if arm["arm"] in planted["subset_share"]:
            expected = sum(labels[r] != CLEAN for r in arm["pool_rows"]) / len(arm["pool_rows"])
            assert planted["subset_share"][arm["arm"]] == pytest.approx(expected)
    assert set(planted["subset_share"]) == {"longest@25%", "random-s0@25%", "random-s1@25%"}
    assert 0.0 <= planted["auc"]["longest"]["all"] <= 1.0
    by_arm = {a["arm"]: a["eval"]["pool-heldout"]["nll"] for a in summary["arms"]}
    (longest,) = [
        r for r in summary["recovered"] if r["arm"] == "longest@25%" and r["metric"] == "nll"
    ]
    gained = by_arm["untuned"] - by_arm["longest@25%"]
    (full,) = [g for g in summary["full_gain"] if g["metric"] == "nll"]
    assert full["gain"] == pytest.approx(by_arm["untuned"] - by_arm["full"])
    if full["low"] > 0:
        assert longest["share"] == pytest.approx(gained / full["gain"])
    else:  # three steps on 12 rows may not clearly beat the untuned model: no share of it
        assert math.isnan(longest["share"])
    table = markdown(summary)
    assert "Planted rows: 33% of the pool" in table
    assert "Share of the full pool's gain" in table
