"""`--template reference` against ports of the authors' own code (tests/reference_ports.py) on
real Alpaca rows: with the options the reference template switches on, every request iclselect
sends is the code's own sequence, scored on the code's own tokens, so each loss equals the
port's to 1e-4. The rows are chosen so that every quirk shows: a response whose first token
straddles Cherry's prompt (row 36 opens with a quote), a wICI demo whose last token merges
with the next instruction (row 366 ends in "6E"), a response past Cherry's and wICI's
windows, and an ICon assessment prompt past the RICo code's cap on prompts.
Each quirk switched off on its own moves some request off the port's value: so a quirk
dropped from the reference template fails the agreement test. Rank agreement at scale is
scripts/reference_check.py's (BENCHMARKS.md)."""

from __future__ import annotations

import gzip
import json
import math
from functools import cache
from importlib import resources

import pytest
import reference_ports as ports
from conftest import POOL_DATA, write_json

from iclselect.io import read_dataset
from iclselect.lm import Engine, Template
from iclselect.methods import icon, ifd, wici
from iclselect.methods.assessment import SHIPPED, load_assessment
from iclselect.methods.loss_requests import conditioned, unconditioned
from iclselect.methods.registry import get
from iclselect.run.config import RunConfig

TOL = 1e-4
ORDINARY, STRADDLE, MERGING = [0, 1], 36, 366


