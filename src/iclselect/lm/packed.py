"""Many sequences in one forward pass, laid end to end in a single row ("packed"), no padding.

A packed row holds segments. A segment's queries attend to an optional span earlier in the same
row (its shared prefix, e.g. the demo before several probes) and causally to themselves, never
to other segments; each token's position id restarts per sequence, so rotary embeddings see the
positions a lone forward pass would. The prefix runs once per row and every segment behind it
reads its keys and values directly: no cache copies, no padding, and the linear layers see one
tall matrix instead of many short ones (on a CPU that is what keeps them near peak).

Two kernels compute the same attention (`KERNELS`):
- "loop": one sequence at a time, about 20 small kernels per sequence per layer. On 2 CPU cores
  that beat PyTorch's CPU flash-attention kernel (122-158 GFLOP/s on these shapes) and padding
  sequences into batched buckets (1.05-1.3x slower).
- "flex": PyTorch's compiled flex_attention, one fused kernel per layer for the whole row, with a
  block mask built once per row from its segments and shared by every layer. A GPU running the
  loop on 16k-token rows of 80-token sequences would spend its time launching kernels. Rows are
  padded to a power of two so the kernel compiles once per size bucket, not once per row.
`bench speed` times both; `default_kernel` picks the faster per device.

The model's own layers do everything but attention; attention is swapped in through
transformers' AttentionInterface for the duration of `packed(model)`, and `check_all_layers`
refuses a model whose layers did not route through it (their attention would have crossed
segments and given wrong numbers silently).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from transformers import AttentionInterface

from iclselect.errors import UsageError

NAME = "iclselect-packed"
FLEX_NAME = "iclselect-packed-flex"
KERNELS = {"loop": NAME, "flex": FLEX_NAME}
# Smallest padded row for flex attention: its tiles are 128 x 128.
_MIN_BUCKET = 128


@dataclass(frozen=True)
class Segment:
    """Queries start..stop attend to prefix_start..prefix_stop, then causally to themselves."""

    start: int
    stop: int
    prefix_start: int = 0
    prefix_stop: int = 0


@dataclass
class Row:
    """A packed row's layout: its segments and each token's position id. Flex attention's block
    mask is derived from it once per row (per sliding window) and reused by every layer."""

    segments: Sequence[Segment]
    positions: torch.Tensor  # 1-D, one per token, on the model's device
    _masks: dict[int | None, Any] = field(default_factory=dict, repr=False)

    def block_mask(self, window: int | None, size: int) -> Any:
        if window not in self._masks:
            self._masks[window] = _block_mask(self, window, size)
        return self._masks[window]


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor copied to `device` without making the host wait: from pinned memory on a
    GPU (a copy from pageable memory waits for every kernel queued before it)."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def default_kernel(device: torch.device) -> str:
    """The kernel `bench speed` measured faster on this kind of device (BENCHMARKS.md)."""
    return "flex" if device.type == "cuda" else "loop"


# Layers that ran packed attention since the last `packed(...)` began.
_layers_run: set[int] = set()
_causal_masks: dict[torch.device, torch.Tensor] = {}


def _future(length: int, device: torch.device) -> torch.Tensor:
    """True above the diagonal of a length x length block: the keys a query may not see. One
    matrix per device, grown as needed; its top-left corner is the mask of any shorter block."""
    mask = _causal_masks.get(device)
    if mask is None or mask.shape[0] < length:
        size = max(length, 2 * mask.shape[0] if mask is not None else 1024)
        mask = torch.ones(size, size, dtype=torch.bool, device=device).triu(1)
        _causal_masks[device] = mask
    return mask[:length, :length]


def attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    row: Row | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of a packed row (query: 1 x heads x tokens x dim; key and value: 1 x kv-heads x
    tokens x dim), segment by segment; returns 1 x tokens x heads x dim like transformers' own.
    Query heads sharing a key-value head are stacked into one matrix product (grouped-query
    attention without copying keys); the softmax runs in float32 and its weights go back to the
    model's dtype for the product with the values, as transformers' eager attention does."""
    _refuse_unsupported(module, kwargs)
    assert row is not None, "packed attention runs only inside Engine.compute"
    window = kwargs.get("sliding_window")
    heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[-1]
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    queries, keys, values = query[0], key[0], value[0]
    out = query.new_empty(query.shape[2], heads, dim)
    for seg in row.segments:
        length, prefix = seg.stop - seg.start, seg.prefix_stop - seg.prefix_start
        q = queries[:, seg.start : seg.stop].reshape(kv_heads, group * length, dim)
        k, v = keys[:, seg.start : seg.stop], values[:, seg.start : seg.stop]
        if prefix:
            k = torch.cat((keys[:, seg.prefix_start : seg.prefix_stop], k), dim=1)
            v = torch.cat((values[:, seg.prefix_start : seg.prefix_stop], v), dim=1)
        scores = torch.baddbmm(q.new_empty(1, 1, 1), q, k.transpose(1, 2), beta=0, alpha=scale)
        scores = scores.view(kv_heads, group, length, prefix + length)
        scores[..., prefix:].masked_fill_(_future(length, q.device), float("-inf"))
        if window is not None and prefix + length > window:
            scores.masked_fill_(_outside_window(length, prefix, window, q.device), float("-inf"))
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
        weights = weights.view(kv_heads, group * length, prefix + length)
        out[seg.start : seg.stop] = torch.bmm(weights, v).view(heads, length, dim).transpose(0, 1)
    _layers_run.add(getattr(module, "layer_idx", id(module)))
    return out.unsqueeze(0), None


