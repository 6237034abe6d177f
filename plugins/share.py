"""Weight sharing: cross-layer sharing (ALBERT), k-means weight clustering, tied embeddings.

Each really reduces what is stored: shared layers are one set of tensors referenced by
several blocks (unique parameter bytes and the serialized file shrink); clustered Linear
layers store uint8 indices plus a codebook of 2^bits centroids instead of float weights;
tied embeddings make the output head reuse the input embedding matrix.
"""

from __future__ import annotations

from optbench import Technique, hookimpl

METHODS = ("cross-layer", "cluster", "tied-embeddings")


def share_layers(model, group: int, init: str) -> None:
    """Blocks in each run of ``group`` consecutive layers share the first block's module."""
    import torch

    blocks = list(model.blocks)
    for start in range(0, len(blocks), group):
        members = blocks[start : start + group]
        keeper = members[0]
        if init == "average" and len(members) > 1:
            with torch.no_grad():
                for name, p in keeper.named_parameters():
                    p.copy_(torch.stack([dict(b.named_parameters())[name] for b in members]).mean(0))
        for i in range(start, start + len(members)):
            model.blocks[i] = keeper


def kmeans_1d(values, k: int, iters: int = 15):
    """Lloyd's k-means on scalars, initialised at quantiles (deterministic)."""
    import torch

    v = values.flatten().float()
    k = min(k, v.numel())
    centroids = torch.quantile(v[:: max(1, v.numel() // 65536)], torch.linspace(0, 1, k))
    for _ in range(iters):
        idx = torch.bucketize(v, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros(k).index_add_(0, idx, v)
        counts = torch.zeros(k).index_add_(0, idx, torch.ones_like(v))
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        centroids, _ = centroids.sort()
    idx = torch.bucketize(v, (centroids[1:] + centroids[:-1]) / 2)
    return centroids, idx.view(values.shape)


def _clustered_linear_class():
    import torch
    import torch.nn.functional as F

    class ClusteredLinear(torch.nn.Module):
        """A Linear stored as uint8 centroid indices plus a float codebook."""

        def __init__(self, linear: torch.nn.Linear, bits: int):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            codebook, idx = kmeans_1d(linear.weight.detach(), 2**bits)
            self.register_buffer("indices", idx.to(torch.uint8))
            self.codebook = torch.nn.Parameter(codebook)
            self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().clone())

        @property
        def weight(self):
            return self.codebook[self.indices.long()]

        def forward(self, x):
            return F.linear(x, self.weight, self.bias)

    return ClusteredLinear


def cluster_linears(model, bits: int, skip_head: bool) -> int:
    import torch

    cls = _clustered_linear_class()
    n = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, torch.nn.Linear) and not (skip_head and full == "head"):
                setattr(module, child_name, cls(child, bits))
                n += 1
    return n


class Share(Technique):
    name = "share"
    kind = "compress"
    description = "weight sharing: " + ", ".join(METHODS)
    params = {"method": "cross-layer", "group": 2, "init": "first", "bits": 4, "skip_head": False,
              "finetune_steps": 0, "finetune_lr": 3e-4}
    choices = {"method": list(METHODS), "init": ["first", "average"]}

    def label(self, params):
        m = params["method"]
        ft = f"+ft{params['finetune_steps']}" if params["finetune_steps"] else ""
        if m == "cross-layer":
            return f"share-layers-x{params['group']}{ft}"
        if m == "cluster":
            return f"cluster-{params['bits']}bit{ft}"
        return f"tied-embeddings{ft}"

    def validate(self, params):
        problems = []
        if params["group"] < 2:
            problems.append(f"group must be >= 2 (layers sharing one set of weights), got {params['group']}")
        if not 1 <= params["bits"] <= 8:
            problems.append(f"bits must be between 1 and 8 (indices are stored as uint8), got {params['bits']}")
        if params["finetune_steps"] < 0:
            problems.append(f"finetune_steps must be >= 0, got {params['finetune_steps']}")
        return problems

    def apply(self, model, params, ctx):
        from optbench.plugins.prune import finetune

        method = params["method"]
        if method == "cross-layer":
            share_layers(model, params["group"], params["init"])
        elif method == "cluster":
            cluster_linears(model, params["bits"], params["skip_head"])
        else:
            if model.head.weight.shape != model.tok.weight.shape:
                raise ValueError("tied embeddings need the head and the token embedding to have the same shape")
            model.head.weight = model.tok.weight
        if params["finetune_steps"]:
            finetune(model, params["finetune_steps"], params["finetune_lr"], ctx)
        return model


@hookimpl
def optbench_register_techniques(register):
    register(Share())
