"""What a user can trust: a threshold applies to the score as shown, in every order; every
bad setting is refused before any data is read or model loaded; ICon's selector ranks nothing
it cannot be trusted with unless the user insists; the API's errors name the API."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import cli, shortest, write_json

import iclselect
from iclselect.run import pipeline
from iclselect.selectors import Budget, select


@pytest.fixture(scope="module")
def ten(tmp_path_factory, demo_rows):
    """The ten shortest real rows, and a store the tests here share."""
    tmp = tmp_path_factory.mktemp("ten")
    return write_json(tmp / "pool.json", shortest(demo_rows, 10)), tmp / "store.sqlite"


# 1. A threshold applies to the score as the user sees it.


def test_a_threshold_keeps_at_most_it_where_low_scores_come_first():
    score = np.array([3.0, 9.0, 5.0, 1.0])
    low = select(score, Budget(threshold=5), {}, higher_first=False)
    assert low.selected == [3, 0, 2]  # lowest first, every score <= 5
    assert low.reason[1] == "below_threshold" and "at or below" in low.detail[1]
    assert select(score, Budget(threshold=5), {}).selected == [1, 2]
    assert select(score, Budget(count=2), {}, higher_first=False).selected == [3, 0]


@pytest.mark.parametrize(
    ("method", "order", "column"),
    [
        ("length", "short", "response_chars"),
        ("length", "long", "response_chars"),
        ("perplexity", "low", "perplexity"),
        ("perplexity", "high", "perplexity"),
    ],
)
def test_threshold_is_on_the_value_shown_in_every_order(tmp_path, ten, method, order, column):
    data, store = ten
    common = ["-m", method, "-s", f"order={order}", "--store", str(store), "-q", "--no-report"]
    first = cli("run", str(data), "-o", str(tmp_path / "all"), "--fraction", "1", *common)
    assert first.exit_code == 0, first.output
    table = pd.read_parquet(tmp_path / "all" / "scores.parquet")
    # The score is the method's own value, never negated, and the order is recorded.
    assert table.score.tolist() == pytest.approx(table[column].astype(float).tolist())
    low_first = order in ("short", "low")
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    assert manifest["method"]["higher_first"] is not low_first
    metadata = pq.read_schema(tmp_path / "all" / "scores.parquet").metadata
    assert metadata[b"iclselect.higher_first"] == (b"false" if low_first else b"true")
    ranked = table.sort_values("rank").score.to_numpy()
    assert (np.diff(ranked) >= 0).all() if low_first else (np.diff(ranked) <= 0).all()

    threshold = float(np.median(table.score))
    out = tmp_path / "cut"
    cut = cli("run", str(data), "-o", str(out), "--threshold", f"{threshold!r}", *common)
    assert cut.exit_code == 0, cut.output
    kept = pd.read_parquet(out / "scores.parquet")
    wanted = table.score <= threshold if low_first else table.score >= threshold
    assert 0 < wanted.sum() < len(table)
    assert kept.selected.tolist() == wanted.tolist()
    assert set(kept.reason[~wanted]) == {"below_threshold"}


# 2 and 10. Every bad setting fails before any data is read or any model loaded.

INVALID = [
    (["--fraction", "2"], "--fraction must be in (0, 1], got 2.0"),
    (["--fraction", "0"], "--fraction must be in (0, 1], got 0.0"),
    (["--count", "0"], "--count must be at least 1, got 0"),
    (["--threshold", "nan"], "--threshold must be a finite number, got nan"),
    (["--fraction", "0.1", "--count", "3"], "give exactly one of --fraction, --count or"),
    (["--tau", "-1"], "--tau must be a number above 0"),
    (["--tau", "0"], "--tau must be a number above 0"),
    (["--device", "gpu"], "--device must be one of auto, cpu, cuda or cuda:N; got 'gpu'"),
    (["--dtype", "fp8"], "--dtype must be one of auto, fp32, bf16, fp16; got 'fp8'"),
    (["--template", "chatml"], "--template must be one of chat, alpaca, plain, reference"),
    (["--format", "csv"], "--format must be one of auto, alpaca, sharegpt, messages"),
    (["--max-length", "0"], "--max-length must be at least 1; got 0"),
    (["--max-batch-tokens", "0"], "--max-batch-tokens must be at least 1; got 0"),
    (["--workers", "0"], "--workers must be at least 1; got 0"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker must be 0 or more"),
    (["-m", "nope"], "unknown method 'nope'"),
    (["-m", "length", "-s", "order=middle"], "length.order must be one of long, short"),
    (["-m", "wici", "-s", "n_probes=0"], "wICI needs n_probes >= 1"),
    (["-m", "icon", "-s", "exact=0"], "icon.exact must be >= 1"),
    (["-m", "icon", "-s", "lora_epochs=0"], "icon.lora_epochs and icon.lora_max_tokens"),
    (["-m", "icon", "-s", "assessment=nope.jsonl"], "icon.assessment nope.jsonl: no such file"),
    (["-m", "ifd", "--model", "./no/such/model"], "--model ./no/such/model: no such directory"),
]
if not torch.cuda.is_available():
    INVALID.append((["-m", "length", "--device", "cuda"], "--device cuda: torch sees no CUDA GPU"))


@pytest.fixture
def nothing_is_read(monkeypatch):
    """Reading the data or loading a model fails the test: a refusal must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("data was read or a model loaded before the bad setting was refused")

    for name in ("read_input", "load_model", "Embedder"):
        monkeypatch.setattr(pipeline, name, refuse)


