"""Standalone ports of the authors' public reference code for three data-selection scores: Cherry
IFD, wICI and RICo/ICon. They exist to compare iclselect's rankings with what the authors' scripts
compute, so they reproduce those scripts row by row, quirks included: prompt strings,
tokenisation (the tokenizer's default add_special_tokens), the way each finds the response start,
truncation, loss reduction and ratio form. Only torch and transformers objects passed in by the
caller are used: no iclselect imports, batch size 1, and the model in whatever dtype the caller
loaded it (fp32 for the comparisons; the RICo scripts themselves ran the model in fp16, `.half()`).

Sources, as stored in the code index (commit of the file version read):
- Cherry IFD: tianyi-lab/Cherry_LLM (the repository formerly at MingLiiii/Cherry_LLM),
  cherry_seletion/data_analysis.py @6c200ba7, cherry_seletion/put_ifd_score.py @6c200ba7,
  cherry_seletion/data_by_IFD.py @6c200ba7, scripts/cherry_selection.sh (max_length 512,
  --prompt alpaca).
- wICI: trust-nlp/SyntheticData-Curator @a0c683ff, source/ICL-influence-new.py (IFD and few-shot
  IFD), source/probe-retrival.py (probes), source/data-extract.py (weighting, filter, selection).
- RICo/ICon: AnnaYang2020/RICo_Data_Selection_for_Instruction-Tuning @aa289b2e,
  rico_selection/sample_candidates.py (prompt), compute_assessment_ppl.py (PPL(S)),
  compute_context_ppl.py (PPL(S|T)), compute_random_context_ppl.py (PPL(S|T_rand)),
  compute_rico_scores.py (influence and aggregates).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from typing import Any

import torch

# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _encode(tokenizer, text: str, max_length: int | None = None) -> torch.Tensor:
    """`tokenizer.encode(text, return_tensors="pt", truncation=True, max_length=...)`, as all three
    codebases call it (default add_special_tokens, right truncation)."""
    if max_length is None:
        return tokenizer.encode(text, return_tensors="pt")
    return tokenizer.encode(text, return_tensors="pt", truncation=True, max_length=max_length)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _hf_loss(model, ids: torch.Tensor, labels: torch.Tensor):
    """`model(ids, labels=labels)`: transformers' own shifted, -100-masked mean cross-entropy.
    Every label masked gives NaN (a mean over nothing), exactly as in the authors' runs."""
    dev = _device(model)
    return model(ids.to(dev), labels=labels.to(dev))


# --------------------------------------------------------------------------------------------
# 1. Cherry IFD
# --------------------------------------------------------------------------------------------

CHERRY_PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
CHERRY_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


def _cherry_part_text(model, tokenizer, text: str, target_span: str, max_length: int):
    """data_analysis.py, get_perplexity_and_embedding_part_text: PPL of the span from
    `text.rfind(target_span)` on, plus the loss of every token 1..end-1 (the list the IFD script
    slices later)."""
    input_ids = _encode(tokenizer, text, max_length)
    start_index = text.rfind(target_span)
    start_token = len(tokenizer.encode(text[:start_index]))
    labels = input_ids.clone()
    labels[0, :start_token] = -100
    out = _hf_loss(model, input_ids, labels)
    ppl = torch.exp(out.loss).item()
    # losses[i-1] = NLL of token i given tokens < i, for i in 1..end_token-1 (their per-position
    # LogSoftmax + NLLLoss loop, vectorised).
    logp = torch.log_softmax(out.logits[0, :-1].float(), dim=-1)
    targets = input_ids[0, 1:].to(logp.device)
    losses = (-logp.gather(1, targets[:, None])[:, 0]).tolist()
    return ppl, losses


def _cherry_loss_part(tokenizer, text: str, target_span: str, max_length: int, loss_list_):
    """put_ifd_score.py / data_by_IFD.py, get_loss_part_text (a re-tokenisation, no model)."""
    input_ids = _encode(tokenizer, text, max_length)
    start_index = text.rfind(target_span)
    start_token = len(tokenizer.encode(text[:start_index]))
    end_token_real = input_ids.shape[1]
    loss_list = loss_list_[start_token - 1 : end_token_real - 1]  # a Python list slice
    return end_token_real - start_token, loss_list


def _np_mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")  # np.mean([]) is nan


