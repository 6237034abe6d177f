"""Quantization of Linear layers: torchao int8 configs and torch's own dynamic int8.

Each method really changes the weights' storage (int8 payload + scales); memory is then
counted through the tensor subclasses' inner tensors, so the shrink shows up as measured.
"""

from __future__ import annotations

import logging

from optbench import SkipCell, Technique, hookimpl

METHODS = {
    "int8-weight-only": "torchao Int8WeightOnlyConfig: int8 weights, float activations",
    "int8-dynamic": "torchao Int8DynamicActivationInt8WeightConfig: int8 weights and per-token dynamic int8 activations",
    "int4-weight-only": "int4 weights, groups of 32: torchao Int4WeightOnlyConfig (tinygemm) on CUDA, "
    "IntxWeightOnlyConfig(int4, PerGroup(32)) on CPU, which stores the int4 values unpacked in int8",
    "fp8-weight-only": "torchao Float8WeightOnlyConfig: float8 e4m3 weights",
    "fp8-dynamic": "torchao Float8DynamicActivationFloat8WeightConfig: fp8 weights and activations (CUDA, capability >= 8.9)",
    "torch-dynamic-int8": "torch.ao.quantization.quantize_dynamic on nn.Linear (torch's own, deprecated upstream)",
}


def _torchao_quantization():
    # torchao logs a line per optional CUDA extension it cannot load on a CPU build
    logging.getLogger("torchao").setLevel(logging.ERROR)
    import torchao.quantization as q

    return q


class Quantize(Technique):
    name = "quantize"
    kind = "compress"
    description = "quantize Linear layers (" + ", ".join(METHODS) + ")"
    params = {"method": "int8-weight-only"}
    choices = {"method": list(METHODS)}
    preload = ("torchao.quantization",)

    def label(self, params):
        return params["method"]

    def supported(self, params, backend):
        method = params["method"]
        if method == "torch-dynamic-int8" and backend.device != "cpu":
            return False, "torch's quantize_dynamic runs on CPU only"
        if method == "fp8-dynamic":
            if backend.device != "cuda":
                return False, "fp8 dynamic quantization needs a CUDA GPU of compute capability 8.9 or newer"
            import torch

            major, minor = torch.cuda.get_device_capability()
            if (major, minor) < (8, 9):
                return False, f"fp8 dynamic quantization needs compute capability 8.9 or newer, this GPU has {major}.{minor}"
        return True, ""

    def apply(self, model, params, ctx):
        method = params["method"]
        if method == "torch-dynamic-int8":
            import torch

            with _quiet_deprecations():
                return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        q = _torchao_quantization()
        config = _config(q, method, ctx.device)
        try:
            q.quantize_(model, config)
        except NotImplementedError as e:
            raise SkipCell(f"{method} is not supported on {ctx.device}: {e}") from e
        return model


def _config(q, method: str, device: str):
    import torch

    if method == "int8-weight-only":
        return q.Int8WeightOnlyConfig()
    if method == "int8-dynamic":
        return q.Int8DynamicActivationInt8WeightConfig()
    if method == "int4-weight-only":
        if str(device).startswith("cuda"):
            return q.Int4WeightOnlyConfig(group_size=32)
        from torchao.quantization.granularity import PerGroup

        return q.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32))
    if method == "fp8-weight-only":
        return q.Float8WeightOnlyConfig()
    if method == "fp8-dynamic":
        return q.Float8DynamicActivationFloat8WeightConfig()
    raise ValueError(method)


class _quiet_deprecations:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated", category=UserWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


@hookimpl
def optbench_register_techniques(register):
    register(Quantize())
