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
        if params["method"] == "torch-dynamic-int8" and backend.device != "cpu":
            return False, "torch's quantize_dynamic runs on CPU only"
        return True, ""

    def apply(self, model, params, ctx):
        method = params["method"]
        if method == "torch-dynamic-int8":
            import torch

            with _quiet_deprecations():
                return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        q = _torchao_quantization()
        config = {"int8-weight-only": q.Int8WeightOnlyConfig, "int8-dynamic": q.Int8DynamicActivationInt8WeightConfig}[method]()
        try:
            q.quantize_(model, config)
        except NotImplementedError as e:
            raise SkipCell(f"{method} is not supported on {ctx.device}: {e}") from e
        return model


class _quiet_deprecations:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


@hookimpl
def optbench_register_techniques(register):
    register(Quantize())