def _np_div(a: float, b: float) -> float:
    if b == 0.0:
        return float("nan") if (a == 0.0 or math.isnan(a)) else math.copysign(math.inf, a)
    return a / b


def cherry_ifd(model, tokenizer, row: dict, max_length: int = 512) -> dict[str, Any]:
    """Cherry IFD of one row, as `data_analysis.py --mod cherry --prompt alpaca --max_length 512`
    followed by `put_ifd_score.py --prompt alpaca --max_length 512` compute it (data_by_IFD.py
    computes the same ratio and then also drops ratio > 1 before selecting the highest).

    Returns ppl_alone / ppl_condition (data_analysis.py's exp(HF loss), stored in the .pt as
    `ppl`), mean_loss_alone / mean_loss_condition (the means put_ifd_score.py takes from the
    token-loss lists), ifd = mean_loss_condition / mean_loss_alone (NaN where put_ifd_score.py
    writes NaN), and the two token-loss lists.

    Quirks reproduced:
    - The response alone is scored in the text "### Response:" + output (no preamble, no space or
      newline); the conditioned text is the full Alpaca prompt + output, nothing between.
    - The input block is used when `input != ''` (not stripped); a missing "input" key counts as ''.
    - The response start is `text.rfind(output)` on the ORIGINAL, untruncated text (never a
      decoded one), turned into tokens as len(tokenizer.encode(text[:start])), which counts a BOS
      when the tokenizer adds one. Since the output is a suffix, rfind always lands on the true
      character boundary; the token boundary is off only if BPE merges across it.
    - Without a BOS the first response token is still scored: "### Response:" precedes it.
    - Truncation: conditioned text at max_length (512); the alone text at
      max_length - len(encode(alpaca_prompt, max_length)) - 2 (data_analysis.py's "n2 = n3-n1-2").
    - put_ifd_score.py re-tokenises with its own lengths: instruct_i there is the RAW instruction
      (not the Alpaca prompt), so its guard `max_length - len(encode(instruction)) - 2 > 4`, its
      end token for the alone text (truncated at max_length - len(instruction tokens) - 2) and its
      check `len(instruction tokens) + len_1 > max_length` use the instruction's length; the list
      slice then clips to what data_analysis.py actually scored. NaN when the guard fails, when
      len_1 or len_2 == 0, or when that length check fails. (The authors re-tokenised with
      yahma/llama-7b-hf, the model's own tokenizer; this port uses the tokenizer given.)
    - IFD is a ratio of MEAN LOSSES (not perplexities).
    """
    instruction = row["instruction"]
    output = row["output"]
    input_ = row.get("input", "")  # `row["input"] if "input" in row.keys() else ""`
    if input_ == "":
        prompt = CHERRY_PROMPT_NO_INPUT.format_map({"instruction": instruction})
    else:
        prompt = CHERRY_PROMPT_INPUT.format_map({"instruction": instruction, "input": input_})
    whole_text = prompt + output
    direct_answer_text = "### Response:" + output

    # data_analysis.py (mod == 'cherry'): instruct_i is the Alpaca prompt here.
    prompt_len = _encode(tokenizer, prompt, max_length).shape[1]
    ppl_alone, losses_alone = _cherry_part_text(
        model, tokenizer, direct_answer_text, output, max_length - prompt_len - 2
    )
    ppl_condition, losses_condition = _cherry_part_text(
        model, tokenizer, whole_text, output, max_length
    )

    # put_ifd_score.py: instruct_i is the raw instruction here.
    instruction_len = _encode(tokenizer, instruction, max_length).shape[1]
    result = {
        "ppl_alone": ppl_alone,
        "ppl_condition": ppl_condition,
        "mean_loss_alone": float("nan"),
        "mean_loss_condition": float("nan"),
        "ifd": float("nan"),
        "token_loss_alone": losses_alone,
        "token_loss_condition": losses_condition,
    }
    if not max_length - instruction_len - 2 > 4:
        return result
    len_1, loss_list_1 = _cherry_loss_part(
        tokenizer, direct_answer_text, output, max_length - instruction_len - 2, losses_alone
    )
    len_2, loss_list_2 = _cherry_loss_part(
        tokenizer, whole_text, output, max_length, losses_condition
    )
    if len_1 == 0 or len_2 == 0:
        return result
    if instruction_len + len_1 > max_length:
        return result
    mean_1 = _np_mean(loss_list_1)
    mean_2 = _np_mean(loss_list_2)
    result.update(mean_loss_alone=mean_1, mean_loss_condition=mean_2, ifd=_np_div(mean_2, mean_1))
    return result


