"""`--template reference`: each method's requests written as its reference code writes them
(the strings below are typed out from docs/METHODS.md, "Reference prompt formats", not built
with iclselect's code) and the code's options switched on. A request without its code's cut
(lm/requests.py's Cut; tests/test_reference_code.py checks each against the code) keeps the
pitfall fixes: the response tokenised on its own and every token of it scored. Sequences start
as the tokenizer starts a text (checked with the default tokenizer, which adds nothing, and a
variant that adds a BOS token), with the start token only where nothing else would precede
the response."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
from dataclasses import replace

import pytest
from conftest import cli, write_json

from iclselect.io import read_dataset
from iclselect.lm import LogprobRequest, Template
from iclselect.methods import Pool, icon
from iclselect.methods.assessment import SHIPPED, load_assessment
from iclselect.methods.registry import get
from iclselect.records import Turn
from iclselect.run.config import RunConfig
from iclselect.run.runner import CostAnswerer, drive

ROWS = [
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Name a colour.", "input": "", "output": "Red, as in a rose."},
]
PREAMBLE = "Below is an instruction that describes a task"
ASKS = ". Write a response that appropriately completes the request.\n\n"
WITH_INPUT = ", paired with an input that provides further context"
ALPACA_DEMO = (
    PREAMBLE
    + WITH_INPUT
    + ASKS
    + "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:5\n\n"
)
ALPACA_PROMPT = PREAMBLE + ASKS + "### Instruction:\nName a colour.\n\n### Response:"
# (style, demo text, prompt text, L(y)'s text before the response)
EXPECTED = {
    "wici": ("Add the numbers.\n2 and 3\n5", "Name a colour.\n", ""),
    "rico": (
        "### Instruction:\nAdd the numbers.\n\n### Input: 2 and 3\n\n### Response:5\n\n\n",
        "### Instruction:\nName a colour.\n\n### Response:",
        "",
    ),
    "alpaca": (ALPACA_DEMO, ALPACA_PROMPT, "### Response:"),
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    path = write_json(tmp_path_factory.mktemp("ref") / "rows.json", ROWS)
    return read_dataset(str(path)).samples


@pytest.fixture(scope="module", params=["default", "bos"])
def tokenizer(request, lm):
    """The default tokenizer, or a copy that puts <|endoftext|> (id 0) before every text."""
    if request.param == "default":
        return lm.tokenizer
    from tokenizers import processors

    variant = copy.deepcopy(lm.tokenizer)
    variant._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)]
    )
    return variant


def text(lm, ids) -> str:
    return lm.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False)


@pytest.mark.parametrize("style", list(EXPECTED))
def test_each_style_writes_the_reference_codes_strings(lm, tokenizer, samples, style):
    demo_text, prompt_text, bare = EXPECTED[style]
    template = Template("reference", tokenizer)
    demo, row = samples
    lead = [0] if tokenizer is not lm.tokenizer else []  # the variant's BOS, none by default

    def ids(piece: str) -> list[int]:
        return tokenizer(piece, add_special_tokens=False).input_ids if piece else []

    with_demo = template.encode(LogprobRequest(row.prompt, row.response, (demo.turns,), style))
    assert list(with_demo.context_ids) == lead + ids(demo_text) + ids(prompt_text)
    assert text(lm, with_demo.context_ids[len(lead) :]) == demo_text + prompt_text
    assert with_demo.prefix_len == len(lead) + len(ids(demo_text))
    assert list(with_demo.target_ids) == ids(row.response)

    alone = template.encode(LogprobRequest((), row.response, (), style))
    # Nothing before wICI's L(y) but the start token: SmolLM2's BOS, <|im_start|> (id 1).
    assert list(alone.context_ids) == (lead + ids(bare) or [1])
    assert list(alone.target_ids) == ids(row.response)


def test_an_icon_assessment_row_is_written_as_its_own_inputs(lm):
    assessment, _ = load_assessment(None)
    with gzip.open(f"src/iclselect/assets/{SHIPPED}", "rt") as file:
        raw = [json.loads(line) for line in file][:3]
    template = Template("reference", lm.tokenizer)
    for sample, row in zip(assessment, raw, strict=False):
        encoded = template.encode(LogprobRequest(sample.prompt, sample.response, (), "rico"))
        assert text(lm, encoded.context_ids) == row["inputs"]


def test_icon_reference_control_replaces_the_candidates_whole_text(samples):
    candidate, row = samples
    control = icon.random_control(candidate, 42, row, "rico")
    written = EXPECTED["rico"][0].removesuffix("\n\n\n")
    assert len(control) == 1 and len(control[0].content) == len(written)
    assert control[0].content != written
    assert control == icon.random_control(candidate, 42, row, "rico")
    assert icon.random_control(candidate, 42, candidate, "rico") != control


def test_the_reference_template_switches_on_the_codes_options():
    reference = RunConfig(data="x", out="o", template="reference")
    assert reference.options_for(get("wici")) == {
        "ifd_form": "ppl",
        "aggregate": "code",
        "prefilter_ifd": True,
        "probe_prefilter_ifd": False,
        "joint_tokens": True,
        "alone_as_text": True,
        "code_max_length": 1024,
    }
    assert reference.options_for(get("icon")) == {
        "code_slices": True,
        "skip_tokens": 2,
        "code_max_length": 2040,
    }
    assert reference.options_for(get("nuggets")) == {"anchor_space": "model"}
    assert reference.options_for(get("ifd")) == {"joint_tokens": True, "code_max_length": 512}
    chosen = RunConfig(data="x", out="o", template="reference", options={"wici.aggregate": "paper"})
    assert chosen.options_for(get("wici"))["aggregate"] == "paper"
    assert RunConfig(data="x", out="o", template="chat").options_for(get("wici")) == {}


@pytest.mark.parametrize(
    "name,style",
    [
        ("wici", "wici"),
        ("ifd", "alpaca"),
        ("icon", "rico"),
        ("miwv", "alpaca"),
        ("nuggets", "alpaca"),
        ("perplexity", "alpaca"),
    ],
)
def test_every_request_of_a_reference_run_is_in_its_methods_style(
    samples, embedder, tmp_path, name, style
):
    rows = ROWS + [
        {"instruction": f"Task {i}.", "input": "", "output": f"Answer {i}."} for i in range(6)
    ]
    pool_samples = read_dataset(str(write_json(tmp_path / "rows.json", rows))).samples
    vectors = embedder.encode([s.full_text for s in pool_samples])
    pool = Pool(pool_samples, vectors, vectors, reference=True)
    assessment = write_json(tmp_path / "assess.json", ROWS)
    options = {"assessment": str(assessment), "selector": "none"} if name == "icon" else {}
    if name == "wici":
        options = {"n_neighbours": 3, "n_probes": 2}
    if name == "nuggets":
        options = {"anchors": 2}
    answerer = CostAnswerer(lambda r: len(r.target))
    drive(get(name), pool, get(name).configure(options), answerer)
    sent = [r for asked in answerer.rounds for r in asked]
    assert sent and {r.style for r in sent} == {style}


def test_request_keys_of_the_engine_template_are_unchanged():
    """The store keys answers by request key: a reference style must not move any other key."""
    request = LogprobRequest((Turn("user", "x", (("instruction", "x"), ("input", ""))),), "y")
    payload = json.dumps(
        {"demos": [], "prompt": [["user", "x"]], "target": "y"}, sort_keys=True
    ).encode()
    assert request.key() == hashlib.sha256(payload).hexdigest()
    styled = replace(request, style="wici")
    other = LogprobRequest(
        (Turn("user", "x", (("instruction", ""), ("input", "x"))),), "y", (), "wici"
    )
    assert styled.key() != request.key() and styled.key() != other.key()


def test_run_with_the_reference_template_records_the_codes_options(tmp_path, demo_rows):
    data = write_json(tmp_path / "rows.json", demo_rows[:12])
    out = tmp_path / "run"
    cli(
        "run",
        str(data),
        "-m",
        "wici",
        "--template",
        "reference",
        "--fraction",
        "0.5",
        "--set",
        "n_neighbours=4",
        "--set",
        "n_probes=2",
        "-o",
        str(out),
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"]["params"]["ifd_form"] == "ppl"
    assert manifest["method"]["params"]["aggregate"] == "code"
    assert manifest["template"].startswith("reference-")