def as_compare(args: list[str]) -> list[str]:
    """A run's arguments for compare: -m M becomes --methods M,random, -s K=V -s M.K=V."""
    if "-m" not in args:
        return args
    at = args.index("-m")
    method = args[at + 1]
    other = "length" if method == "nope" else "random"
    args = [a if "=" not in a else f"{method}.{a}" for a in args]
    return [*args[:at], "--methods", f"{method},{other}", *args[at + 2 :]]


@pytest.mark.parametrize(("args", "message"), INVALID, ids=lambda v: " ".join(v))
@pytest.mark.parametrize("command", ["run", "run --dry-run", "compare"])
def test_a_bad_setting_is_refused_before_anything_is_read(
    tmp_path, ten, nothing_is_read, command, args, message
):
    data, _ = ten
    if command == "compare":
        args = as_compare(args)
    words = command.split()
    result = cli(*words[:1], str(data), "-o", str(tmp_path / "out"), *words[1:], *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tau": -1}, "--tau must be a number above 0"),
        ({"max_length": 0}, "--max-length must be at least 1"),
        ({"device": "gpu"}, "--device must be one of"),
        ({"template": "chatml"}, "--template must be one of"),
        ({"method": "wici", "n_probes": 0}, "wICI needs n_probes >= 1"),
        ({"method": "icon", "assessment": "nope.jsonl"}, "icon.assessment nope.jsonl"),
    ],
    ids=str,
)
def test_the_api_refuses_a_bad_setting_before_anything_is_read(
    ten, nothing_is_read, settings, message
):
    data, _ = ten
    settings = {"method": "length", **settings}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        iclselect.score(data, quiet=True, **settings)


# 3. ICon's selector: judged on held-out exact scores, refused when it cannot be trusted.


def report(auc, held_out=20, spearman=0.1, exact=100, **more):
    return {
        "exact": exact,
        "held_out": held_out,
        "held_out_auc": auc,
        "held_out_spearman": spearman,
        **more,
    }


def test_a_selector_at_or_below_chance_or_unjudged_is_distrusted():
    from iclselect.methods.icon_classifier import MIN_HELD_OUT, distrust

    assert distrust(report(0.8)) is None
    assert distrust(report(0.51)) is None
    assert "held-out AUC 0.50, Spearman +0.10 is at or below chance" in distrust(report(0.5))
    assert "held-out AUC 0.00, Spearman -1.00 is at or below chance" in distrust(
        report(0.0, spearman=-1.0)
    )
    unmeasured = distrust(report(None, held_out_note="the training split held one class only"))
    assert "could not be measured: the training split held one class only" in unmeasured
    small = distrust(report(1.0, held_out=2, exact=10, spearman=1.0))
    assert small.startswith("10 exactly scored candidates leave 2 held out, too few to judge")
    assert f"need {MIN_HELD_OUT}" in small and "(held-out AUC 1.00, Spearman +1.00)" in small


@pytest.fixture(scope="module")
def twenty(tmp_path_factory, demo_rows):
    return write_json(tmp_path_factory.mktemp("twenty") / "pool.json", shortest(demo_rows, 20))


def test_icon_refuses_a_selector_too_small_to_judge_before_scoring(
    tmp_path, twenty, short_assessment, monkeypatch
):
    def no_scoring(*args, **kwargs):
        raise AssertionError("a request was scored before the refusal")

    monkeypatch.setattr(pipeline.EngineAnswerer, "loglikelihood", no_scoring)
    out = tmp_path / "icon"
    args = ["run", str(twenty), "-m", "icon", "-s", f"assessment={short_assessment}", "-q"]
    small = cli(*args, "-s", "exact=5", "-o", str(out))
    assert small.exit_code == 2, small.output
    assert small.output.startswith(
        "error: icon: 5 exactly scored candidates are too few to train a selector (need 10)"
    )
    unjudged = cli(*args, "-s", "exact=10", "-s", "assessment_size=1", "-o", str(out))
    assert unjudged.exit_code == 2, unjudged.output
    assert unjudged.output == (
        "error: icon: a selector would rank the 10 of 20 rows without an exact score, but 10 "
        "exactly scored candidates leave 2 held out, too few to judge the selector (need 10: "
        "icon.exact >= 50). Raise icon.exact, set icon.selector=none to rank the exactly scored "
        "rows alone, or icon.trust_selector=true to rank every row anyway\n"
    )
    assert not (out / "manifest.json").exists()


