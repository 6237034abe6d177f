"""Pruning: magnitude (unstructured), 2:4 semi-structured (GPU), structured heads / FFN neurons.

Structured pruning rebuilds the affected Linear layers with fewer rows/columns, so the
parameter count and FLOPs really drop (and latency can). Unstructured pruning zeroes
weights permanently (``torch.nn.utils.prune`` then ``prune.remove``); dense kernels do the
same work, which the report shows as measured. An optional recovery fine-tune trains the
pruned model for ``finetune_steps`` on the training split, keeping pruned weights at zero.
"""

from __future__ import annotations

from dataclasses import replace

from optbench import SkipCell, Technique, hookimpl

METHODS = ("magnitude", "semi-structured-2:4", "structured-heads", "structured-ffn")


def _linears(model, skip_head: bool = True):
    import torch

    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and not (skip_head and n == "head")]


def prune_heads(model, amount: float) -> list[int]:
    """Remove the lowest-norm attention heads of every layer; returns heads kept per layer."""
    import torch
    from optbench.models.gpt import CausalSelfAttention

    kept = []
    for block in model.blocks:
        attn: CausalSelfAttention = block.attn
        h, d = attn.heads, attn.head_dim
        keep_n = max(1, int(round(h * (1 - amount))))
        inner = h * d
        # a head's importance: the norm of its output projection columns times its value rows
        proj_w = attn.proj.weight.detach().view(-1, h, d)
        v_w = attn.qkv.weight.detach()[2 * inner :].view(h, d, -1)
        score = proj_w.norm(dim=(0, 2)) * v_w.norm(dim=(1, 2))
        keep = score.topk(keep_n).indices.sort().values
        rows = torch.cat([(keep[:, None] * d + torch.arange(d)[None, :]).flatten() + part * inner for part in range(3)])
        cols = (keep[:, None] * d + torch.arange(d)[None, :]).flatten()
        qkv = torch.nn.Linear(attn.qkv.in_features, len(rows), bias=attn.qkv.bias is not None)
        proj = torch.nn.Linear(len(cols), attn.proj.out_features, bias=attn.proj.bias is not None)
        with torch.no_grad():
            qkv.weight.copy_(attn.qkv.weight[rows])
            if attn.qkv.bias is not None:
                qkv.bias.copy_(attn.qkv.bias[rows])
            proj.weight.copy_(attn.proj.weight[:, cols])
            if attn.proj.bias is not None:
                proj.bias.copy_(attn.proj.bias)
        attn.qkv, attn.proj, attn.heads = qkv, proj, keep_n
        kept.append(keep_n)
    return kept


def prune_ffn(model, amount: float) -> list[int]:
    """Remove the lowest-norm hidden neurons of every FFN; returns neurons kept per layer."""
    import torch

    kept = []
    for block in model.blocks:
        mlp = block.mlp
        hidden = mlp.fc.out_features
        keep_n = max(1, int(round(hidden * (1 - amount))))
        score = mlp.fc.weight.detach().norm(dim=1) * mlp.out.weight.detach().norm(dim=0)
        keep = score.topk(keep_n).indices.sort().values
        fc = torch.nn.Linear(mlp.fc.in_features, keep_n)
        out = torch.nn.Linear(keep_n, mlp.out.out_features)
        with torch.no_grad():
            fc.weight.copy_(mlp.fc.weight[keep])
            fc.bias.copy_(mlp.fc.bias[keep])
            out.weight.copy_(mlp.out.weight[:, keep])
            out.bias.copy_(mlp.out.bias)
        mlp.fc, mlp.out = fc, out
        kept.append(keep_n)
    return kept


def finetune(model, steps: int, lr: float, ctx, masks: dict | None = None) -> list[float]:
    """A short recovery fine-tune on the training split (fixed seed); returns the losses."""
    import torch
    from optbench.models.corpus import as_tokens, batches

    g = torch.Generator().manual_seed(ctx.seed)
    seq = min(128, model.config.max_seq_len)
    data = batches(as_tokens(ctx.data("train")), 8, seq, g)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        x, y = next(data)
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if masks:
            with torch.no_grad():
                for p, mask in masks.items():
                    p.mul_(mask)
        losses.append(loss.item())
    model.eval()
    return losses


class Prune(Technique):
    name = "prune"
    kind = "compress"
    description = "pruning: " + ", ".join(METHODS)
    params = {"method": "magnitude", "amount": 0.5, "scope": "global", "finetune_steps": 0, "finetune_lr": 3e-4}
    choices = {"method": list(METHODS), "scope": ["global", "layer"]}

    def label(self, params):
        ft = f"+ft{params['finetune_steps']}" if params["finetune_steps"] else ""
        scope = "-layer" if params["method"] == "magnitude" and params["scope"] == "layer" else ""
        amount = "" if params["method"] == "semi-structured-2:4" else f"-{params['amount']:g}"
        return f"prune-{params['method']}{scope}{amount}{ft}"

    def validate(self, params):
        problems = []
        if not 0 <= params["amount"] < 1:
            problems.append(f"amount must be in [0, 1), got {params['amount']}")
        if params["finetune_steps"] < 0:
            problems.append(f"finetune_steps must be >= 0, got {params['finetune_steps']}")
        if params["finetune_lr"] <= 0:
            problems.append(f"finetune_lr must be > 0, got {params['finetune_lr']}")
        return problems

    def supported(self, params, backend):
        if params["method"] == "semi-structured-2:4" and backend.device != "cuda":
            return False, "2:4 semi-structured sparsity needs a CUDA GPU (sparse tensor cores)"
        return True, ""

    def apply(self, model, params, ctx):
        import torch
        import torch.nn.utils.prune as tprune

        method, amount = params["method"], params["amount"]
        masks = None
        if method == "structured-heads":
            model.config = replace(model.config, layer_heads=tuple(prune_heads(model, amount)))
        elif method == "structured-ffn":
            model.config = replace(model.config, layer_ffn=tuple(prune_ffn(model, amount)))
        elif method == "magnitude":
            targets = [(m, "weight") for _, m in _linears(model)]
            if params["scope"] == "global":
                tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=amount)
            else:
                for m, name in targets:
                    tprune.l1_unstructured(m, name, amount=amount)
            for m, name in targets:
                tprune.remove(m, name)  # make the zeros permanent: plain tensors again
            masks = {m.weight: (m.weight != 0).float() for m, _ in targets}
        elif method == "semi-structured-2:4":
            if not hasattr(torch.sparse, "to_sparse_semi_structured"):
                raise SkipCell("this torch build has no torch.sparse.to_sparse_semi_structured")
            for _, m in _linears(model):
                if m.weight.dtype not in (torch.float16, torch.bfloat16):
                    raise SkipCell("2:4 sparse kernels take fp16/bf16 weights; this backend runs float32")
                w = m.weight.detach().to(ctx.device)
                groups = w.reshape(-1, 4)
                idx = groups.abs().topk(2, dim=1, largest=False).indices
                mask = torch.ones_like(groups).scatter_(1, idx, 0).view_as(w)
                m.weight = torch.nn.Parameter(torch.sparse.to_sparse_semi_structured(w * mask), requires_grad=False)
        if params["finetune_steps"] and method != "semi-structured-2:4":
            finetune(model, params["finetune_steps"], params["finetune_lr"], ctx, masks)
        return model


@hookimpl
def optbench_register_techniques(register):
    register(Prune())
