"""Packed attention against PyTorch's own scaled_dot_product_attention, one sequence at a time,
and the two packed kernels (the loop and compiled flex attention) against each other.

Tolerance: 1e-5 on fp32 outputs (different summation order, same arithmetic)."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from iclselect.lm import Engine, LogprobRequest, Template
from iclselect.lm.packed import NAME, Row, Segment, attention, flex_attention

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


# A prefix (0-8) with two sequences behind it, a sequence on its own, then a second prefix with
# one sequence behind it.
SEGMENTS = [
    Segment(0, 8), Segment(8, 17, 0, 8), Segment(17, 30, 0, 8), Segment(30, 40),
    Segment(40, 58), Segment(58, 70, 40, 58),
]  # fmt: skip


def _row(segments: list[Segment]) -> Row:
    """Position ids as the engine lays them: a prefix from 0, a sequence after its prefix."""
    positions: list[int] = []
    for seg in segments:
        after = seg.prefix_stop - seg.prefix_start
        positions += range(after, after + seg.stop - seg.start)
    return Row(segments, torch.tensor(positions))


def _qkv(tokens: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return tuple(
        torch.randn(1, heads, tokens, DIM, generator=generator).to(dtype)
        for heads in (HEADS, KV_HEADS, KV_HEADS)
    )


@pytest.mark.parametrize("window", [None, 5])
def test_packed_attention_equals_each_sequence_alone(window):
    q, k, v = _qkv(70)
    row = _row(SEGMENTS)
    out, _ = attention(_Layer(), q, k, v, None, DIM**-0.5, row=row, sliding_window=window)
    for seg in SEGMENTS:
        prefix = range(seg.prefix_start, seg.prefix_stop) if seg.prefix_stop else None
        expected = _reference(q, k, v, prefix, range(seg.start, seg.stop), window)
        worst = (out[0, seg.start : seg.stop] - expected).abs().max().item()
        assert worst < 1e-5, f"segment {seg}: max difference {worst:.2e}"


def test_flex_kernel_equals_the_loop():
    """The GPU kernel (compiled flex attention over the whole padded row) and the loop agree on
    shared prefixes, grouped-query heads and sliding windows (fp32: 1e-5). Both windows share
    one test so the CPU compiles the kernel for one bucket only."""
    q, k, v = _qkv(70)
    for window in (None, 5):
        row = _row(SEGMENTS)
        loop, _ = attention(_Layer(), q, k, v, None, DIM**-0.5, row=row, sliding_window=window)
        flex, _ = flex_attention(_Layer(), q, k, v, None, DIM**-0.5, row=row, sliding_window=window)
        assert flex.shape == loop.shape
        worst = (flex - loop).abs().max().item()
        assert worst < 1e-5, f"window {window}: max difference {worst:.2e}"


def test_unsupported_attention_variants_are_refused():
    q, kv = torch.zeros(1, HEADS, 4, DIM), torch.zeros(1, KV_HEADS, 4, DIM)
    with pytest.raises(ValueError, match="softcap"):
        attention(_Layer(), q, kv, kv, None, row=_row([Segment(0, 4)]), softcap=30.0)


def test_a_model_whose_attention_ignores_segments_is_refused(lm, monkeypatch):
    """Attention that crossed segments would give wrong numbers silently: the engine checks
    every layer ran packed attention, and stops otherwise."""
    monkeypatch.setitem(AttentionInterface._global_mapping, NAME, sdpa_attention_forward)
    engine = Engine(lm, Template("chat", lm.tokenizer), show_progress=False)
    with pytest.raises(RuntimeError, match="0 of 30 attention layers"):
        engine.loglikelihood([LogprobRequest((), "a short reply")])
    assert lm.model.config._attn_implementation == "sdpa"
