"""Memory: bytes of a model as stored, serialized size, peak RSS of this process.

torchao's quantized weights are tensor subclasses that report dtype float32 and element
size 4, so ``p.numel() * p.element_size()`` says int8 shrinks nothing. Bytes are counted
through the subclass's inner tensors (``__tensor_flatten__``) instead, recursively.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor really stores, looking through wrapper subclasses."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is not None and type(t) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = flatten()
        return sum(tensor_bytes(getattr(t, n)) for n in names)
    if t.is_sparse:
        return tensor_bytes(t._indices()) + tensor_bytes(t._values())
    return t.numel() * t.element_size()


def model_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Parameter and buffer bytes; shared tensors are counted once (``unique``)."""
    seen: set[int] = set()
    params = buffers = unique = 0
    for _, p in model.named_parameters(remove_duplicate=False):
        b = tensor_bytes(p)
        params += b
        if id(p) not in seen:
            seen.add(id(p))
            unique += b
    for _, buf in model.named_buffers():
        b = tensor_bytes(buf)
        buffers += b
        if id(buf) not in seen:
            seen.add(id(buf))
            unique += b
    for m in model.modules():
        # torch.ao's dynamically quantized Linear keeps its weights in packed params,
        # which are neither parameters nor buffers
        weight_bias = getattr(m, "_weight_bias", None)
        if callable(weight_bias) and isinstance(getattr(m, "_packed_params", None), torch.nn.Module):
            w, bias = weight_bias()
            b = w.numel() * w.element_size() + (bias.numel() * bias.element_size() if bias is not None else 0)
            if w.is_quantized and w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                b += tensor_bytes(w.q_per_channel_scales()) + tensor_bytes(w.q_per_channel_zero_points())
            params += b
            unique += b
    return {"param_bytes": params, "buffer_bytes": buffers, "unique_bytes": unique}


def serialized_bytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (VmHWM on Linux; psutil's RSS elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.Process().memory_info().rss


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def cuda_peak_bytes(device: Any) -> int | None:
    if torch.cuda.is_available() and str(device).startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return None