# --------------------------------------------------------------------------------------------
# 2. wICI
# --------------------------------------------------------------------------------------------

WICI_PROMPT_INPUT = "{instruction}\n{input}\n"
WICI_PROMPT_NO_INPUT = "{instruction}\n"


def wici_prompt(row: dict) -> str:
    """PROMPT_DICT_NONE: the input template when `(input or "").strip()` is non-empty, but it
    inserts the row's input (and instruction) UNstripped, via format_map."""
    inp = (row.get("input") or "").strip()
    return (WICI_PROMPT_INPUT if inp else WICI_PROMPT_NO_INPUT).format_map(row)


def wici_ppl_whole(model, tokenizer, text: str, max_length: int = 1024) -> float:
    """get_perplexity_whole: exp(HF loss) with labels = ids, so every token but the first is
    scored (the first response token goes unscored unless the tokenizer adds a BOS). Any
    exception (e.g. empty text -> zero-length input) returns the 0.0 sentinel."""
    try:
        ids = _encode(tokenizer, text, max_length)
        out = _hf_loss(model, ids, ids)
        return torch.exp(out.loss).item()
    except Exception:
        return 0.0


def wici_ppl_conditional(
    model, tokenizer, full_text: str, target: str, max_length: int = 1024
) -> float:
    """get_perplexity_conditional: tokenise (truncated), DECODE with skip_special_tokens, find the
    target by `rfind` in the decoded text (0.0 if absent, e.g. cut by truncation), re-encode the
    decoded prefix (default special tokens, no truncation) and mask that many tokens."""
    try:
        ids = _encode(tokenizer, full_text, max_length)
        decoded = tokenizer.decode(ids[0], skip_special_tokens=True)
        start = decoded.rfind(target)
        if start < 0:
            return 0.0
        split = _encode(tokenizer, decoded[:start]).shape[1]
        labels = ids.clone()
        labels[0, :split] = -100
        out = _hf_loss(model, ids, labels)
        return torch.exp(out.loss).item()
    except Exception:
        return 0.0


def wici_ifd(model, tokenizer, row: dict, max_length: int = 1024) -> dict[str, float]:
    """Phase 1 of ICL-influence-new.py: ppl_A_direct (response alone, no prompt), ppl_A_condition
    (prompt + response), ifd = ppl_A_condition / ppl_A_direct, 0.0 if either is the 0.0 sentinel.
    NaN perplexities (e.g. a one-token response without BOS) pass through as NaN."""
    prompt = wici_prompt(row)
    outp = row.get("output", "") or ""
    ppl_dir = wici_ppl_whole(model, tokenizer, outp, max_length)
    ppl_cond = wici_ppl_conditional(model, tokenizer, prompt + outp, outp, max_length)
    ifd = 0.0 if (ppl_dir == 0.0 or ppl_cond == 0.0) else ppl_cond / ppl_dir
    return {"ppl_A_direct": ppl_dir, "ppl_A_condition": ppl_cond, "ifd": ifd}


def wici_few_shot_ifd(
    model, tokenizer, demo: dict, probes: Sequence[dict], max_length: int = 1024
) -> list[float]:
    """compute_few_ifd_for_list: for each probe B of candidate A, the text prompt_A + out_A +
    prompt_B + out_B (nothing between any of them), PPL of out_B located by rfind in the decoded
    text, divided by PPL(out_B alone) recomputed per pair (same value as B's ppl_A_direct);
    0.0 if either is the 0.0 sentinel."""
    prompt_a = wici_prompt(demo)
    out_a = demo.get("output", "") or ""
    few_ifd = []
    for probe in probes:
        prompt_b = wici_prompt(probe)
        out_b = probe.get("output", "") or ""
        few_ctx = prompt_a + out_a + prompt_b
        ppl_b_dir = wici_ppl_whole(model, tokenizer, out_b, max_length)
        ppl_b_cond = wici_ppl_conditional(model, tokenizer, few_ctx + out_b, out_b, max_length)
        few_ifd.append(0.0 if (ppl_b_dir == 0.0 or ppl_b_cond == 0.0) else ppl_b_cond / ppl_b_dir)
    return few_ifd


