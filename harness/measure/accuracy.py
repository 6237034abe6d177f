"""Accuracy on held-out text and fidelity to a baseline model.

Evaluation windows are fixed by (text, seq_len, max_tokens) alone and log-likelihoods are
summed in float64 per window, so perplexity does not depend on the batch size used to
compute it or on the order of cells (lm-eval users keep reporting the opposite as a bug).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.corpus import as_tokens


def eval_windows(text: bytes, seq_len: int, max_tokens: int | None = None) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` bytes (inputs plus next-token targets)."""
    data = as_tokens(text)
    n = (len(data) - 1) // seq_len
    if max_tokens is not None:
        n = min(n, max(1, max_tokens // seq_len))
    if n < 1:
        raise ValueError(f"text of {len(data)} bytes is shorter than one window of {seq_len + 1}")
    idx = torch.arange(n)[:, None] * seq_len + torch.arange(seq_len + 1)[None, :]
    return data[idx]


@dataclass
class AccuracyResult:
    perplexity: float
    nll: float  # mean negative log-likelihood per token, nats
    top1: float  # next-token top-1 accuracy
    tokens: int


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: torch.Tensor, batch_size: int = 8, device: str = "cpu") -> AccuracyResult:
    return score_logits(logits_for(model, windows, batch_size, device), windows)


def score_logits(logits: torch.Tensor, windows: torch.Tensor) -> AccuracyResult:
    """Perplexity and top-1 accuracy of next-token logits ``[n, seq_len, vocab]`` for ``windows``."""
    target = windows[:, 1:].to(logits.device)
    logp = F.log_softmax(logits.float(), dim=-1)
    tok_nll = -logp.gather(-1, target[..., None]).squeeze(-1)
    nll = tok_nll.double().sum().item() / target.numel()
    correct = (logits.argmax(-1) == target).sum().item()
    return AccuracyResult(perplexity=math.exp(nll), nll=nll, top1=correct / target.numel(), tokens=target.numel())


@torch.no_grad()
def logits_for(model: torch.nn.Module, windows: torch.Tensor, batch_size: int = 8, device: str = "cpu") -> torch.Tensor:
    model.eval()
    outs = [model(windows[i : i + batch_size, :-1].to(device)).float().cpu() for i in range(0, len(windows), batch_size)]
    return torch.cat(outs)


@dataclass
class FidelityResult:
    kl: float  # mean per-token KL(baseline || optimised), nats
    top1_agreement: float


def fidelity(baseline_logits: torch.Tensor, logits: torch.Tensor) -> FidelityResult:
    p_log = F.log_softmax(baseline_logits.double(), dim=-1)
    q_log = F.log_softmax(logits.double(), dim=-1)
    kl = (p_log.exp() * (p_log - q_log)).sum(-1).mean().item()
    agree = (baseline_logits.argmax(-1) == logits.argmax(-1)).double().mean().item()
    return FidelityResult(kl=max(kl, 0.0), top1_agreement=agree)


def bigram_perplexity(train: bytes, test: bytes, k: float) -> float:
    """Perplexity of an add-k smoothed byte bigram model fit on ``train``, scored on ``test``."""
    counts = torch.zeros(256, 256, dtype=torch.float64)
    a = as_tokens(train)
    counts.index_put_((a[:-1], a[1:]), torch.ones(len(a) - 1, dtype=torch.float64), accumulate=True)
    probs = (counts + k) / (counts.sum(1, keepdim=True) + 256 * k)
    b = as_tokens(test)
    return math.exp(-probs[b[:-1], b[1:]].log().mean().item())
