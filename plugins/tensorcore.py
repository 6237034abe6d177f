"""Tensor Core backends: ``tensorcore-tf32``, ``tensorcore-bf16``, ``tensorcore-fp16``.

Backends take no parameters from a suite, so each precision is a backend of its own, and a
suite lists the ones it compares (``backend: [cuda, tensorcore-tf32, tensorcore-bf16]``).
All three run eager on the first CUDA device with TF32 matmuls allowed
(``torch.backends.cuda.matmul.allow_tf32``, ``set_float32_matmul_precision("high")``);
``bf16`` and ``fp16`` also run the forward under ``torch.autocast`` in that dtype, with
the weights kept in float32 (autocast's usual mixed precision). The precision is in every
row's ``backend_info`` and selects the peak the ``mfu`` metric divides by.

Availability: no CUDA device -> "no CUDA device"; TF32 and bf16 need compute capability
8.0 (Ampere) or newer, fp16 Tensor Cores 7.0 (Volta).
"""

from __future__ import annotations

from typing import Any

from optbench import hookimpl
from optbench.plugins.cuda import CUDABackend

MIN_CAPABILITY = {"tf32": (8, 0), "bf16": (8, 0), "fp16": (7, 0)}


def autocast_module(model: Any, dtype_name: str) -> Any:
    """``model`` wrapped so its forward runs under ``torch.autocast("cuda", dtype)``."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]

    class Autocast(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.autocast_inner = inner

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            with torch.autocast("cuda", dtype=dtype):
                return self.autocast_inner(*args, **kwargs)

    return Autocast(model)


class TensorCoreBackend(CUDABackend):
    name = "tensorcore"
    precision = "tf32"

    def available(self):
        ok, why = super().available()
        if not ok:
            return ok, why
        import torch

        need = MIN_CAPABILITY[self.precision]
        have = torch.cuda.get_device_capability(0)
        if have < need:
            return False, (f"{self.precision} Tensor Cores need compute capability {need[0]}.{need[1]} or newer; "
                           f"this GPU has {have[0]}.{have[1]}")
        return True, ""

    def set_math_mode(self) -> None:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")

    def prepare(self, model, ctx):
        model = super().prepare(model, ctx)
        return autocast_module(model, self.autocast) if self.autocast else model


class TensorCoreTF32(TensorCoreBackend):
    name = "tensorcore-tf32"
    description = "eager on CUDA, float32 weights and activations with TF32 Tensor Core matmuls (capability >= 8.0)"
    precision = "tf32"


class TensorCoreBF16(TensorCoreBackend):
    name = "tensorcore-bf16"
    description = "eager on CUDA under torch.autocast(bfloat16), TF32 elsewhere (capability >= 8.0)"
    precision = "bf16"
    autocast = "bf16"


class TensorCoreFP16(TensorCoreBackend):
    name = "tensorcore-fp16"
    description = "eager on CUDA under torch.autocast(float16), TF32 elsewhere (capability >= 7.0)"
    precision = "fp16"
    autocast = "fp16"


@hookimpl
def optbench_register_backends(register):
    for b in (TensorCoreTF32(), TensorCoreBF16(), TensorCoreFP16()):
        register(b)