def _safe_float(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def wici_aggregate(
    ifd: Sequence[float],
    few_shot_ifd: Sequence[Sequence[float]],
    probe_ids: Sequence[Sequence[int]],
    probe_sims: Sequence[Sequence[float]],
    delta_scope: str = "positive",
    delta_type: str = "absolute",
    max_ifd: float = 1.0,
) -> list[float]:
    """data-extract.py, run_mode_for_ratios' scoring (compute_mode_score_from_saved with the
    default --model_specs "ifd:few_shot_ifd_{mode}", --delta_scope positive, --delta_type
    absolute, --filter_ifd_key ifd, --max_ifd 1.0):
        delta_k = ifd[probe_k] - few_shot_ifd[i][k]      (ICI; "relative" divides by ifd[probe_k])
        term_k  = delta_k * (1 - sim_k)                   (only delta_k > 0 with scope "positive")
        score_i = mean(terms)  (0.0 when no term survives or no probes)
    Candidates with ifd > max_ifd get -1e9 (and are excluded from selection). sim_k is the
    retrieval similarity (inner product of normalised all-MiniLM-L6-v2 instruction embeddings).
    Non-finite ifd / few-shot values are skipped (safe_float); a non-finite own IFD is KEPT by
    the filter; 0.0 sentinels are ordinary numbers (a failed few-shot PPL gives delta = ifd_b)."""
    scores = []
    for i in range(len(ifd)):
        own = _safe_float(ifd[i])
        if own is not None and own > max_ifd:
            scores.append(-1e9)
            continue
        sims = probe_sims[i] or []
        nn_ids = probe_ids[i] or []
        fs_vals = few_shot_ifd[i] or []
        terms = []
        for k in range(min(len(sims), len(nn_ids))):
            if not 0 <= nn_ids[k] < len(ifd):  # `nbr_id not in id2idx`
                continue
            if k >= len(fs_vals):
                continue
            base, few = _safe_float(ifd[nn_ids[k]]), _safe_float(fs_vals[k])
            if base is None or few is None:
                continue
            delta = base - few
            if delta_type != "absolute":
                if base <= 0:
                    continue
                delta = delta / base
            if delta_scope == "positive" and delta <= 0:
                continue
            sim = _safe_float(sims[k])
            if sim is None:
                continue
            terms.append(delta * (1.0 - sim))
        scores.append(float(sum(terms) / len(terms)) if terms else 0.0)
    # data-extract.py stores scores in a float32 array; the caller may cast if it matters.
    return scores


def wici_scores(
    model,
    tokenizer,
    rows: Sequence[dict],
    probe_ids: Sequence[Sequence[int]],
    probe_sims: Sequence[Sequence[float]],
    max_length: int = 1024,
) -> list[dict[str, Any]]:
    """End to end for one probe mode: phase 1 (wici_ifd for every row), phase 2 (few-shot IFD
    of each row's probes with the row as the demo), then wici_aggregate. `probe_ids[i]` are
    indices into `rows` (e.g. "top5_similar_ids": FAISS top-33 by inner product, self removed,
    first 5) and `probe_sims[i]` their similarities to row i, both computed by the caller."""
    phase1 = [wici_ifd(model, tokenizer, row, max_length) for row in rows]
    few = []
    for i, row in enumerate(rows):
        ids = [j for j in (probe_ids[i] or []) if isinstance(j, int) and 0 <= j < len(rows)]
        few.append(
            wici_few_shot_ifd(model, tokenizer, row, [rows[j] for j in ids], max_length)
            if ids
            else []
        )
    # safe_get_ids dropped out-of-range ids before phase 2, so the few-shot list and the id list
    # can misalign; data-extract.py pairs them by position k regardless. Reproduced as is.
    scores = wici_aggregate([p["ifd"] for p in phase1], few, probe_ids, probe_sims)
    return [dict(p, few_shot_ifd=f, wici=s) for p, f, s in zip(phase1, few, scores, strict=True)]


def wici_top5_probes(embeddings: torch.Tensor, top5: int = 5, top_n: int = 32):
    """probe-retrival.py's top-k probes from L2-normalised instruction embeddings (all-MiniLM-L6-v2,
    normalize_embeddings=True): exact inner-product search for max(top5, top_n) + 1 = 33, drop the
    row itself if present, keep the first 5. torch.topk stands in for faiss.IndexFlatIP (exact
    ties may be ordered differently). Returns (ids, sims) lists per row."""
    emb = embeddings.float()
    k = min(max(top5, top_n) + 1, emb.shape[0])
    sims, idxs = torch.topk(emb @ emb.T, k, dim=1)
    out_ids, out_sims = [], []
    for i in range(emb.shape[0]):
        ids, ss = idxs[i].tolist(), sims[i].tolist()
        if i in ids:
            p = ids.index(i)
            ids.pop(p)
            ss.pop(p)
        out_ids.append([int(x) for x in ids[:top5]])
        out_sims.append([float(x) for x in ss[:top5]])
    return out_ids, out_sims


# --------------------------------------------------------------------------------------------
# 3. RICo / ICon
# --------------------------------------------------------------------------------------------

RICO_PROMPT_INPUT = "### Instruction:\n{instruction}\n\n### Input: {input}\n\n### Response:"
RICO_PROMPT_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:"
RICO_SEPARATOR = "\n\n\n"
RICO_NOISE_ALPHABET = string.ascii_letters + string.punctuation + string.digits + " "


def rico_record(row: dict) -> dict[str, str]:
    """sample_candidates.py: {"inputs", "response"} from an Alpaca row. The Input block is used when
    the input is not NaN and `!= ''` (not stripped). (That script also drops rows whose
    instruction or input contains http:// or https:// before sampling: the caller's business.)
    Assessment rows already come as {"inputs", "response"} and are used as they are."""
    input_ = row.get("input")
    not_na = input_ is not None and not (isinstance(input_, float) and math.isnan(input_))
    has_input = not_na and input_ != ""
    template = RICO_PROMPT_INPUT if has_input else RICO_PROMPT_NO_INPUT
    return {"inputs": template.format(**row), "response": row["output"]}


def rico_random_noise(text: str, rng: random.Random) -> str:
    """generate_random_noise: one `random.choice` per character of the context text (len() in
    code points) from ascii_letters + punctuation + digits + ' ', drawn afresh for every
    (candidate, assessment) pair. The authors draw from the unseeded module-level `random` in
    each GPU worker, so their draw is not reproducible; here `rng` makes the same calls."""
    return "".join(rng.choice(RICO_NOISE_ALPHABET) for _ in range(len(text)))


def _rico_tok(tokenizer, text: str, max_length: int) -> torch.Tensor:
    return tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)["input_ids"]


