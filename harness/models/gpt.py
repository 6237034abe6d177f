"""The reference model family: a byte-level GPT-style decoder in plain torch.

Byte-level (vocabulary 256) so no tokenizer is ever downloaded. Every size knob is a
field of :class:`GPTConfig`, so structure sweeps override depth, width, heads or the FFN
ratio without new code. Attention heads keep their own ``head_dim`` so structured
pruning can remove heads physically (``n_heads * head_dim`` need not equal ``width``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

VOCAB_SIZE = 256


@dataclass(frozen=True)
class GPTConfig:
    depth: int = 4
    width: int = 256
    heads: int = 4
    ffn_ratio: float = 4.0
    max_seq_len: int = 256
    vocab_size: int = VOCAB_SIZE
    # per-layer overrides written by structured pruning; empty means "as configured"
    layer_heads: tuple[int, ...] = field(default=())
    layer_ffn: tuple[int, ...] = field(default=())

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def ffn_dim(self) -> int:
        return int(round(self.width * self.ffn_ratio))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layer_heads"] = list(self.layer_heads)
        d["layer_ffn"] = list(self.layer_ffn)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        d = dict(d)
        d["layer_heads"] = tuple(d.get("layer_heads", ()))
        d["layer_ffn"] = tuple(d.get("layer_ffn", ()))
        return cls(**d)


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        inner = heads * head_dim
        self.qkv = nn.Linear(width, 3 * inner)
        self.proj = nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split(self.heads * self.head_dim, dim=2)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(width, hidden)
        self.out = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, head_dim: int, hidden: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, head_dim)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = MLP(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.width % config.heads:
            raise ValueError(f"width {config.width} is not divisible by heads {config.heads}")
        self.config = config
        c = config
        heads = c.layer_heads or (c.heads,) * c.depth
        ffn = c.layer_ffn or (c.ffn_dim,) * c.depth
        self.tok = nn.Embedding(c.vocab_size, c.width)
        self.pos = nn.Embedding(c.max_seq_len, c.width)
        self.blocks = nn.ModuleList(Block(c.width, heads[i], c.head_dim, ffn[i]) for i in range(c.depth))
        self.ln_f = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.vocab_size, bias=False)

    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2 style initialisation from an explicit generator (deterministic builds)."""
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.zeros_(p) if name.endswith("bias") else nn.init.ones_(p)
                continue
            s = std / math.sqrt(2 * self.config.depth) if name.endswith(("proj.weight", "out.weight")) else std
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * s)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.config.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds the model's max_seq_len {self.config.max_seq_len}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def attention_flops(model: nn.Module, batch: int, seq_len: int) -> int:
    """FLOPs of the attention score and value products, by formula.

    FlopCounterMode counts nothing for CPU scaled-dot-product attention, so these are
    added by hand: per layer, Q@K^T and P@V are each ``2 * b * h * t * t * d`` FLOPs
    (the full square; the causal kernel may skip half, but the math backend does not).
    """
    total = 0
    for m in model.modules():
        if isinstance(m, CausalSelfAttention):
            total += 2 * (2 * batch * m.heads * seq_len * seq_len * m.head_dim)
    return total
