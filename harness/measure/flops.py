"""FLOPs per token through torch.utils.flop_counter, with attention added by formula.

FlopCounterMode counts nothing for CPU scaled-dot-product attention, so when the
counted SDPA FLOPs are zero the score and value products are added from the model's
shapes. Quantized tensor subclasses may dispatch to kernels the counter does not know;
for those the Linear layers are counted from their shapes (2 * in * out per token), which
is the arithmetic the layer still performs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def _linear_flops_by_shape(model: torch.nn.Module, tokens: int) -> int:
    # torch.ao's quantized Linear (static and dynamic) is not an nn.Linear subclass
    linear_types = (torch.nn.Linear, torch.ao.nn.quantized.Linear)
    total = 0
    for m in model.modules():
        if isinstance(m, linear_types):
            total += 2 * m.in_features * m.out_features * tokens
    return total


@torch.no_grad()
def flops_per_token(model: torch.nn.Module, seq_len: int, device: str = "cpu",
                    attention_formula: Callable[[torch.nn.Module, int, int], int] | None = None) -> dict[str, float]:
    x = torch.zeros(1, seq_len, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as fc:
        model(x)
    counts = fc.get_flop_counts().get("Global", {})
    total = fc.get_total_flops()
    mm = sum(v for k, v in counts.items() if "mm" in str(k) or "linear" in str(k))
    sdpa = sum(v for k, v in counts.items() if "scaled_dot_product" in str(k))
    notes = []
    by_shape = _linear_flops_by_shape(model, seq_len)
    if mm < 0.5 * by_shape:
        # the counter did not see the (quantized) matmuls: count Linear layers by shape
        total += by_shape - mm
        notes.append("linear layers counted by shape (the counter does not see their kernels)")
    if sdpa == 0 and attention_formula is not None:
        total += attention_formula(model, 1, seq_len)
        notes.append("attention FLOPs by formula (not counted for CPU SDPA)")
    return {"flops_per_token": total / seq_len, "notes": "; ".join(notes)}
