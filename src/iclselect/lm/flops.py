"""Model FLOPs of a decoder forward pass, to report model-FLOPs utilisation.

Per token at position p (0-based): 2 x (non-embedding parameters) for the matmuls, plus
4 x layers x hidden x (p + 1) for attention scores and the weighted sum over p + 1 keys; and
2 x hidden x vocabulary at each position whose logits are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FlopModel:
    matmul_params: int  # parameters multiplied per token: everything but the embedding tables
    layers: int
    hidden: int
    vocab: int

    @classmethod
    def of(cls, model: Any) -> FlopModel:
        config = model.config
        embedding = model.get_input_embeddings().weight.numel()
        head = model.get_output_embeddings().weight
        total = sum(p.numel() for p in model.parameters())
        # A tied head is not in parameters() twice; an untied one is counted by head_flops.
        tied = head.data_ptr() == model.get_input_embeddings().weight.data_ptr()
        matmul = total - embedding - (0 if tied else head.numel())
        return cls(matmul, config.num_hidden_layers, config.hidden_size, head.shape[0])

    def forward(self, n_tokens: int, start: int = 0) -> float:
        """Tokens at positions start .. start + n_tokens - 1, without the LM head."""
        positions = n_tokens * start + n_tokens * (n_tokens + 1) // 2
        return 2.0 * self.matmul_params * n_tokens + 4.0 * self.layers * self.hidden * positions

    def head(self, n_positions: int) -> float:
        return 2.0 * self.hidden * self.vocab * n_positions