def _outside_window(length: int, prefix: int, window: int, device: torch.device) -> torch.Tensor:
    """Keys at least `window` positions behind their query (sliding-window attention)."""
    query_positions = torch.arange(prefix, prefix + length, device=device)[:, None]
    key_positions = torch.arange(prefix + length, device=device)[None, :]
    return query_positions - key_positions >= window


def flex_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    row: Row | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The same attention as `attention`, as one compiled flex_attention kernel over the row."""
    _refuse_unsupported(module, kwargs)
    assert row is not None, "packed attention runs only inside Engine.compute"
    tokens = query.shape[2]
    size = bucket(tokens)
    pad = (0, 0, 0, size - tokens)
    out = _compiled_flex()(
        torch.nn.functional.pad(query, pad),
        torch.nn.functional.pad(key, pad),
        torch.nn.functional.pad(value, pad),
        block_mask=row.block_mask(kwargs.get("sliding_window"), size),
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    _layers_run.add(getattr(module, "layer_idx", id(module)))
    return out[:, :, :tokens].transpose(1, 2), None


def _refuse_unsupported(module: torch.nn.Module, kwargs: dict[str, Any]) -> None:
    for unsupported in ("softcap", "s_aux"):
        if kwargs.get(unsupported) is not None:
            raise UsageError(
                f"{type(module).__name__} uses attention {unsupported!r}, which iclselect's "
                "packed scoring does not implement"
            )


def bucket(tokens: int) -> int:
    """The padded length flex attention runs a row of `tokens` at (one compilation each)."""
    return max(_MIN_BUCKET, 1 << (tokens - 1).bit_length())


@cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.flex_attention import flex_attention as kernel

    return torch.compile(kernel, dynamic=False)


def _block_mask(row: Row, window: int | None, size: int) -> Any:
    """Which keys each query of the padded row may see: its own segment's earlier tokens and its
    segment's shared prefix (within `window` positions, if any). Padding forms one segment of
    its own, so no query's row of the mask is empty."""
    from torch.nn.attention.flex_attention import create_block_mask

    device = row.positions.device
    # Built on the host and moved once: a slice assignment per segment on a GPU would be
    # thousands of tiny kernels per row.
    lengths = torch.tensor([seg.stop - seg.start for seg in row.segments] + [size])
    per_token = torch.tensor(
        [(n, seg.prefix_start, seg.prefix_stop) for n, seg in enumerate(row.segments)]
        + [(-1, 0, 0)],
        dtype=torch.int32,
    ).repeat_interleave(lengths, dim=0)[:size]
    # Separate buffers, not views of one: the CPU flex kernel's code generator needs that.
    segment, prefix_start, prefix_stop = (
        t.contiguous() for t in to_device(per_token, device).unbind(1)
    )
    position = torch.nn.functional.pad(
        row.positions.to(torch.int32), (0, size - len(row.positions))
    )

    def visible(batch: Any, head: Any, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        own = (segment[q] == segment[kv]) & (kv <= q)
        shared = (kv >= prefix_start[q]) & (kv < prefix_stop[q])
        return own | shared

    def visible_in_window(batch: Any, head: Any, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return visible(batch, head, q, kv) & (position[q] - position[kv] < window)

    mask_mod = visible if window is None else visible_in_window
    # Compiled on a GPU: evaluating the mask eagerly materialises size x size booleans per row.
    compiled = device.type == "cuda"
    return create_block_mask(mask_mod, None, None, size, size, device=device, _compile=compiled)


AttentionInterface.register(NAME, attention)
AttentionInterface.register(FLEX_NAME, flex_attention)


@contextmanager
def packed(model: torch.nn.Module, kernel: str = "loop") -> Iterator[None]:
    """Attention of `model` is packed attention (`kernel`, one of KERNELS) inside the block, its
    own again after."""
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = KERNELS[kernel]
    _layers_run.clear()
    try:
        yield
    finally:
        config._attn_implementation = previous


def check_all_layers(model: torch.nn.Module) -> None:
    """Raise unless every attention layer of `model` ran packed attention in the last pass."""
    expected = model.config.num_hidden_layers
    if len(_layers_run) != expected:
        raise RuntimeError(
            f"{type(model).__name__}: {len(_layers_run)} of {expected} attention layers went "
            "through transformers' AttentionInterface; iclselect scores packed rows and needs "
            "all of them to (models with their own attention code are not supported)"
        )