@pytest.fixture(scope="module")
def pool() -> list[dict]:
    return json.loads(POOL_DATA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def long_row(pool, lm) -> dict:
    """A real instruction with real responses joined past 1,100 tokens: longer than Cherry's
    512-token window, wICI's 1,024 and the RICo code's 1,024-token prompts."""
    parts, k = [], 3
    while len(lm.tokenizer("\n".join(parts)).input_ids) < 1100:
        parts.append(pool[k]["output"])
        k += 1
    return {
        "instruction": "Write these answers out in full.",
        "input": "",
        "output": "\n".join(parts),
    }


@pytest.fixture(scope="module")
def rows(pool, long_row) -> dict[str, dict]:
    chosen = {str(i): pool[i] for i in [*ORDINARY, STRADDLE, MERGING]}
    return chosen | {"long": long_row}


@pytest.fixture(scope="module")
def samples(rows, tmp_path_factory):
    path = write_json(tmp_path_factory.mktemp("rows") / "rows.json", list(rows.values()))
    return dict(zip(rows, read_dataset(str(path)).samples, strict=True))


@pytest.fixture(scope="module")
def assessment(tmp_path_factory, long_row) -> tuple[list[dict], list]:
    """Two short rows of the shipped ICon assessment set and one whose prompt is the long
    row's text, raw (the port's) and as Samples."""
    shipped = resources.files("iclselect") / "assets" / SHIPPED
    with resources.as_file(shipped) as file, gzip.open(file, "rt", encoding="utf-8") as handle:
        raw = [json.loads(line) for line in handle if line.strip()]
    short = [r for r in raw if len(r["inputs"]) < 250 and 40 < len(r["response"]) < 100][:2]
    long = {
        "inputs": f"### Instruction:\n{long_row['output']}\n\n### Response:",
        "response": short[0]["response"],
    }
    path = tmp_path_factory.mktemp("assess") / "assess.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*short, long]), encoding="utf-8")
    return [*short, long], load_assessment(str(path))[0]


@pytest.fixture(scope="module")
def engine(lm) -> Engine:
    return Engine(lm, Template("reference", lm.tokenizer), show_progress=False)


def reference_config(method: str, **changed):
    """The method's options under --template reference, with `changed` on top."""
    registered = get(method)
    options = RunConfig(data="x", out="o", template="reference").options_for(registered)
    return registered.configure({**options, **changed})


@pytest.fixture(scope="module")
def port(lm, rows, assessment):
    """The ports' mean losses (the log of the perplexities they return), computed once."""
    model, tok = lm.model, lm.tokenizer

    @cache
    def values(method: str) -> dict[str, float]:
        out: dict[str, float] = {}
        if method == "ifd":
            for name, row in rows.items():
                code = ports.cherry_ifd(model, tok, row)
                out[f"cond {name}"] = math.log(code["ppl_condition"])
                if name != "long":  # its L(y) window is 512 - prompt - 2 (not reproduced)
                    out[f"alone {name}"] = math.log(code["ppl_alone"])
        elif method == "wici":
            for name, row in rows.items():
                if name == "long":  # a response cut by the window is the code's 0.0 sentinel
                    out["alone long"] = math.log(ports.wici_ppl_whole(model, tok, row["output"]))
                    continue
                code = ports.wici_ifd(model, tok, row)
                out[f"alone {name}"] = math.log(code["ppl_A_direct"])
                out[f"cond {name}"] = math.log(code["ppl_A_condition"])
            for a, b in ((str(MERGING), "0"), ("0", "1")):
                context = ports.wici_prompt(rows[a]) + rows[a]["output"]
                context += ports.wici_prompt(rows[b])
                output = rows[b]["output"]
                ppl = ports.wici_ppl_conditional(model, tok, context + output, output)
                out[f"demo {a} {b}"] = math.log(ppl)
        else:
            record = ports.rico_record(rows["0"])
            text = record["inputs"] + record["response"]
            for j, s in enumerate(assessment[0]):
                out[f"alone {j}"] = ports.rico_ppl_baseline(model, tok, s)["loss_ori"]
                if j < 2:  # the long prompt's cap shows in its PPL(S) alone
                    out[f"demo {j}"] = ports.rico_ppl_context(model, tok, text, s)["loss_ctx"]
        return out

    return values


def ours(method: str, engine: Engine, samples, assessment, config, keys) -> dict[str, float]:
    """iclselect's mean losses for the requests named `keys`, cut as `config`'s options say."""
    asked: dict[str, object] = {}
    if method in ("ifd", "wici"):
        style = "alpaca" if method == "ifd" else "wici"
        cuts = (ifd if method == "ifd" else wici).code_cuts(config)
        for name, s in samples.items():
            asked[f"cond {name}"] = conditioned(s, style=style, cut=cuts.conditioned)
            asked[f"alone {name}"] = unconditioned(s, style=style, cut=cuts.alone)
        for a, b in ((str(MERGING), "0"), ("0", "1")):
            demo = samples[a].turns
            asked[f"demo {a} {b}"] = conditioned(samples[b], demo, style, cuts.conditioned)
    else:
        alone, with_demo = icon.code_cuts(config)
        for j, s in enumerate(assessment[1]):
            asked[f"alone {j}"] = conditioned(s, style="rico", cut=alone)
            asked[f"demo {j}"] = conditioned(s, samples["0"].turns, "rico", with_demo)
    asked = {key: asked[key] for key in keys}
    answers = engine.loglikelihood(list(asked.values()))
    return {key: answer.loss for key, answer in zip(asked, answers, strict=True)}


def gaps(method, engine, samples, assessment, port, keys=None, **changed) -> dict[str, float]:
    """|iclselect - port| per request (those named `keys`, default all the port computed)."""
    theirs = port(method)
    keys = list(theirs) if keys is None else keys
    config = reference_config(method, **changed)
    mine = ours(method, engine, samples, assessment, config, keys)
    return {key: abs(mine[key] - theirs[key]) for key in keys}


@pytest.mark.parametrize("method", ["ifd", "wici", "icon"])
def test_every_request_is_the_codes_to_1e4(method, engine, samples, assessment, port):
    far = {k: v for k, v in gaps(method, engine, samples, assessment, port).items() if v > TOL}
    assert not far, f"{method}: requests off the port's loss: {far}"


QUIRKS = [
    ("ifd", "joint_tokens", False, f"cond {STRADDLE}"),
    ("ifd", "code_max_length", 0, "cond long"),
    ("wici", "joint_tokens", False, f"demo {MERGING} 0"),
    ("wici", "alone_as_text", False, "alone 0"),
    ("wici", "code_max_length", 0, "alone long"),
    ("icon", "code_slices", False, "alone 0"),
    ("icon", "skip_tokens", 0, "demo 0"),
    ("icon", "code_max_length", 0, "alone 2"),
]


@pytest.mark.parametrize("method,quirk,off,request_key", QUIRKS)
def test_each_quirk_switched_off_moves_a_request_off_the_codes(
    method, quirk, off, request_key, engine, samples, assessment, port
):
    gap = gaps(method, engine, samples, assessment, port, [request_key], **{quirk: off})
    assert gap[request_key] > 10 * TOL


def test_every_quirk_is_tested_and_switched_on_by_the_reference_template():
    """A quirk is an option whose help says "reference only"."""
    tested = {(method, quirk) for method, quirk, _, _ in QUIRKS}
    quirks = {
        (m.name, name)
        for m in (get("ifd"), get("wici"), get("icon"))
        for name, _, text in m.options()
        if "reference only" in text
    }
    assert tested == quirks
    assert all(name in dict(get(m).reference) for m, name in quirks)


def test_a_quirk_needs_the_reference_template(samples):
    from iclselect.methods import Pool
    from iclselect.run.runner import CostAnswerer, drive

    pool = Pool(list(samples.values())[:3])
    with pytest.raises(ValueError, match=r"ifd.joint_tokens .* needs --template reference"):
        drive(
            get("ifd"),
            pool,
            get("ifd").configure({"joint_tokens": True}),
            CostAnswerer(lambda r: len(r.target)),
        )
