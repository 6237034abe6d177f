"""Truncated-SVD factorisation of ``nn.Linear`` layers (imports torch).

A Linear with weight ``W`` (out x in) becomes ``up(down(x))`` where ``down`` is in -> r
(weight ``sqrt(S_r) Vh_r``, no bias) and ``up`` is r -> out (weight ``U_r sqrt(S_r)``,
the original bias): the best rank-r approximation of ``W`` (Eckart-Young). It holds
``r * (in + out)`` weights instead of ``in * out``, so a layer is factorised only when
that is fewer; the others stay dense.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_NAMES = ("head", "lm_head")


class LowRankLinear(nn.Module):
    """A Linear(in, out) stored as Linear(in, r, bias=False) followed by Linear(r, out)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, rank: int) -> LowRankLinear:
        w = linear.weight.detach().to(torch.float32)
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        root = s[:rank].sqrt()
        m = cls(linear.in_features, linear.out_features, rank, bias=linear.bias is not None,
                device=w.device, dtype=linear.weight.dtype)
        m.down.weight.copy_(root[:, None] * vh[:rank])
        m.up.weight.copy_(u[:, :rank] * root)
        if linear.bias is not None:
            m.up.bias.copy_(linear.bias)
        return m

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def rank_for(in_features: int, out_features: int, rank: int = 0, ratio: float = 0.25) -> int:
    """``rank`` if given (> 0), else ``ratio`` of the layer's full rank; never above full rank."""
    full = min(in_features, out_features)
    r = rank if rank > 0 else max(1, round(ratio * full))
    return min(r, full)


def shrinks(in_features: int, out_features: int, rank: int) -> bool:
    return rank * (in_features + out_features) < in_features * out_features


def factorize(model: nn.Module, rank: int = 0, ratio: float = 0.25, skip_head: bool = True) -> dict[str, list[str]]:
    """Replace, in place, every plain nn.Linear whose factorisation is smaller; returns what was done."""
    replaced: list[str] = []
    kept: list[str] = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:  # exact type: leave quantized or already factorised layers alone
                continue
            full_name = f"{parent_name}.{child_name}" if parent_name else child_name
            r = rank_for(child.in_features, child.out_features, rank, ratio)
            if (skip_head and child_name in HEAD_NAMES) or not shrinks(child.in_features, child.out_features, r):
                kept.append(full_name)
                continue
            setattr(parent, child_name, LowRankLinear.from_linear(child, r))
            replaced.append(full_name)
    return {"replaced": replaced, "kept": kept}


def linear_stats(model: nn.Module) -> dict[str, int]:
    """Parameters in Linear layers (a factorised pair counts as one layer) and their dense size."""
    params = dense = layers = factorized = 0
    inside: set[int] = set()
    for m in model.modules():
        if id(m) in inside:
            continue
        if isinstance(m, LowRankLinear):
            inside.update(id(c) for c in m.modules())
            params += sum(p.numel() for p in m.parameters())
            dense += m.in_features * m.out_features + (m.out_features if m.up.bias is not None else 0)
            factorized += 1
        elif isinstance(m, nn.Linear):
            n = m.in_features * m.out_features + (m.out_features if m.bias is not None else 0)
            params += n
            dense += n
        else:
            continue
        layers += 1
    return {"params": params, "dense_params": dense, "layers": layers, "factorized": factorized}
