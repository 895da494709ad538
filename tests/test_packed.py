"""Packed attention against PyTorch's own scaled_dot_product_attention, one sequence at a time.

Tolerance: 1e-5 on fp32 outputs (different summation order, same arithmetic)."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from iclselect.lm import Engine, LogprobRequest, Template
from iclselect.lm.packed import NAME, Segment, attention

HEADS, KV_HEADS, DIM = 6, 2, 16


class _Layer(torch.nn.Module):
    layer_idx = 0


def _reference(q, k, v, prefix: range | None, own: range, window: int | None) -> torch.Tensor:
    """SDPA over the segment's keys (prefix then its own), with an explicit boolean mask."""
    keys = list(prefix or []) + list(own)
    group = HEADS // KV_HEADS
    qs = q[0, :, own.start : own.stop]
    ks = k[0, :, keys].repeat_interleave(group, dim=0)
    vs = v[0, :, keys].repeat_interleave(group, dim=0)
    query_pos = torch.arange(len(keys) - len(own), len(keys))[:, None]
    key_pos = torch.arange(len(keys))[None, :]
    allowed = key_pos <= query_pos
    if window is not None:
        allowed &= query_pos - key_pos < window
    out = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, attn_mask=allowed)
    return out.transpose(0, 1)  # tokens x heads x dim


@pytest.mark.parametrize("window", [None, 5])
def test_packed_attention_equals_each_sequence_alone(window):
    generator = torch.Generator().manual_seed(0)
    tokens = 40
    q = torch.randn(1, HEADS, tokens, DIM, generator=generator)
    k = torch.randn(1, KV_HEADS, tokens, DIM, generator=generator)
    v = torch.randn(1, KV_HEADS, tokens, DIM, generator=generator)
    # A prefix (0-8) with two sequences behind it, then a sequence on its own.
    segments = [Segment(0, 8), Segment(8, 17, 0, 8), Segment(17, 30, 0, 8), Segment(30, 40)]
    out, _ = attention(_Layer(), q, k, v, None, DIM**-0.5, segments=segments, sliding_window=window)
    for seg in segments:
        prefix = range(seg.prefix_start, seg.prefix_stop) if seg.prefix_stop else None
        expected = _reference(q, k, v, prefix, range(seg.start, seg.stop), window)
        worst = (out[0, seg.start : seg.stop] - expected).abs().max().item()
        assert worst < 1e-5, f"segment {seg}: max difference {worst:.2e}"


def test_unsupported_attention_variants_are_refused():
    q, kv = torch.zeros(1, HEADS, 4, DIM), torch.zeros(1, KV_HEADS, 4, DIM)
    with pytest.raises(ValueError, match="softcap"):
        attention(_Layer(), q, kv, kv, None, segments=[Segment(0, 4)], softcap=30.0)


def test_a_model_whose_attention_ignores_segments_is_refused(lm, monkeypatch):
    """Attention that crossed segments would give wrong numbers silently: the engine checks
    every layer ran packed attention, and stops otherwise."""
    monkeypatch.setitem(AttentionInterface._global_mapping, NAME, sdpa_attention_forward)
    engine = Engine(lm, Template("chat", lm.tokenizer), show_progress=False)
    with pytest.raises(RuntimeError, match="0 of 30 attention layers"):
        engine.loglikelihood([LogprobRequest((), "a short reply")])
    assert lm.model.config._attn_implementation == "sdpa"