def test_icon_with_a_trusted_doubtful_selector_warns_on_the_terminal_and_in_the_report(
    tmp_path, twenty, short_assessment
):
    out = tmp_path / "icon"
    result = cli(
        "run",
        str(twenty),
        "-m",
        "icon",
        "-s",
        "exact=10",
        "-s",
        f"assessment={short_assessment}",
        "-s",
        "trust_selector=true",
        "-o",
        str(out),
        "--count",
        "4",
    )
    assert result.exit_code == 0, result.output
    warning = "warning: icon: the embedding selector ranked the 10 rows without an exact score"
    assert f"[iclselect] {warning} although 10 exactly scored candidates leave 2 held out" in (
        result.output
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["warnings"]) == 1 and manifest["warnings"][0].startswith(warning[9:])
    assert manifest["method"]["params"]["selector_report"]["trusted"] is False
    page = (out / "report.html").read_text()
    assert "<b>Warning:</b> icon: the embedding selector ranked the 10 rows" in page


def test_icon_refuses_a_selector_at_chance_after_scoring_in_one_line(
    tmp_path, twenty, short_assessment, monkeypatch
):
    """The trial's case: held-out AUC 0.0 and Spearman -1.0 (the agreement stubbed, so that
    twenty rows make it; two held-out rows are let count as enough to judge)."""
    from iclselect.methods import icon_classifier

    monkeypatch.setattr(icon_classifier, "MIN_HELD_OUT", 2)
    agreement = {"held_out_auc": 0.0, "held_out_spearman": -1.0}
    monkeypatch.setattr(icon_classifier, "_agreement", lambda *args: agreement)
    out = tmp_path / "icon"
    result = cli(
        "run",
        str(twenty),
        "-m",
        "icon",
        "-s",
        "exact=10",
        "-s",
        "label_fraction=0.5",
        "-s",
        f"assessment={short_assessment}",
        "-o",
        str(out),
        "-q",
    )
    assert result.exit_code == 2, result.output
    assert result.output == (
        "error: icon: the embedding selector will not rank the 10 rows without an exact score: "
        "its held-out AUC 0.00, Spearman -1.00 is at or below chance (0.5). Raise icon.exact, "
        "set icon.selector=none to rank the exactly scored rows alone, or "
        "icon.trust_selector=true to rank every row anyway (the exact scores are in the store: "
        "a rerun recomputes nothing)\n"
    )
    assert not (out / "manifest.json").exists()


# 12. The API's errors name the API.


def test_a_second_write_names_overwrite_true_and_score_refuses_a_budget(tmp_path, ten):
    data, store = ten
    scores = iclselect.score(data, method="length", store=store, quiet=True)
    subset = iclselect.select(scores, count=2)
    subset.write(tmp_path / "out")
    with pytest.raises(ValueError, match=r"pass overwrite=True to replace") as refused:
        subset.write(tmp_path / "out")
    assert "--" not in str(refused.value)
    subset.write(tmp_path / "out", overwrite=True)
    for budget in ({"fraction": 0.1}, {"count": 3}, {"threshold": 2.0}):
        with pytest.raises(TypeError, match=r"score\(\) got \w+=, a budget, which select"):
            iclselect.score(data, method="length", store=store, quiet=True, **budget)
    with pytest.raises(ValueError, match=r"^tau= must be a number above 0"):
        iclselect.select(scores, tau=-1)


# Small things.


def test_counts_agree_with_their_nouns(tmp_path, demo_rows):
    from iclselect.infra.words import counted

    assert [counted(1, "row"), counted(2, "row"), counted(0, "exact duplicate")] == [
        "1 row",
        "2 rows",
        "0 exact duplicates",
    ]
    rows = shortest(demo_rows, 3)
    data = write_json(tmp_path / "pool.json", [*rows, rows[0], {"instruction": "x", "output": ""}])
    out = tmp_path / "out"
    result = cli("run", str(data), "-m", "length", "-o", str(out), "--skip-invalid", "--count", "1")
    assert result.exit_code == 0, result.output
    assert "; 1 invalid row skipped; 1 exact duplicate (see duplicate_of)" in result.output
    assert "kept 1 of 5 rows" in result.output and " 1 rows" not in result.output


def test_whole_scores_print_as_aligned_integers_and_no_empty_header(tmp_path, demo_rows):
    rows = [*shortest(demo_rows, 11), max(demo_rows, key=lambda r: len(r["output"]))]
    data = tmp_path / "pool.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    result = cli("run", str(data), "-m", "length", "-o", str(out), "--count", "5", "-q")
    assert result.exit_code == 0, result.output
    best = [re.search(r"row (\d+) +(\S+)  ", line) for line in result.output.splitlines()]
    best = [found for found in best if found]
    chars = sorted((len(r["output"]) for r in rows), reverse=True)[:5]
    assert [found.group(2) for found in best] == [str(n) for n in chars]
    assert len({found.end(2) for found in best}) == 1  # one right-aligned column
    assert len({len(found.group(2)) for found in best}) > 1  # of numbers of several widths
    nothing = tmp_path / "none"
    result = cli("run", str(data), "-m", "length", "-o", str(nothing), "--threshold", "1e9", "-q")
    assert result.exit_code == 0, result.output
    assert "kept 0 of 12 rows" in result.output and "best kept" not in result.output
    assert (nothing / "subset.jsonl").read_bytes() == b""
