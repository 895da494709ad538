#!/usr/bin/env python
"""Rank agreement of iclselect's `template="reference"` scores with the authors' code.

A dev check, not a test: it scores real Alpaca rows (the first --rows of the shipped
src/iclselect/assets/pool/alpaca_pool_2600.json.gz) with iclselect.score(..., template="reference")
and with the standalone ports of the authors' scripts in tests/reference_ports.py (Cherry IFD,
wICI, RICo/ICon), both in fp32 on the embedded default model, and reports per method the rows
compared, Spearman rho, Kendall tau, the Pearson r of the raw values, the rows only one side
scored (with reasons) and the largest rank disagreements.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/reference_check.py --rows 60 \\
        --out runs/reference-check.json

With its options alone, `template="reference"` tokenises, cuts and scores every request as the
script does (joint tokenisation, the scripts' unscored response tokens, their windows: the
quirks in docs/METHODS.md), so IFD's and wICI's losses equal the ports' per request
(`max_abs_loss_diff`, below 1e-4 in fp32); what still differs is ICon's random-text control,
drawn afresh on each side. Settings per method:

- ifd:  the first --rows rows. iclselect's `ifd` component (not the score, which drops IFD > 1)
        against cherry_ifd's ifd (max_length 512; no row of the slice reaches it).
- wici: the first --wici-rows rows as the pool, --wici-probes probes per candidate (the reference
        code uses 5). The port gets iclselect's own probes (`probe_rows`) and similarities
        (1 - `probe_weight`), so probe choice and weights are equal by construction; what is
        compared is the IFD / few-shot IFD arithmetic. Final wICI on the rows both keep (both
        drop own IFD > 1), plus own IFD on every row and per-probe ICI.
- icon: the first --icon-candidates rows of at most --icon-max-chars characters as candidates
        (icon.exact = all, no selector; the random-text control is about one token per
        character, so long candidates are costly) against --icon-assessment rows of the shipped
        assessment set, written to one file both sides read: a seeded draw among rows of at
        most --icon-max-tokens tokens with a response of at least --icon-min-response tokens
        (`short`, the default: cheap, and the RICo code scores no response of 3 tokens or
        fewer), or iclselect's own seeded draw from all 1,020 rows (`shipped`: slow, the median
        row has ~240 tokens). The random-text controls differ (the authors draw from an unseeded
        `random`; iclselect from a hash-seeded generator), so influence carries different
        control noise on the two sides even where the perplexities agree; how much, a third
        iclselect run shows that differs only in the control's seed (43 for 42): its agreement
        with the first (`iclselect_other_controls`) is the most the port can reach. Compared:
        iclselect's ranking under template=reference (mean influence) with the code's
        significance (its sigmoid of the mean), the mean influences with each other, and the
        code's sigmoid on both sides (a second iclselect call with significance=code, answered
        from the store).

Defaults (--rows 60: IFD on 60 rows, wICI on 20 rows with 3 probes, ICon 7 candidates x 5
assessment rows) take about 5 minutes on one CPU thread, half of it in the ports (batch size 1).
iclselect's answers go to --store (default: a temporary one), so a rerun with the same store
recomputes only the ports. Always run with OMP_NUM_THREADS=1 on a shared machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import reference_ports as rp  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

POOL = ROOT / "src" / "iclselect" / "assets" / "pool" / "alpaca_pool_2600.json.gz"
ASSESSMENT = ROOT / "src" / "iclselect" / "assets" / "icon_assessment_1020.jsonl.gz"


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def agreement(ours: dict[int, float], theirs: dict[int, float]) -> dict[str, Any]:
    """Spearman, Kendall and Pearson over the keys both give a finite value."""
    common = sorted(k for k in ours if k in theirs and finite(ours[k]) and finite(theirs[k]))
    x = np.array([ours[k] for k in common], dtype=float)
    y = np.array([theirs[k] for k in common], dtype=float)
    out: dict[str, Any] = {"n": len(common), "spearman": None, "kendall": None, "pearson": None}
    if len(common) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        out["spearman"] = float(stats.spearmanr(x, y).statistic)
        out["kendall"] = float(stats.kendalltau(x, y).statistic)
        out["pearson"] = float(stats.pearsonr(x, y).statistic)
    return out


def disagreements(
    ours: dict[int, float], theirs: dict[int, float], info: dict[int, dict], top: int = 5
) -> list[dict[str, Any]]:
    """The rows whose ranks (1 = highest) differ most between the two sides."""
    common = sorted(k for k in ours if k in theirs and finite(ours[k]) and finite(theirs[k]))
    if len(common) < 2:
        return []
    ra = len(common) + 1 - stats.rankdata([ours[k] for k in common])
    rb = len(common) + 1 - stats.rankdata([theirs[k] for k in common])
    order = np.argsort(-np.abs(ra - rb), kind="stable")[:top]
    return [
        {
            "row": common[j],
            "iclselect": ours[common[j]],
            "reference": theirs[common[j]],
            "rank_iclselect": float(ra[j]),
            "rank_reference": float(rb[j]),
            **info.get(common[j], {}),
        }
        for j in order
    ]


def one_sided(
    ours: dict[int, float],
    theirs: dict[int, float],
    why_ours: dict[int, str],
    why_theirs: dict[int, str],
) -> dict[str, Any]:
    """Rows one side scored and the other did not, each with the other side's reason."""
    only_ours = [k for k in ours if finite(ours[k]) and not finite(theirs.get(k))]
    only_theirs = [k for k in theirs if finite(theirs[k]) and not finite(ours.get(k))]
    neither = [k for k in ours if not finite(ours[k]) and not finite(theirs.get(k))]
    return {
        "only_iclselect": {
            "n": len(only_ours),
            "rows": {k: why_theirs.get(k, "?") for k in only_ours},
        },
        "only_reference": {
            "n": len(only_theirs),
            "rows": {k: why_ours.get(k, "?") for k in only_theirs},
        },
        "neither": {
            "n": len(neither),
            "rows": {
                k: f"iclselect: {why_ours.get(k, '?')}; reference: {why_theirs.get(k, '?')}"
                for k in neither
            },
        },
    }