def rico_ppl_baseline(model, tokenizer, s: dict) -> dict[str, float]:
    """compute_assessment_ppl.py, PPL(S): ids = inputs_ids + target_ids[:, 1:], labels masked over
    len(inputs_ids). With a BOS tokenizer that scores every response token; without one the
    first response token is dropped from the sequence altogether."""
    input_ids = _rico_tok(tokenizer, s["inputs"], 1024)
    target_ids = _rico_tok(tokenizer, s["response"], 1024)
    ids = torch.cat([input_ids, target_ids[:, 1:]], dim=1)
    labels = ids.clone()
    labels[:, : input_ids.size(1)] = -100
    loss = _hf_loss(model, ids, labels).loss.item()
    return {"loss_ori": loss, "normalized_ppl_ori": math.exp(loss)}


def rico_ppl_context(model, tokenizer, context_text: str, s: dict) -> dict[str, float]:
    """compute_context_ppl.py / compute_random_context_ppl.py, PPL(S | context):
    ids = context_ids + sep_ids[:, 1:] + inputs_ids[:, 1:] + target_ids[:, 1:], each tokenised
    separately (context 2040, separator 10, inputs and target 1024 tokens), and labels masked over
    len(context_ids) + len(sep_ids) + len(inputs_ids) -- the UNsliced lengths, two more than
    precede the target, so the first two kept response tokens are never scored. With a tokenizer
    that adds no BOS the [:, 1:] slices also drop the separator's first token (the whole "\\n\\n\\n"
    when it is one token), the first inputs token and the first response token."""
    input_ids = _rico_tok(tokenizer, s["inputs"], 1024)
    context_ids = _rico_tok(tokenizer, context_text, 2040)
    target_ids = _rico_tok(tokenizer, s["response"], 1024)
    cat_ids = _rico_tok(tokenizer, RICO_SEPARATOR, 10)
    ids = torch.cat([context_ids, cat_ids[:, 1:], input_ids[:, 1:], target_ids[:, 1:]], dim=1)
    labels = ids.clone()
    input_length = context_ids.size(1) + cat_ids.size(1) + input_ids.size(1)
    labels[:, :input_length] = -100
    loss = _hf_loss(model, ids, labels).loss.item()
    return {"loss_ctx": loss, "normalized_ppl_ctx": math.exp(loss)}


def rico_pair(
    model, tokenizer, t: dict, s: dict, rng: random.Random, baseline: dict | None = None
) -> dict[str, float]:
    """One (candidate T, assessment S) pair: context text = T.inputs + T.response (no separator);
    PPL(S|T), PPL(S|T_rand) with a fresh noise string of the same character length, PPL(S)
    (pass `baseline` = rico_ppl_baseline(S) to reuse it; it does not depend on T), and
    influence = (PPL(S|T_rand) - PPL(S|T)) / (PPL(S) + 1e-6)."""
    context_text = t["inputs"] + t["response"]
    ctx = rico_ppl_context(model, tokenizer, context_text, s)
    noise = rico_ppl_context(model, tokenizer, rico_random_noise(context_text, rng), s)
    base = baseline if baseline is not None else rico_ppl_baseline(model, tokenizer, s)
    influence = (-ctx["normalized_ppl_ctx"] + noise["normalized_ppl_ctx"]) / (
        base["normalized_ppl_ori"] + 0.000001
    )
    return {
        "loss_ctx": ctx["loss_ctx"],
        "normalized_ppl_ctx": ctx["normalized_ppl_ctx"],
        "loss_ctx_noise": noise["loss_ctx"],
        "normalized_ppl_ctx_noise": noise["normalized_ppl_ctx"],
        "loss_ori": base["loss_ori"],
        "normalized_ppl_ori": base["normalized_ppl_ori"],
        "influence": influence,
    }


def rico_sigmoid_map(x: float, scale: float = 50) -> float:
    """compute_rico_scores.py, sigmoid_map: 1.0 above 0.5, -1.0 below -0.5, else
    2 / (1 + e^(-50 x)) - 1."""
    if x > 0.5:
        return 1.0
    if x < -0.5:
        return -1.0
    return 2 / (1 + math.exp(-scale * x)) - 1


def rico_aggregate(influences: Sequence[float]) -> dict[str, float]:
    """compute_rico_scores.py's per-candidate aggregates over its pairs, with pandas semantics:
    Significance = sigmoid_map(mean) (mean skips NaN), Consistency = #(> 0) / n and
    Coverage = #(> 0.5) / n (NaN counts in n, never as > 0), Stability = sample variance
    (ddof=1, NaN skipped; NaN with fewer than two values). Selection uses Significance."""
    vals = [float(v) for v in influences]
    finite = [v for v in vals if not math.isnan(v)]
    n = len(vals)
    mean = sum(finite) / len(finite) if finite else float("nan")
    if len(finite) > 1:
        var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    else:
        var = float("nan")
    return {
        "Significance": rico_sigmoid_map(mean),
        "MeanInfluence": mean,
        "Consistency": sum(v > 0 for v in vals) / n if n else float("nan"),
        "Stability": var,
        "Coverage": sum(v > 0.5 for v in vals) / n if n else float("nan"),
    }


def rico_candidate_scores(
    model,
    tokenizer,
    candidate: dict,
    assessment: Sequence[dict],
    rng: random.Random,
    baselines: Sequence[dict] | None = None,
) -> dict[str, Any]:
    """A candidate's RICo scores over an assessment set. `candidate` and the assessment rows are
    {"inputs", "response"} records (rico_record converts an Alpaca row). One noise string is drawn
    per assessment row, in assessment order. The authors group pairs by the candidate's text
    (inputs + response), so identical candidates are merged there; here one call = one group."""
    pairs = [
        rico_pair(model, tokenizer, candidate, s, rng, None if baselines is None else baselines[j])
        for j, s in enumerate(assessment)
    ]
    return dict(rico_aggregate([p["influence"] for p in pairs]), pairs=pairs)