# --------------------------------------------------------------------------------------------
# Data and models
# --------------------------------------------------------------------------------------------


def load_rows(n: int) -> list[dict]:
    with gzip.open(POOL, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    return [{k: r[k] for k in ("instruction", "input", "output")} for r in rows[:n]]


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


class Ctx:
    """What every check shares: the port's model and tokenizer, the iclselect settings."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        from iclselect.lm.model import load_model

        loaded = load_model(dtype="fp32", device="cpu")  # same weights as iclselect's default
        self.model, self.tok = loaded.model, loaded.tokenizer
        self.tmp = tmp
        self.store = str(args.store or tmp / "store.sqlite")
        self.args = args

    def ntok(self, text: str) -> int:
        return len(self.tok.encode(text))

    def score(self, rows: list[dict], name: str, method: str, **options: Any):
        """iclselect's scores table (pandas) for `rows` under template="reference"."""
        import iclselect

        path = write_json(self.tmp / f"{name}.json", rows)
        scores = iclselect.score(
            str(path), method=method, template="reference", dtype="fp32", device="cpu",
            store=self.store, quiet=True, **options,
        )  # fmt: skip
        return scores.to_pandas()

    def info(self, rows: list[dict], i: int) -> dict[str, Any]:
        r = rows[i]
        return {
            "instruction": r["instruction"][:60],
            "has_input": bool(r["input"]),
            "response_tokens": self.ntok(r["output"]),
            "response_start": r["output"][:30],
        }


def boundary_splits(ctx: Ctx, pairs: list[tuple[str, str]]) -> int:
    """How many (prompt, response) texts tokenise differently joined (the reference code) than
    apart (iclselect: the response tokenised on its own after the prompt's tokens)."""
    tok = ctx.tok
    return sum(
        tok.encode(a + b, add_special_tokens=False)
        != tok.encode(a, add_special_tokens=False) + tok.encode(b, add_special_tokens=False)
        for a, b in pairs
    )


def max_gap(ours: dict[int, float], theirs: dict[int, float]) -> float | None:
    """The largest |ours - theirs| over the keys both give a finite value."""
    common = [k for k in ours if finite(ours[k]) and finite(theirs.get(k))]
    return max((abs(ours[k] - theirs[k]) for k in common), default=None)


def column(frame, name: str) -> dict[int, Any]:
    return {int(r): v for r, v in zip(frame["row"], frame[name], strict=True)}


def reasons(frame) -> dict[int, str]:
    out = {}
    for r, reason, detail in zip(frame["row"], frame["reason"], frame["detail"], strict=True):
        if isinstance(reason, str) and reason:
            out[int(r)] = f"{reason}: {detail}" if isinstance(detail, str) and detail else reason
    return out


def seq(x: Any) -> list:
    """A list column's cell (a numpy array, a list or None) as a list."""
    return [] if x is None else list(x)


def num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


# --------------------------------------------------------------------------------------------
# IFD
# --------------------------------------------------------------------------------------------


def check_ifd(ctx: Ctx, n: int) -> dict[str, Any]:
    rows = load_rows(n)
    t0 = time.perf_counter()
    frame = ctx.score(rows, "ifd", "ifd")
    t1 = time.perf_counter()
    port = [rp.cherry_ifd(ctx.model, ctx.tok, r) for r in rows]
    t2 = time.perf_counter()

    ours = {k: num(v) for k, v in column(frame, "ifd").items()}
    theirs = {i: p["ifd"] for i, p in enumerate(port)}
    why_ours = {k: "ifd component NaN (L(y) = 0)" for k, v in ours.items() if not finite(v)}
    why_theirs = {
        i: f"put_ifd_score.py writes {p['ifd']} (guard, empty span or length check)"
        if math.isnan(p["ifd"]) else f"ifd = {p['ifd']} (mean loss alone 0)"
        for i, p in enumerate(port) if not finite(p["ifd"])
    }  # fmt: skip
    dropped_ours = {k for k, v in ours.items() if finite(v) and v > 1}
    dropped_theirs = {k for k, v in theirs.items() if finite(v) and v > 1}
    loss_c = {k: num(v) for k, v in column(frame, "loss").items()}
    loss_a = {k: num(v) for k, v in column(frame, "loss_alone").items()}
    info = {i: ctx.info(rows, i) for i in range(n)}
    worst = disagreements(ours, theirs, info)
    return {
        "rows": n,
        "compared": "ifd component vs cherry_ifd ifd",
        **agreement(ours, theirs),
        **one_sided(ours, theirs, why_ours, why_theirs),
        "above_one": {
            "iclselect": len(dropped_ours),
            "reference": len(dropped_theirs),
            "disagree": sorted(dropped_ours ^ dropped_theirs),
        },
        "boundary_tokenisation_differs": {
            "alone": boundary_splits(ctx, [("### Response:", r["output"]) for r in rows]),
            "conditioned": boundary_splits(ctx, [(_cherry_prompt(r), r["output"]) for r in rows]),
        },
        "loss_condition": agreement(
            loss_c, {i: p["mean_loss_condition"] for i, p in enumerate(port)}
        ),
        "loss_alone": agreement(loss_a, {i: p["mean_loss_alone"] for i, p in enumerate(port)}),
        # Per request: L(y|x) everywhere; L(y) where the code's window for it (512 - prompt
        # tokens - 2, not reproduced) cuts nothing.
        "max_abs_loss_diff": {
            "conditioned": max_gap(
                loss_c, {i: p["mean_loss_condition"] for i, p in enumerate(port)}
            ),
            "alone": max_gap(loss_a, {i: p["mean_loss_alone"] for i, p in enumerate(port)}),
        },
        "worst": worst,
        "worst_detail": [
            {
                "row": w["row"],
                "iclselect_loss": loss_c[w["row"]],
                "reference_loss": port[w["row"]]["mean_loss_condition"],
                "iclselect_loss_alone": loss_a[w["row"]],
                "reference_loss_alone": port[w["row"]]["mean_loss_alone"],
                "reference_first_alone_token_loss": _first_alone(
                    ctx, rows[w["row"]], port[w["row"]]
                ),
            }
            for w in worst
        ],
        "seconds": {"iclselect": t1 - t0, "reference": t2 - t1},
    }


def _cherry_prompt(row: dict) -> str:
    if row["input"] == "":
        return rp.CHERRY_PROMPT_NO_INPUT.format_map(row)
    return rp.CHERRY_PROMPT_INPUT.format_map(row)


def _first_alone(ctx: Ctx, row: dict, port: dict) -> float | None:
    """The port's loss of the first response token in "### Response:" + output."""
    start = len(ctx.tok.encode("### Response:")) - 1
    losses = port["token_loss_alone"]
    return losses[start] if start < len(losses) else None


# --------------------------------------------------------------------------------------------
# wICI
# --------------------------------------------------------------------------------------------


def check_wici(ctx: Ctx, n: int, n_probes: int) -> dict[str, Any]:
    rows = load_rows(n)
    t0 = time.perf_counter()
    frame = ctx.score(rows, "wici", "wici", n_probes=n_probes, n_neighbours=max(32, n_probes))
    t1 = time.perf_counter()

    phase1 = [rp.wici_ifd(ctx.model, ctx.tok, r) for r in rows]
    port_ifd = [p["ifd"] for p in phase1]
    ours_score = {k: num(v) for k, v in column(frame, "score").items()}
    probe_rows = column(frame, "probe_rows")
    probe_weight = column(frame, "probe_weight")
    probe_ici = column(frame, "probe_ici")

    # The port's own filter: -1e9 where its own IFD > 1 (a NaN IFD is kept).
    def port_keeps(i: int) -> bool:
        v = rp._safe_float(port_ifd[i])
        return not (v is not None and v > 1.0)

    # Phase 2 of the port only where iclselect gave probes and the port keeps the candidate:
    # the rows compared. Its PPL(out_b alone) is memoised (deterministic, the same value as
    # the probe's phase-1 ppl_A_direct; the authors recompute it per pair).
    direct = rp.wici_ppl_whole
    memo: dict[str, float] = {}

    def cached(model, tokenizer, text, max_length=1024):
        if text not in memo:
            memo[text] = direct(model, tokenizer, text, max_length)
        return memo[text]

    few: list[list[float]] = [[] for _ in rows]
    ids: list[list[int]] = [[] for _ in rows]
    sims: list[list[float]] = [[] for _ in rows]
    rp.wici_ppl_whole = cached
    try:
        for i in range(n):
            probes = [int(b) for b in seq(probe_rows[i])]
            if not probes or not port_keeps(i):
                continue
            ids[i] = probes
            sims[i] = [1.0 - float(w) for w in seq(probe_weight[i])]
            few[i] = rp.wici_few_shot_ifd(ctx.model, ctx.tok, rows[i], [rows[b] for b in probes])
    finally:
        rp.wici_ppl_whole = direct
    port_scores = rp.wici_aggregate(port_ifd, few, ids, sims)
    t2 = time.perf_counter()

    theirs: dict[int, float] = {}
    why_theirs: dict[int, str] = {}
    for i in range(n):
        if not port_keeps(i):
            why_theirs[i] = f"own IFD {port_ifd[i]:.4g} > 1 (-1e9)"
            theirs[i] = math.nan
        elif not ids[i]:
            why_theirs[i] = "not computed: iclselect gave no probes (it excluded the row)"
            theirs[i] = math.nan
        else:
            theirs[i] = port_scores[i]
    why_ours = reasons(frame)

    # Per-probe ICI and in-context IFD, over the pairs both computed.
    ici_ours, ici_theirs, fs_ours, fs_theirs = {}, {}, {}, {}
    pairs: list[dict[str, Any]] = []
    ours_ifd = {k: num(v) for k, v in column(frame, "ifd").items()}
    k = 0
    for i in range(n):
        if not few[i]:
            continue
        for j, b in enumerate(ids[i]):
            ici = num(seq(probe_ici[i])[j])
            ici_ours[k], fs_ours[k] = ici, ours_ifd[b] - ici
            fs_theirs[k] = few[i][j]
            ici_theirs[k] = port_ifd[b] - few[i][j] if finite(port_ifd[b]) else math.nan
            pairs.append(
                {"candidate": i, "probe": b, "ici": [ici_ours[k], ici_theirs[k]],
                 "in_context_ifd": [fs_ours[k], fs_theirs[k]], "weight": 1.0 - sims[i][j]}
            )  # fmt: skip
            k += 1
    ppl_cond = {k_: math.exp(num(v)) for k_, v in column(frame, "loss").items()}
    zero_sentinels = sum(1 for i in range(n) for v in few[i] if v == 0.0)
    zero_own = [i for i in range(n) if port_ifd[i] == 0.0]
    dropped_ours = {i for i in range(n) if finite(ours_ifd[i]) and ours_ifd[i] > 1}
    dropped_theirs = {i for i in range(n) if not port_keeps(i)}
    helped_ours = {i: sum(1 for v in seq(probe_ici[i]) if num(v) > 0) for i in range(n)}
    helped_theirs = {
        i: sum(
            1 for j, b in enumerate(ids[i]) if finite(port_ifd[b]) and port_ifd[b] - few[i][j] > 0
        )
        for i in range(n)
        if few[i]
    }
    info = {
        i: ctx.info(rows, i) | {"helped_probes": [helped_ours[i], helped_theirs.get(i)]}
        for i in range(n)
    }
    return {
        "rows": n,
        "probes": n_probes,
        "compared": "final wICI (ppl form, code aggregate) on rows both keep; the port gets "
        "iclselect's probes and similarities",
        **agreement(ours_score, theirs),
        **one_sided(ours_score, theirs, why_ours, why_theirs),
        "own_ifd": agreement(ours_ifd, dict(enumerate(port_ifd))),
        # iclselect's PPL(y|x) and PPL(y) (= PPL(y|x) / IFD) against the port's ppl_A_condition
        # and ppl_A_direct: which half of the own IFD differs.
        "ppl_condition": agreement(
            ppl_cond, {i: p["ppl_A_condition"] for i, p in enumerate(phase1)}
        ),
        "ppl_alone": agreement(
            {i: ppl_cond[i] / ours_ifd[i] for i in range(n)},
            {i: p["ppl_A_direct"] for i, p in enumerate(phase1)},
        ),
        # Per request, as mean losses (log perplexities); in-context IFD as the ratio itself.
        "max_abs_loss_diff": {
            "conditioned": max_gap(
                {i: math.log(v) for i, v in ppl_cond.items()},
                {i: _log(p["ppl_A_condition"]) for i, p in enumerate(phase1)},
            ),
            "alone": max_gap(
                {i: math.log(ppl_cond[i] / ours_ifd[i]) for i in range(n) if ours_ifd[i] > 0},
                {i: _log(p["ppl_A_direct"]) for i, p in enumerate(phase1)},
            ),
            "in_context_ifd": max_gap(fs_ours, fs_theirs),
        },
        "above_one": {
            "iclselect": len(dropped_ours),
            "reference": len(dropped_theirs),
            "disagree": sorted(dropped_ours ^ dropped_theirs),
        },
        "boundary_tokenisation_differs": boundary_splits(
            ctx, [(rp.wici_prompt(r), r["output"]) for r in rows]
        ),
        "most_used_probes": Counter(p["probe"] for p in pairs).most_common(3),
        "probe_ici": agreement(ici_ours, ici_theirs),
        "probe_ici_sign_agree": _sign_agree(ici_ours, ici_theirs),
        "in_context_ifd": agreement(fs_ours, fs_theirs),
        "zero_scores": {
            "iclselect": sum(1 for v in ours_score.values() if v == 0.0),
            "reference": sum(1 for v in theirs.values() if v == 0.0),
        },
        "reference_sentinels": {"few_shot_0.0": zero_sentinels, "own_ifd_0.0_rows": zero_own},
        "worst": disagreements(ours_score, theirs, info),
        "worst_own_ifd": disagreements(ours_ifd, dict(enumerate(port_ifd)), info, 3),
        "reference_phase1": phase1,
        "pairs": pairs,
        "seconds": {"iclselect": t1 - t0, "reference": t2 - t1},
    }


def _log(x: float) -> float:
    """log of a port's perplexity; its 0.0 sentinel (a failed call) and NaN stay out."""
    return math.log(x) if finite(x) and x > 0 else math.nan


def _sign_agree(a: dict[int, float], b: dict[int, float]) -> dict[str, int]:
    common = [k for k in a if finite(a[k]) and finite(b.get(k))]
    same = sum(1 for k in common if (a[k] > 0) == (b[k] > 0))
    return {"pairs": len(common), "same_sign": same}


# --------------------------------------------------------------------------------------------
# ICon
# --------------------------------------------------------------------------------------------


def assessment_rows(ctx: Ctx, k: int, how: str, seed: int) -> list[dict]:
    with gzip.open(ASSESSMENT, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    rng = np.random.default_rng(seed)
    if how == "shipped":  # iclselect's own draw: icon.assessment_size=k, seed 42
        keep = sorted(rng.choice(len(rows), k, replace=False))
        return [rows[int(i)] for i in keep]
    eligible = [
        i for i, r in enumerate(rows)
        if ctx.ntok(r["inputs"]) + ctx.ntok(r["response"]) <= ctx.args.icon_max_tokens
        and ctx.ntok(r["response"]) >= ctx.args.icon_min_response
    ]  # fmt: skip
    keep = sorted(rng.choice(len(eligible), min(k, len(eligible)), replace=False))
    return [rows[eligible[int(i)]] for i in keep]


def check_icon(ctx: Ctx, n: int, k: int, how: str) -> dict[str, Any]:
    # Candidates: the first n rows of at most --icon-max-chars characters. The control demo is
    # random characters, about one token each, so a candidate's cost grows with its length.
    cap = ctx.args.icon_max_chars
    source = [
        i for i, r in enumerate(load_rows(2600))
        if not cap or len(r["instruction"]) + len(r["input"]) + len(r["output"]) <= cap
    ][:n]  # fmt: skip
    everything = load_rows(2600)
    rows = [everything[i] for i in source]
    assess = assessment_rows(ctx, k, how, 42)
    path = ctx.tmp / "assessment.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in assess), "utf-8")
    options = dict(exact=n, selector="none", assessment=str(path), assessment_size=0)
    t0 = time.perf_counter()
    frame = ctx.score(rows, "icon", "icon", **options)  # template=reference: mean influence
    code_frame = ctx.score(rows, "icon", "icon", significance="code", **options)  # store: free
    # Other random controls, same everything else: how far two draws of the control alone
    # move the ranking, the most any two ICon runs (the port's and iclselect's) can agree.
    redrawn = ctx.score(rows, "icon", "icon", seed=43, **options)
    t1 = time.perf_counter()

    base = [rp.rico_ppl_baseline(ctx.model, ctx.tok, s) for s in assess]
    rng = random.Random(0)
    port = [
        rp.rico_candidate_scores(ctx.model, ctx.tok, rp.rico_record(r), assess, rng, base)
        for r in rows
    ]
    t2 = time.perf_counter()

    mean_ours = {k_: num(v) for k_, v in column(frame, "significance").items()}
    code_ours = {k_: num(v) for k_, v in column(code_frame, "significance").items()}
    redrawn_ours = {k_: num(v) for k_, v in column(redrawn, "significance").items()}
    cons_ours = {k_: num(v) for k_, v in column(frame, "consistency").items()}
    sig_theirs = {i: p["Significance"] for i, p in enumerate(port)}
    mean_theirs = {i: p["MeanInfluence"] for i, p in enumerate(port)}
    cons_theirs = {i: p["Consistency"] for i, p in enumerate(port)}
    nan_pairs = sum(1 for p in port for q in p["pairs"] if math.isnan(q["influence"]))
    why_theirs = {
        i: "mean influence NaN (every pair NaN)" for i, v in mean_theirs.items() if not finite(v)
    }
    info = {i: ctx.info(rows, i) | {"source_row": source[i]} for i in range(n)}
    return {
        "rows": n,
        "candidate_source_rows": source,
        "assessment_rows": len(assess),
        "assessment": how,
        "assessment_tokens": [ctx.ntok(s["inputs"]) + ctx.ntok(s["response"]) for s in assess],
        "assessment_response_tokens": [ctx.ntok(s["response"]) for s in assess],
        "compared": "iclselect's ranking (template=reference: mean influence) vs the code's "
        "significance (its sigmoid of the mean)",
        **agreement(mean_ours, sig_theirs),
        **one_sided(mean_ours, sig_theirs, reasons(frame), why_theirs),
        "mean_influence": agreement(mean_ours, mean_theirs),
        "code_significance": agreement(code_ours, sig_theirs),
        "iclselect_other_controls": agreement(mean_ours, redrawn_ours),
        "consistency": agreement(cons_ours, cons_theirs),
        # The code's sigmoid is +-1 beyond |mean| > 0.5 and within 0.01 of it beyond ~0.1.
        "near_saturated_significance": {
            "iclselect": sum(1 for v in code_ours.values() if finite(v) and abs(v) > 0.99),
            "reference": sum(1 for v in sig_theirs.values() if finite(v) and abs(v) > 0.99),
        },
        "per_candidate": [
            {
                "row": i,
                "source_row": source[i],
                "significance": [code_ours[i], sig_theirs[i]],
                "mean_influence": [mean_ours[i], mean_theirs[i]],
            }
            for i in range(n)
        ],
        "reference_nan_pairs": nan_pairs,
        "reference_baseline_ppl": [b["normalized_ppl_ori"] for b in base],
        "worst": disagreements(mean_ours, mean_theirs, info),
        "seconds": {"iclselect": t1 - t0, "reference": t2 - t1},
    }


# --------------------------------------------------------------------------------------------


def clean(x: Any) -> Any:
    """JSON-safe: NaN/inf as None, numpy scalars as Python ones, keys as strings."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def fmt(x: Any) -> str:
    return f"{x:.3f}" if finite(x) else "-"


def gap(diffs: dict[str, float | None]) -> str:
    return "/".join(f"{v:.1e}" if finite(v) else "-" for v in diffs.values())


def table(results: dict[str, dict]) -> str:
    head = (
        f"{'method':<7}{'n':>4}{'spearman':>10}{'kendall':>9}{'pearson':>9}"
        f"{'only icl':>10}{'only ref':>10}{'neither':>9}  extra"
    )
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<7} error: {r['error']}")
            continue
        extra = {
            "ifd": lambda r: (
                f"max |loss diff| {gap(r['max_abs_loss_diff'])}, "
                f"loss(y|x) rho {fmt(r['loss_condition']['spearman'])}, "
                f"loss(y) rho {fmt(r['loss_alone']['spearman'])}, "
                f"IFD>1 {r['above_one']['iclselect']}/{r['above_one']['reference']}"
            ),
            "wici": lambda r: (
                f"max |loss diff| {gap(r['max_abs_loss_diff'])}, "
                f"own IFD rho {fmt(r['own_ifd']['spearman'])} (n {r['own_ifd']['n']}), "
                f"probe ICI rho {fmt(r['probe_ici']['spearman'])} (n {r['probe_ici']['n']}), "
                f"sign agree {r['probe_ici_sign_agree']['same_sign']}/"
                f"{r['probe_ici_sign_agree']['pairs']}, top probe "
                f"{r['most_used_probes'][0] if r['most_used_probes'] else '-'}"
            ),
            "icon": lambda r: (
                f"two control seeds rho {fmt(r['iclselect_other_controls']['spearman'])}, "
                f"mean influence rho {fmt(r['mean_influence']['spearman'])}, "
                f"consistency rho {fmt(r['consistency']['spearman'])}, "
                f"{r['assessment_rows']} assessment rows, |sig| > 0.99: "
                f"{r['near_saturated_significance']['iclselect']}"
                f"/{r['near_saturated_significance']['reference']}"
            ),
        }[name](r)
        lines.append(
            f"{name:<7}{r['n']:>4}{fmt(r['spearman']):>10}{fmt(r['kendall']):>9}"
            f"{fmt(r['pearson']):>9}{r['only_iclselect']['n']:>10}{r['only_reference']['n']:>10}"
            f"{r['neither']['n']:>9}  {extra}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60, help="IFD: first N rows of the slice")
    parser.add_argument(
        "--wici-rows", type=int, default=None, help="wICI pool: first N rows (default: --rows // 3)"
    )
    parser.add_argument(
        "--wici-probes", type=int, default=3, help="wICI probes per candidate (reference code: 5)"
    )
    parser.add_argument(
        "--icon-candidates",
        type=int,
        default=None,
        help="ICon candidates: first N short rows (default: --rows // 8)",
    )
    parser.add_argument("--icon-assessment", type=int, default=5, help="ICon assessment rows")
    parser.add_argument(
        "--icon-max-chars",
        type=int,
        default=400,
        help="ICon candidates: only rows of at most this many characters "
        "(instruction + input + output; 0: no limit)",
    )
    parser.add_argument(
        "--icon-draw",
        choices=("short", "shipped"),
        default="short",
        help="short: seeded draw among short assessment rows; shipped: "
        "iclselect's assessment_size draw from all 1,020 (slow)",
    )
    parser.add_argument(
        "--icon-max-tokens",
        type=int,
        default=80,
        help="short draw: most tokens (inputs + response) of an assessment row",
    )
    parser.add_argument(
        "--icon-min-response",
        type=int,
        default=8,
        help="short draw: fewest response tokens of an assessment row",
    )
    parser.add_argument("--methods", default="ifd,wici,icon")
    parser.add_argument("--store", default=None, help="iclselect result store (default: temp)")
    parser.add_argument("--out", default="runs/reference-check.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    started = time.perf_counter()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="reference-check-") as tmp:
        ctx = Ctx(args, Path(tmp))
        for name in methods:
            t = time.perf_counter()
            if name == "ifd":
                results[name] = check_ifd(ctx, args.rows)
            elif name == "wici":
                results[name] = check_wici(
                    ctx, args.wici_rows or max(args.rows // 3, 8), args.wici_probes
                )
            elif name == "icon":
                results[name] = check_icon(
                    ctx,
                    args.icon_candidates or max(args.rows // 8, 4),
                    args.icon_assessment,
                    args.icon_draw,
                )
            else:
                raise SystemExit(f"unknown method {name!r}: ifd, wici or icon")
            print(f"[{name}] {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started

    print(table(results))
    print(f"wall time {wall:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"args": vars(args), "wall_seconds": wall, "methods": results}
    out.write_text(json.dumps(clean(payload), indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
